package cache

import (
	"context"
	"errors"
	"time"
)

// Store is a byte cache. A miss is (nil, false, nil); an error means the
// store could not answer.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores val under key; ttl 0 means no expiry, a negative ttl is an error.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}

// ttlGetter is implemented by stores that can report the remaining TTL with
// a value, so an upper tier can expire its copy no later than the original.
type ttlGetter interface {
	// getTTL returns the value and its remaining TTL (0: no expiry).
	getTTL(ctx context.Context, key string) ([]byte, time.Duration, bool, error)
}

// Tier label values used in [Metrics].
const (
	TierMemory = "memory"
	TierRedis  = "redis"
)

// ErrNegativeTTL is returned by Set for a negative ttl.
var ErrNegativeTTL = errors.New("cache: negative ttl")
