package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func newTieredT(t *testing.T, remote Store, clk *fakeClock) (*Tiered, *Metrics, *logBuf) {
	t.Helper()
	log, buf := newLogger()
	met := NewMetrics("test")
	tc, err := NewTiered(TieredOptions{
		Local:   newMem(t, MemoryOptions{MaxBytes: 1 << 20, Now: clk.Now}),
		Remote:  remote,
		Logger:  log,
		Metrics: met,
		Backoff: Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond},
		Now:     clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tc, met, buf
}

func TestTieredReadThroughAndCounters(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	remote := newFlaky()
	tc, met, _ := newTieredT(t, remote, clk)

	_ = remote.Set(ctx, "r", []byte("from-remote"), 0)
	if _, ok, err := tc.Get(ctx, "none"); ok || err != nil {
		t.Fatalf("Get(none) = %v, %v", ok, err)
	}
	v, ok, err := tc.Get(ctx, "r")
	if !ok || err != nil || string(v) != "from-remote" {
		t.Fatalf("Get(r) = %q, %v, %v", v, ok, err)
	}
	// Second read must be served by memory.
	if _, ok, _ := tc.Get(ctx, "r"); !ok {
		t.Fatal("second Get missed")
	}
	if err := tc.Set(ctx, "s", []byte("both"), 0); err != nil {
		t.Fatal(err)
	}
	if rv, ok, _ := remote.Get(ctx, "s"); !ok || string(rv) != "both" {
		t.Fatal("Set did not reach the remote tier")
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"memory hits", tierHits(t, met, TierMemory), 1},
		{"memory misses", tierMisses(t, met, TierMemory), 2},
		{"redis hits", tierHits(t, met, TierRedis), 1},
		{"redis misses", tierMisses(t, met, TierRedis), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := tc.Delete(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := remote.Get(ctx, "s"); ok {
		t.Fatal("Delete did not reach the remote tier")
	}
	if err := tc.Set(ctx, "neg", nil, -1); err == nil {
		t.Fatal("negative ttl accepted")
	}
}

func TestTieredMemoryOnly(t *testing.T) {
	ctx := context.Background()
	tc, met, _ := newTieredT(t, nil, newFakeClock())
	if err := tc.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := tc.Get(ctx, "k"); !ok || err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if _, ok, _ := tc.Get(ctx, "x"); ok {
		t.Fatal("hit on missing key")
	}
	if tc.RemoteUp() {
		t.Fatal("RemoteUp without a remote")
	}
	if got := tierMisses(t, met, TierRedis); got != 0 {
		t.Fatalf("redis misses counted without redis: %v", got)
	}
}

// TestTieredBreaker drives the breaker with a fake clock: errors are hidden,
// Redis is skipped during a doubling backoff, state changes log once.
func TestTieredBreaker(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	remote := newFlaky()
	tc, met, logs := newTieredT(t, remote, clk)
	if err := tc.Set(ctx, "local", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	remote.down.Store(true)
	// get probes the remote tier with a key that is not in memory.
	probe := func(i int) int64 {
		before := remote.calls.Load()
		if _, ok, err := tc.Get(ctx, fmt.Sprintf("miss%d", i)); ok || err != nil {
			t.Fatalf("Get during outage = %v, %v", ok, err)
		}
		if v, ok, err := tc.Get(ctx, "local"); !ok || err != nil || string(v) != "v" {
			t.Fatalf("local Get during outage = %q, %v, %v", v, ok, err)
		}
		if err := tc.Set(ctx, fmt.Sprintf("set%d", i), []byte("x"), 0); err != nil {
			t.Fatalf("Set during outage: %v", err)
		}
		return remote.calls.Load() - before
	}

	if n := probe(0); n != 1 {
		t.Fatalf("first failing Get made %d remote calls, want 1", n)
	}
	if tc.RemoteUp() {
		t.Fatal("RemoteUp after an error")
	}
	// Backoff 100 ms, then 200 ms, 400 ms, 800 ms, capped at 800 ms.
	for i, wait := range []time.Duration{100, 200, 400, 800, 800} {
		wait *= time.Millisecond
		clk.Advance(wait - time.Millisecond)
		if n := probe(i); n != 0 {
			t.Fatalf("step %d: %d remote calls before the backoff passed", i, n)
		}
		clk.Advance(time.Millisecond)
		if n := probe(i); n != 1 {
			t.Fatalf("step %d: %d remote calls after the backoff, want exactly one probe", i, n)
		}
	}
	if got := counterValue(t, met.RedisErrors); got != 6 {
		t.Fatalf("redis errors = %v, want 6", got)
	}

	remote.down.Store(false)
	clk.Advance(time.Second)
	if _, ok, err := tc.Get(ctx, "after"); ok || err != nil {
		t.Fatalf("Get after recovery = %v, %v", ok, err)
	}
	if !tc.RemoteUp() {
		t.Fatal("not up after a successful probe")
	}
	if n := probe(99); n != 2 {
		t.Fatalf("after recovery %d remote calls, want 2 (miss Get + Set)", n)
	}
	if d, u := logs.count(logDown), logs.count(logUp); d != 1 || u != 1 {
		t.Fatalf("logged %d down / %d up lines, want 1 / 1", d, u)
	}
	// A second outage starts again from the minimum backoff.
	remote.down.Store(true)
	probe(100)
	clk.Advance(100 * time.Millisecond)
	if n := probe(101); n != 1 {
		t.Fatalf("second outage: backoff did not restart at the minimum (%d calls)", n)
	}
	if d := logs.count(logDown); d != 2 {
		t.Fatalf("logged %d down lines after the second outage, want 2", d)
	}
}

func TestTieredCallerCancelDoesNotTrip(t *testing.T) {
	clk := newFakeClock()
	remote := newFlaky()
	tc, met, _ := newTieredT(t, remote, clk)
	remote.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := tc.Get(ctx, "k"); err == nil {
		t.Fatal("Get with a cancelled ctx returned no error")
	}
	if !tc.RemoteUp() || counterValue(t, met.RedisErrors) != 0 {
		t.Fatal("caller cancellation was blamed on the remote tier")
	}
}

func TestNewTieredNeedsLocal(t *testing.T) {
	if _, err := NewTiered(TieredOptions{}); err == nil {
		t.Fatal("accepted nil Local")
	}
}
