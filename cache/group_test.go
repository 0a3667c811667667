package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newLocalGroup(t *testing.T) (*Group, *Tiered, *Metrics) {
	t.Helper()
	tc, met, _ := newTieredT(t, nil, newFakeClock())
	g, err := NewGroup(GroupOptions{Cache: tc, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	return g, tc, met
}

// blockingLoad returns a load func that waits for release and counts calls.
func blockingLoad(calls *atomic.Int64, release <-chan struct{}, val []byte) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return val, nil
	}
}

func TestGroupLocalSingleflight(t *testing.T) {
	g, _, met := newLocalGroup(t)
	ctx := context.Background()
	var calls atomic.Int64
	release := make(chan struct{})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(ctx, "k", 0, blockingLoad(&calls, release, []byte("val")))
			if err == nil && string(v) != "val" {
				err = errors.New("wrong value " + string(v))
			}
			errs <- err
		}()
	}
	// Let the callers pile up on the flight before releasing it; whether they
	// join it or arrive later, the count must stay 1.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 || counterValue(t, met.Loads) != 1 {
		t.Fatalf("load ran %d times (metric %v), want 1", calls.Load(), counterValue(t, met.Loads))
	}
	// Now cached: no further load.
	if _, err := g.Do(ctx, "k", 0, blockingLoad(&calls, release, nil)); err != nil || calls.Load() != 1 {
		t.Fatalf("cached Do: err %v, calls %d", err, calls.Load())
	}
}

func TestGroupErrorsAreNotCached(t *testing.T) {
	g, tc, _ := newLocalGroup(t)
	ctx := context.Background()
	boom := errors.New("boom")
	if _, err := g.Do(ctx, "k", 0, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping boom", err)
	}
	if _, ok, _ := tc.Get(ctx, "k"); ok {
		t.Fatal("failed load was cached")
	}
	v, err := g.Do(ctx, "k", 0, func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(v) != "ok" {
		t.Fatalf("retry = %q, %v", v, err)
	}
	if _, err := g.Do(ctx, "k", -time.Second, nil); !errors.Is(err, ErrNegativeTTL) {
		t.Fatalf("negative ttl: %v", err)
	}
}

// A caller that gives up must not cancel the shared load for the others.
func TestGroupCallerCancelDoesNotCancelLoad(t *testing.T) {
	g, _, _ := newLocalGroup(t)
	var calls atomic.Int64
	release := make(chan struct{})
	load := func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return []byte("v"), nil
	}
	cctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := g.Do(cctx, "k", 0, load)
		first <- err
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		_, err := g.Do(context.Background(), "k", 0, load)
		second <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("load ran %d times", calls.Load())
	}
}

func TestNewGroupValidation(t *testing.T) {
	if _, err := NewGroup(GroupOptions{}); err == nil {
		t.Fatal("accepted nil Cache")
	}
	tc, _, _ := newTieredT(t, nil, newFakeClock())
	if _, err := NewGroup(GroupOptions{Cache: tc, LockTTL: time.Millisecond}); err == nil {
		t.Fatal("accepted 1ms LockTTL")
	}
}

// With Redis unreachable, Do still works with process-local deduplication.
func TestGroupRedisDown(t *testing.T) {
	port, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRedis(RedisOptions{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Prefix: "natgw:"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log, logs := newLogger()
	met := NewMetrics("test")
	tc, err := NewTiered(TieredOptions{Local: newMem(t, MemoryOptions{MaxBytes: 1 << 20}), Remote: r, Logger: log, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGroup(GroupOptions{Cache: tc, Logger: log, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(context.Background(), "k", 0, blockingLoad(&calls, release, []byte("v")))
			if err == nil && string(v) != "v" {
				err = fmt.Errorf("got %q", v)
			}
			errs <- err
		}()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("load ran %d times", calls.Load())
	}
	if logs.count(logDown) != 1 || counterValue(t, met.RedisErrors) == 0 {
		t.Fatal("outage not logged/counted")
	}
}
