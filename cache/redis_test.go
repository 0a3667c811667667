package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testTimeout replaces the 200 ms defaults: the test machine is shared and
// a starved process must not look like a Redis outage.
const testTimeout = 3 * time.Second

func newRedisT(t *testing.T, url string) *Redis {
	t.Helper()
	r, err := NewRedis(RedisOptions{URL: url, Prefix: "natgw:", DialTimeout: testTimeout, ReadTimeout: testTimeout, WriteTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// replica is one gateway's view of the shared Redis.
type replica struct {
	redis *Redis
	tc    *Tiered
	group *Group
	met   *Metrics
	logs  *logBuf
	clk   *fakeClock // memory tier clock
}

func newReplica(t *testing.T, url string, gopts GroupOptions) *replica {
	t.Helper()
	log, logs := newLogger()
	rp := &replica{redis: newRedisT(t, url), met: NewMetrics("test"), logs: logs, clk: newFakeClock()}
	var err error
	rp.tc, err = NewTiered(TieredOptions{
		Local:   newMem(t, MemoryOptions{MaxBytes: 1 << 20, Now: rp.clk.Now}),
		Remote:  rp.redis,
		Logger:  log,
		Metrics: rp.met,
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	gopts.Cache, gopts.Logger, gopts.Metrics = rp.tc, log, rp.met
	if rp.group, err = NewGroup(gopts); err != nil {
		t.Fatal(err)
	}
	return rp
}

func TestNewRedisOptions(t *testing.T) {
	if _, err := NewRedis(RedisOptions{URL: "http://nope"}); err == nil {
		t.Fatal("accepted a non-redis URL")
	}
	tests := []struct {
		name              string
		opts              RedisOptions
		dial, read, write time.Duration
	}{
		{"defaults", RedisOptions{URL: "redis://127.0.0.1:1/0"}, defaultRedisTimeout, defaultRedisTimeout, defaultRedisTimeout},
		{"url wins over default", RedisOptions{URL: "redis://127.0.0.1:1/0?read_timeout=2s"}, defaultRedisTimeout, 2 * time.Second, defaultRedisTimeout},
		{"explicit wins", RedisOptions{URL: "redis://127.0.0.1:1/0?read_timeout=2s", ReadTimeout: time.Second, DialTimeout: time.Second},
			time.Second, time.Second, defaultRedisTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			o := r.Client().Options()
			if o.DialTimeout != tc.dial || o.ReadTimeout != tc.read || o.WriteTimeout != tc.write {
				t.Fatalf("timeouts dial %v read %v write %v", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
			}
			if o.MaxRetries != 0 || o.DialerRetries != 1 { // -1 (none) is stored as 0 by go-redis
				t.Fatalf("retries %d / dial retries %d; the breaker should own retrying", o.MaxRetries, o.DialerRetries)
			}
		})
	}
}

func TestRedisStore(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	r := newRedisT(t, srv.URL())
	raw := r.Client()

	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	bin := []byte{0, 1, 2, 0xff, '\r', '\n'}
	tests := []struct {
		key string
		val []byte
		ttl time.Duration
	}{
		{"model:abc", bin, 0},
		{"map:cifar10:v1:flops=300", []byte("model:abc"), time.Hour},
		{"empty", []byte{}, 0},
	}
	for _, tc := range tests {
		if err := r.Set(ctx, tc.key, tc.val, tc.ttl); err != nil {
			t.Fatal(err)
		}
		v, ok, err := r.Get(ctx, tc.key)
		if err != nil || !ok || !bytes.Equal(v, tc.val) {
			t.Fatalf("Get(%q) = %q, %v, %v", tc.key, v, ok, err)
		}
		// The prefix is applied and the TTL set.
		pttl, err := raw.PTTL(ctx, "natgw:"+tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if tc.ttl == 0 && pttl != -1 || tc.ttl > 0 && (pttl <= 0 || pttl > tc.ttl) {
			t.Fatalf("PTTL(natgw:%s) = %v for ttl %v", tc.key, pttl, tc.ttl)
		}
		_, gotTTL, ok, err := r.getTTL(ctx, tc.key)
		if err != nil || !ok || (tc.ttl == 0) != (gotTTL == 0) || gotTTL > tc.ttl {
			t.Fatalf("getTTL(%q) = %v, %v, %v", tc.key, gotTTL, ok, err)
		}
		if err := r.Delete(ctx, tc.key); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := r.Get(ctx, tc.key); ok || err != nil {
			t.Fatalf("after Delete: %v, %v", ok, err)
		}
	}
	if _, _, ok, err := r.getTTL(ctx, "missing"); ok || err != nil {
		t.Fatalf("getTTL(missing) = %v, %v", ok, err)
	}
	if err := r.Set(ctx, "k", nil, -time.Second); !errors.Is(err, ErrNegativeTTL) {
		t.Fatalf("negative ttl: %v", err)
	}
}

func TestTieredThroughRedis(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newReplica(t, srv.URL(), GroupOptions{})
	b := newReplica(t, srv.URL(), GroupOptions{})

	if err := a.tc.Set(ctx, "map:x", []byte("model:1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.tc.Set(ctx, "model:1", []byte("onnx"), 0); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{TierRedis, TierMemory} {
		v, ok, err := b.tc.Get(ctx, "map:x")
		if err != nil || !ok || string(v) != "model:1" {
			t.Fatalf("read %d: %q, %v, %v", i, v, ok, err)
		}
		if got := tierHits(t, b.met, want); got != 1 {
			t.Fatalf("read %d: %s hits = %v, want 1", i, want, got)
		}
	}
	// The memory copy expires with the Redis TTL, the untimed one does not.
	if _, ok, _ := b.tc.Get(ctx, "model:1"); !ok {
		t.Fatal("model:1 missing")
	}
	b.clk.Advance(time.Hour + time.Second)
	if _, ok, _ := b.tc.Local().Get(ctx, "map:x"); ok {
		t.Fatal("memory copy outlived the Redis TTL")
	}
	if _, ok, _ := b.tc.Local().Get(ctx, "model:1"); !ok {
		t.Fatal("untimed memory copy expired")
	}
	if err := a.tc.Delete(ctx, "model:1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.redis.Get(ctx, "model:1"); ok {
		t.Fatal("Delete did not reach Redis")
	}
}

// TestGroupTwoReplicasLoadOnce: 200 concurrent cold calls split over two
// replicas sharing one Redis run load exactly once, and everyone gets it.
func TestGroupTwoReplicasLoadOnce(t *testing.T) {
	srv := startRedis(t)
	gopts := GroupOptions{LockTTL: 2 * time.Second, MaxWait: 20 * time.Second, Poll: Backoff{Min: 2 * time.Millisecond, Max: 20 * time.Millisecond}}
	reps := []*replica{newReplica(t, srv.URL(), gopts), newReplica(t, srv.URL(), gopts)}
	// Several rounds with different load durations, including an instant one,
	// to vary the interleavings.
	for round, loadTime := range []time.Duration{50 * time.Millisecond, 0, 5 * time.Millisecond} {
		key := fmt.Sprintf("model:round%d", round)
		want := []byte(fmt.Sprintf("bytes-%d", round))
		var calls atomic.Int64
		load := func(ctx context.Context) ([]byte, error) {
			calls.Add(1)
			time.Sleep(loadTime)
			return want, nil
		}
		const n = 200
		start := make(chan struct{})
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				v, err := reps[i%2].group.Do(ctx, key, time.Hour, load)
				if err == nil && !bytes.Equal(v, want) {
					err = fmt.Errorf("got %q", v)
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("round %d: load ran %d times, want exactly 1", round, got)
		}
	}
	for i, rp := range reps {
		if e := counterValue(t, rp.met.RedisErrors); e != 0 {
			t.Fatalf("replica %d saw %v redis errors", i, e)
		}
	}
	if l := counterValue(t, reps[0].met.Loads) + counterValue(t, reps[1].met.Loads); l != 3 {
		t.Fatalf("loads metric sums to %v, want 3", l)
	}
}

// A lock whose holder vanished expires; the waiter then loads itself.
func TestGroupHolderVanished(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	rp := newReplica(t, srv.URL(), GroupOptions{MaxWait: 20 * time.Second, Poll: Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	if _, ok, err := rp.redis.Lock(ctx, "model:v", 150*time.Millisecond); !ok || err != nil {
		t.Fatalf("Lock = %v, %v", ok, err)
	}
	var calls atomic.Int64
	v, err := rp.group.Do(ctx, "model:v", 0, func(context.Context) ([]byte, error) {
		calls.Add(1)
		return []byte("v"), nil
	})
	if err != nil || string(v) != "v" || calls.Load() != 1 {
		t.Fatalf("Do = %q, %v after %d loads", v, err, calls.Load())
	}
	if n, _ := rp.redis.Client().Exists(ctx, "natgw:lock:model:v").Result(); n != 0 {
		t.Fatal("lock left behind after load")
	}
}

// A live holder that takes longer than MaxWait: the waiter loads itself.
func TestGroupMaxWaitFallback(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	rp := newReplica(t, srv.URL(), GroupOptions{MaxWait: 50 * time.Millisecond})
	unlock, ok, err := rp.redis.Lock(ctx, "model:w", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Lock = %v, %v", ok, err)
	}
	defer unlock()
	v, err := rp.group.Do(ctx, "model:w", 0, func(context.Context) ([]byte, error) { return []byte("w"), nil })
	if err != nil || string(v) != "w" {
		t.Fatalf("Do = %q, %v", v, err)
	}
}

func TestLockTokenSafety(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	r := newRedisT(t, srv.URL())
	raw := r.Client()
	const lockKey = "natgw:lock:res"

	unlockA, ok, err := r.Lock(ctx, "res", 100*time.Millisecond)
	if !ok || err != nil {
		t.Fatalf("A: %v, %v", ok, err)
	}
	if _, ok, err := r.Lock(ctx, "res", time.Minute); ok || err != nil {
		t.Fatalf("second Lock while held = %v, %v", ok, err)
	}
	waitGone(t, r, lockKey)

	unlockB, ok, err := r.Lock(ctx, "res", time.Minute)
	if !ok || err != nil {
		t.Fatalf("B: %v, %v", ok, err)
	}
	tokenB, err := raw.Get(ctx, lockKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	unlockA() // expired: must not delete B's lock
	if got, err := raw.Get(ctx, lockKey).Result(); err != nil || got != tokenB {
		t.Fatalf("A's late unlock touched B's lock: %q, %v", got, err)
	}
	if _, ok, _ := r.Lock(ctx, "res", time.Minute); ok {
		t.Fatal("acquired while B holds the lock")
	}
	unlockB()
	unlockB() // idempotent
	if n, _ := raw.Exists(ctx, lockKey).Result(); n != 0 {
		t.Fatal("B's unlock did not release")
	}

	// extend follows the same rule.
	la, ok, err := r.acquire(ctx, "ext", 100*time.Millisecond)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := la.extend(ctx); !ok || err != nil {
		t.Fatalf("extend own lock = %v, %v", ok, err)
	}
	waitGone(t, r, "natgw:lock:ext")
	lb, ok, _ := r.acquire(ctx, "ext", time.Minute)
	if !ok {
		t.Fatal("could not take expired lock")
	}
	if ok, err := la.extend(ctx); ok || err != nil {
		t.Fatalf("extend of a lost lock = %v, %v", ok, err)
	}
	lb.release(ctx)
	if _, _, err := r.Lock(ctx, "x", 0); err == nil {
		t.Fatal("zero ttl accepted")
	}
}

func waitGone(t *testing.T, r *Redis, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		n, err := r.Client().Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("waiting for %s to expire: %v", key, err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLockOrValue(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	r := newRedisT(t, srv.URL())
	get := func(ctx context.Context) ([]byte, bool, error) { return r.Get(ctx, "val") }
	poll := Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}

	// Free lock: acquired at once.
	v, unlock, err := r.LockOrValue(ctx, "val", time.Minute, get, poll)
	if err != nil || v != nil || unlock == nil {
		t.Fatalf("free lock: %q, %v, %v", v, unlock != nil, err)
	}
	// Held lock, value stored by the holder: the waiter gets the value.
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = r.Set(context.Background(), "val", []byte("done"), 0)
	}()
	v, unlock2, err := r.LockOrValue(ctx, "val", time.Minute, get, poll)
	if err != nil || string(v) != "done" || unlock2 != nil {
		t.Fatalf("waiter: %q, %v, %v", v, unlock2 != nil, err)
	}
	// Neither appears: ErrWaitTimeout when ctx ends.
	_ = r.Delete(ctx, "val")
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := r.LockOrValue(tctx, "val", time.Minute, get, poll); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	unlock()
	// A get error is returned.
	boom := errors.New("boom")
	if _, _, err := r.LockOrValue(ctx, "val", time.Minute, func(context.Context) ([]byte, bool, error) { return nil, false, boom }, poll); !errors.Is(err, boom) {
		t.Fatalf("get error: %v", err)
	}
}

// TestTieredRedisOutage stops redis-server in the middle of a loop of
// bounded Gets, then restarts it on the same port.
func TestTieredRedisOutage(t *testing.T) {
	srv := startRedis(t)
	rp := newReplica(t, srv.URL(), GroupOptions{})
	ctx := context.Background()
	const keys = 10
	for i := range keys {
		if err := rp.tc.Set(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		if i == 100 {
			srv.Stop()
		}
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, ok, err := rp.tc.Get(gctx, fmt.Sprintf("k%d", i%keys))
		if err != nil || !ok || string(v) != fmt.Sprint(i%keys) {
			cancel()
			t.Fatalf("iteration %d: cached key: %q, %v, %v", i, v, ok, err)
		}
		// A key only Redis could have: a miss, never an error.
		if _, ok, err := rp.tc.Get(gctx, fmt.Sprintf("cold%d", i)); ok || err != nil {
			cancel()
			t.Fatalf("iteration %d: cold key: %v, %v", i, ok, err)
		}
		if err := rp.tc.Set(gctx, fmt.Sprintf("w%d", i), []byte("x"), 0); err != nil {
			cancel()
			t.Fatalf("iteration %d: Set: %v", i, err)
		}
		cancel()
		if i >= 100 {
			time.Sleep(time.Millisecond) // let the breaker's backoff pass a few times
		}
	}
	if counterValue(t, rp.met.RedisErrors) == 0 || rp.tc.RemoteUp() {
		t.Fatal("the outage went unnoticed")
	}
	if n := rp.logs.count(logDown); n != 1 {
		t.Fatalf("logged the outage %d times, want once", n)
	}

	srv.Restart()
	raw := newRedisT(t, srv.URL())
	if err := raw.Set(ctx, "fresh", []byte("from-redis"), 0); err != nil {
		t.Fatal(err)
	}
	before := tierHits(t, rp.met, TierRedis)
	deadline := time.Now().Add(15 * time.Second)
	for {
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, ok, err := rp.tc.Get(gctx, "fresh")
		cancel()
		if err != nil {
			t.Fatalf("Get after restart: %v", err)
		}
		if ok {
			if string(v) != "from-redis" {
				t.Fatalf("Get after restart = %q", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tiered cache never used Redis again after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := tierHits(t, rp.met, TierRedis); got != before+1 {
		t.Fatalf("redis hits %v -> %v, want +1", before, got)
	}
	if !rp.tc.RemoteUp() || rp.logs.count(logUp) != 1 {
		t.Fatalf("recovery: up=%v, logged %d times", rp.tc.RemoteUp(), rp.logs.count(logUp))
	}
	if err := rp.tc.Set(ctx, "after", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := raw.Get(ctx, "after"); !ok || string(v) != "y" {
		t.Fatal("Set after recovery did not reach Redis")
	}
}

// The holder renews its lock while loading, so a load slower than LockTTL
// does not let another replica start a second one.
func TestGroupLockRenewedDuringSlowLoad(t *testing.T) {
	srv := startRedis(t)
	gopts := GroupOptions{LockTTL: 300 * time.Millisecond, MaxWait: 20 * time.Second, Poll: Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}}
	a, b := newReplica(t, srv.URL(), gopts), newReplica(t, srv.URL(), gopts)
	var calls atomic.Int64
	started := make(chan struct{})
	load := func(context.Context) ([]byte, error) {
		if calls.Add(1) == 1 {
			close(started)
		}
		time.Sleep(time.Second) // several lock TTLs
		return []byte("slow"), nil
	}
	ctx := context.Background()
	resA := make(chan error, 1)
	go func() {
		_, err := a.group.Do(ctx, "model:slow", 0, load)
		resA <- err
	}()
	<-started
	v, err := b.group.Do(ctx, "model:slow", 0, load)
	if err != nil || string(v) != "slow" {
		t.Fatalf("replica b: %q, %v", v, err)
	}
	if err := <-resA; err != nil {
		t.Fatalf("replica a: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("load ran %d times; the lock was not renewed", calls.Load())
	}
}
