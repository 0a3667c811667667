package cache

import (
	"testing"

	"github.com/natgw/natgw/internal/testredis"
)

// startRedis starts a private redis-server for one test (see internal/testredis).
func startRedis(t *testing.T) *testredis.Server { return testredis.Start(t) }

func freePort() (int, error) { return testredis.FreePort() }
