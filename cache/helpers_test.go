package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterValue reads a counter without a registry.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func tierHits(t *testing.T, m *Metrics, tier string) float64 {
	return counterValue(t, m.Hits.WithLabelValues(tier))
}

func tierMisses(t *testing.T, m *Metrics, tier string) float64 {
	return counterValue(t, m.Misses.WithLabelValues(tier))
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), substr)
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

const (
	logDown = "redis unavailable"
	logUp   = "redis available again"
)

var errFake = errors.New("fake remote down")

// flakyStore is an in-memory remote that fails while down is set.
type flakyStore struct {
	down  atomic.Bool
	calls atomic.Int64
	mu    sync.Mutex
	data  map[string][]byte
}

func newFlaky() *flakyStore { return &flakyStore{data: map[string][]byte{}} }

func (f *flakyStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, false, errFake
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	return v, ok, nil
}

func (f *flakyStore) Set(_ context.Context, key string, val []byte, _ time.Duration) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errFake
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[key] = append([]byte(nil), val...)
	return nil
}

func (f *flakyStore) Delete(_ context.Context, key string) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errFake
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.data, key)
	return nil
}
