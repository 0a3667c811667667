package onnxrt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natgw/natgw/internal/testutil"
)

// model is one cacheable model: bytes, key and the scale it multiplies by (0 for the fixtures).
type model struct {
	bytes []byte
	sha   string
	scale float32
}

func tinyModels(t testing.TB, n int) []model {
	out := make([]model, n)
	for i := range out {
		scale := float32(i + 2)
		b := tinyModel(t, scale, map[string]string{"id": fmt.Sprint(i)})
		out[i] = model{bytes: b, sha: shaHex(b), scale: scale}
	}
	return out
}

func loader(m model, calls *atomic.Int64) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		if calls != nil {
			calls.Add(1)
		}
		return m.bytes, nil
	}
}

// runTiny checks that the leased session is the model m (y = x * scale).
func runTiny(t testing.TB, s *Session, m model) error {
	got, _, err := s.Run(context.Background(), []float32{1, 2, 3, 4}, []int64{1, 4})
	if err != nil {
		return err
	}
	if want := []float32{m.scale, 2 * m.scale, 3 * m.scale, 4 * m.scale}; !slices.Equal(got, want) {
		return fmt.Errorf("model scale %g: got %v, want %v", m.scale, got, want)
	}
	return nil
}

// TestCacheEvictionFixtures loads 5 distinct models (the two parity fixture
// models and three tiny ones) through a cache of 2 and checks counts and
// destruction after every step.
func TestCacheEvictionFixtures(t *testing.T) {
	env := newTestEnv(t, 1)
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	var models []model
	for _, name := range []string{"A0_smallest.onnx", "A2_uniform_k5_e4_d3.onnx"} {
		b := readFile(t, filepath.Join(dir, name))
		models = append(models, model{bytes: b, sha: shaHex(b)})
	}
	models = append(models, tinyModels(t, 3)...)

	const maxSessions = 2
	c := NewCache(env, maxSessions, 1<<30)
	var calls atomic.Int64
	for i, m := range models {
		lease, err := c.Get(context.Background(), m.sha, loader(m, &calls))
		if err != nil {
			t.Fatal(err)
		}
		if m.scale != 0 {
			if err := runTiny(t, lease.Session, m); err != nil {
				t.Fatal(err)
			}
		} else if in := lease.Session.Inputs(); in[0].Shape[1] != 3 {
			t.Fatalf("fixture %d input %v", i, in)
		}
		if live := env.LiveSessions(); live > maxSessions+1 { // +1: this lease
			t.Fatalf("step %d: %d live sessions > cap %d + 1 lease", i, live, maxSessions)
		}
		lease.Release()
		if live, n := env.LiveSessions(), c.Len(); live > maxSessions || n > maxSessions {
			t.Fatalf("step %d: live %d, cached %d, cap %d", i, live, n, maxSessions)
		}
	}
	if got := calls.Load(); got != int64(len(models)) {
		t.Fatalf("loads = %d, want %d", got, len(models))
	}
	// The two newest are cached: a hit does not load.
	last := models[len(models)-1]
	lease, err := c.Get(context.Background(), last.sha, loader(last, &calls))
	if err != nil {
		t.Fatal(err)
	}
	lease.Release()
	if got := calls.Load(); got != int64(len(models)) {
		t.Fatalf("a hit loaded again (loads = %d)", got)
	}
	if want := int64(len(models[3].bytes) + len(models[4].bytes)); c.Bytes() != want {
		t.Fatalf("Bytes = %d, want %d", c.Bytes(), want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if live := env.LiveSessions(); live != 0 {
		t.Fatalf("live sessions after Close = %d", live)
	}
}

// TestCacheNoGrowth cycles 5 models through a cache of 2 for 200 rounds.
func TestCacheNoGrowth(t *testing.T) {
	env := newTestEnv(t, 1)
	models := tinyModels(t, 5)
	const maxSessions = 2
	c := NewCache(env, maxSessions, 1<<20)
	for i := 0; i < 200; i++ {
		m := models[(i*3)%len(models)] // a mix of hits and misses
		lease, err := c.Get(context.Background(), m.sha, loader(m, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := runTiny(t, lease.Session, m); err != nil {
			t.Fatal(err)
		}
		lease.Release()
		if live := env.LiveSessions(); live > maxSessions {
			t.Fatalf("cycle %d: %d live sessions > cap %d", i, live, maxSessions)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if live := env.LiveSessions(); live != 0 {
		t.Fatalf("live sessions after Close = %d", live)
	}
}

func TestCacheByteCap(t *testing.T) {
	env := newTestEnv(t, 1)
	models := tinyModels(t, 3)
	size := int64(len(models[0].bytes))
	c := NewCache(env, 10, 2*size+size/2) // room for two
	defer c.Close()
	for _, m := range models {
		lease, err := c.Get(context.Background(), m.sha, loader(m, nil))
		if err != nil {
			t.Fatal(err)
		}
		lease.Release()
	}
	if c.Len() != 2 || c.Bytes() > 2*size+size/2 {
		t.Fatalf("Len %d Bytes %d, want 2 entries within %d bytes", c.Len(), c.Bytes(), 2*size+size/2)
	}
	if live := env.LiveSessions(); live != 2 {
		t.Fatalf("live = %d, want 2", live)
	}

	small := NewCache(env, 10, size-1)
	defer small.Close()
	if _, err := small.Get(context.Background(), models[0].sha, loader(models[0], nil)); !errors.Is(err, ErrModelTooLarge) {
		t.Fatalf("err = %v, want ErrModelTooLarge", err)
	}
}

// TestCacheLeaseSurvivesEviction holds a lease while its entry is evicted.
func TestCacheLeaseSurvivesEviction(t *testing.T) {
	env := newTestEnv(t, 1)
	models := tinyModels(t, 3)
	c := NewCache(env, 2, 1<<20)
	held, err := c.Get(context.Background(), models[0].sha, loader(models[0], nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models[1:] { // the second Get evicts models[0]
		lease, err := c.Get(context.Background(), m.sha, loader(m, nil))
		if err != nil {
			t.Fatal(err)
		}
		lease.Release()
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	if live := env.LiveSessions(); live != 3 {
		t.Fatalf("live = %d, want 3 (2 cached + 1 evicted but leased)", live)
	}
	if err := runTiny(t, held.Session, models[0]); err != nil {
		t.Fatalf("evicted session broke under its lease: %v", err)
	}
	held.Release()
	held.Release() // idempotent: must not destroy twice or go negative
	if live := env.LiveSessions(); live != 2 {
		t.Fatalf("live = %d after releasing the evicted lease, want 2", live)
	}
	if _, _, err := held.Session.Run(context.Background(), []float32{1, 2, 3, 4}, []int64{1, 4}); !errors.Is(err, ErrClosed) {
		t.Fatalf("evicted session still usable after its last release: %v", err)
	}

	// Close with a lease out: that session lives until the release.
	lease, err := c.Get(context.Background(), models[2].sha, loader(models[2], nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if live := env.LiveSessions(); live != 1 {
		t.Fatalf("live = %d after Close with one lease, want 1", live)
	}
	if err := runTiny(t, lease.Session, models[2]); err != nil {
		t.Fatal(err)
	}
	lease.Release()
	if live := env.LiveSessions(); live != 0 {
		t.Fatalf("live = %d after last release, want 0", live)
	}
	if _, err := c.Get(context.Background(), models[0].sha, loader(models[0], nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
}

// TestCacheSingleflight: many concurrent Gets of one cold key load and build once.
func TestCacheSingleflight(t *testing.T) {
	env := newTestEnv(t, 1)
	m := tinyModels(t, 1)[0]
	c := NewCache(env, 2, 1<<20)
	defer c.Close()
	var calls atomic.Int64
	gate := make(chan struct{})
	slow := func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		<-gate // hold the load until every Get is waiting
		return m.bytes, nil
	}
	const n = 16
	var wg sync.WaitGroup
	leases := make(chan *Lease, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.Get(context.Background(), m.sha, slow)
			if err != nil {
				errs <- err
				return
			}
			leases <- l
		}()
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		call := c.loading[m.sha]
		return call != nil && call.waiters == n-1
	})
	close(gate)
	wg.Wait()
	close(errs)
	close(leases)
	for err := range errs {
		t.Fatal(err)
	}
	var first *Session
	for l := range leases {
		if first == nil {
			first = l.Session
		} else if l.Session != first {
			t.Error("concurrent Gets got different sessions")
		}
		l.Release()
	}
	if calls.Load() != 1 || env.LiveSessions() != 1 {
		t.Fatalf("loads %d, live %d; want 1 and 1", calls.Load(), env.LiveSessions())
	}
}

// TestCacheWaiterCancel: a waiter that gives up returns its reference; the loader's
// failure from its own cancellation makes a live waiter load again.
func TestCacheWaiterCancel(t *testing.T) {
	env := newTestEnv(t, 1)
	m := tinyModels(t, 1)[0]
	c := NewCache(env, 2, 1<<20)
	defer c.Close()

	gate := make(chan struct{})
	loaderCtx, cancelLoader := context.WithCancel(context.Background())
	loaderErr := make(chan error, 1)
	go func() {
		_, err := c.Get(loaderCtx, m.sha, func(ctx context.Context) ([]byte, error) {
			<-gate
			return nil, ctx.Err()
		})
		loaderErr <- err
	}()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.loading[m.sha] != nil })

	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := c.Get(waiterCtx, m.sha, loader(m, nil))
		cancelled <- err
	}()
	patient := make(chan error, 1)
	go func() {
		l, err := c.Get(context.Background(), m.sha, loader(m, nil))
		if err == nil {
			err = runTiny(t, l.Session, m)
			l.Release()
		}
		patient <- err
	}()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.loading[m.sha].waiters == 2 })
	cancelWaiter()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	cancelLoader()
	close(gate)
	if err := <-loaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("loader: %v", err)
	}
	if err := <-patient; err != nil {
		t.Fatalf("patient waiter should have loaded again: %v", err)
	}
	c.mu.Lock()
	ent := c.entries[m.sha]
	c.mu.Unlock()
	if ent == nil || ent.refs != 0 {
		t.Fatalf("entry %+v, want cached with no references", ent)
	}
}

func TestCacheBadInput(t *testing.T) {
	env := newTestEnv(t, 1)
	m := tinyModels(t, 2)
	c := NewCache(env, 2, 1<<20)
	defer c.Close()
	failing := errors.New("store down")
	tests := []struct {
		name string
		sha  string
		load func(context.Context) ([]byte, error)
	}{
		{"short_key", "abc", loader(m[0], nil)},
		{"non_hex_key", "zz" + m[0].sha[2:], loader(m[0], nil)},
		{"hash_mismatch", m[0].sha, loader(m[1], nil)},
		{"load_error", m[0].sha, func(context.Context) ([]byte, error) { return nil, failing }},
		{"not_onnx", shaHex([]byte("junk")), func(context.Context) ([]byte, error) { return []byte("junk"), nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := c.Get(context.Background(), tc.sha, tc.load); err == nil {
				l.Release()
				t.Fatal("Get succeeded")
			}
		})
	}
	if c.Len() != 0 || env.LiveSessions() != 0 || len(c.loading) != 0 {
		t.Fatalf("after failures: Len %d live %d loading %d", c.Len(), env.LiveSessions(), len(c.loading))
	}
	// Upper-case keys name the same entry.
	l, err := c.Get(context.Background(), strings.ToUpper(m[0].sha), loader(m[0], nil))
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// TestCacheConcurrent hammers a small cache from 8 goroutines over 5 models.
func TestCacheConcurrent(t *testing.T) {
	env := newTestEnv(t, 1)
	models := tinyModels(t, 5)
	const maxSessions, workers, iters = 2, 8, 60
	c := NewCache(env, maxSessions, 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				m := models[(w+i*7)%len(models)]
				l, err := c.Get(context.Background(), m.sha, loader(m, nil))
				if err != nil {
					errs <- err
					return
				}
				err = runTiny(t, l.Session, m)
				// Each worker holds at most one lease, and may be building one session.
				if live := env.LiveSessions(); err == nil && live > maxSessions+workers {
					err = fmt.Errorf("%d live sessions > cap %d + %d workers", live, maxSessions, workers)
				}
				l.Release()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if live := env.LiveSessions(); live > maxSessions || c.Len() > maxSessions {
		t.Fatalf("at rest: live %d, cached %d, cap %d", live, c.Len(), maxSessions)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if live := env.LiveSessions(); live != 0 {
		t.Fatalf("live after Close = %d", live)
	}
}

// waitFor polls cond; it bounds the wait only to turn a hang into a failure.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
