package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// TieredOptions configures a [Tiered].
type TieredOptions struct {
	// Local is the memory tier; required.
	Local *Memory
	// Remote is the shared tier, normally a *Redis; nil means memory only.
	Remote Store
	// Logger receives one line per Redis state change; nil discards.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Backoff is how long Redis is skipped after an error: Min (default
	// 100 ms) doubling per consecutive error up to Max (default 5 s).
	Backoff Backoff
	// Now is the clock for the backoff; nil means time.Now.
	Now func() time.Time
}

// Tiered is a [Store] with a memory tier in front of an optional Redis tier.
// Redis errors are logged, counted and hidden from the caller.
type Tiered struct {
	local   *Memory
	remote  Store
	metrics *Metrics
	br      *breaker
}

// NewTiered returns a Tiered cache.
func NewTiered(opts TieredOptions) (*Tiered, error) {
	if opts.Local == nil {
		return nil, errors.New("cache: tiered needs a Local memory tier")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Tiered{
		local:   opts.Local,
		remote:  opts.Remote,
		metrics: opts.Metrics,
		br: &breaker{
			backoff: opts.Backoff.withDefaults(100*time.Millisecond, 5*time.Second),
			now:     now,
			log:     log,
			metrics: opts.Metrics,
		},
	}, nil
}

// Local returns the memory tier.
func (t *Tiered) Local() *Memory { return t.local }

// RemoteUp reports whether Redis is configured and not being skipped.
func (t *Tiered) RemoteUp() bool {
	if t.remote == nil {
		return false
	}
	t.br.mu.Lock()
	defer t.br.mu.Unlock()
	return !t.br.down
}

// Get looks in memory, then Redis, copying a Redis hit into memory. It
// returns an error only when ctx is done.
func (t *Tiered) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return t.get(ctx, key, true)
}

// get is Get with optional counting: polling waiters must not inflate misses.
func (t *Tiered) get(ctx context.Context, key string, count bool) ([]byte, bool, error) {
	if v, ok, _ := t.local.Get(ctx, key); ok {
		if count {
			t.metrics.hit(TierMemory)
		}
		return v, true, nil
	}
	if count {
		t.metrics.miss(TierMemory)
	}
	if t.remote == nil || !t.br.allow() {
		return nil, false, ctxErr(ctx)
	}
	var (
		v   []byte
		ttl time.Duration
		ok  bool
		err error
	)
	if tg, isTG := t.remote.(ttlGetter); isTG {
		v, ttl, ok, err = tg.getTTL(ctx, key)
	} else {
		v, ok, err = t.remote.Get(ctx, key)
	}
	if err != nil {
		t.remoteResult(ctx, err)
		return nil, false, ctxErr(ctx)
	}
	t.br.success()
	if !ok {
		if count {
			t.metrics.miss(TierRedis)
		}
		return nil, false, nil
	}
	if count {
		t.metrics.hit(TierRedis)
	}
	_ = t.local.Set(ctx, key, v, ttl) // ttl >= 0 here, so no error
	return v, true, nil
}

// Set writes memory and, unless it is being skipped, Redis. It fails only
// for a negative ttl or a done ctx.
func (t *Tiered) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := t.local.Set(ctx, key, val, ttl); err != nil {
		return err
	}
	if t.remote == nil || !t.br.allow() {
		return nil
	}
	t.remoteResult(ctx, t.remote.Set(ctx, key, val, ttl))
	return ctxErr(ctx)
}

// Delete removes key from memory and, unless it is being skipped, Redis.
// Other replicas' memory tiers keep their copy until it expires.
func (t *Tiered) Delete(ctx context.Context, key string) error {
	_ = t.local.Delete(ctx, key)
	if t.remote == nil || !t.br.allow() {
		return nil
	}
	t.remoteResult(ctx, t.remote.Delete(ctx, key))
	return ctxErr(ctx)
}

// remoteResult feeds the breaker. An error caused by the caller's own
// cancellation says nothing about Redis and is ignored.
func (t *Tiered) remoteResult(ctx context.Context, err error) {
	switch {
	case err == nil:
		t.br.success()
	case ctxDone(ctx):
	default:
		t.br.failure(err)
	}
}

// ctxDone also reports a deadline that has passed but whose timer has not
// fired yet: a socket deadline derived from ctx can expire first.
func ctxDone(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// breaker skips Redis after an error for a doubling backoff; once the
// backoff passes, one caller probes Redis while the rest keep skipping.
type breaker struct {
	backoff Backoff
	now     func() time.Time
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	down    bool
	fails   int
	retryAt time.Time
}

func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		return true
	}
	now := b.now()
	if now.Before(b.retryAt) {
		return false
	}
	// Claim the probe: others skip until this one reports or the delay passes.
	b.retryAt = now.Add(b.delay())
	return true
}

func (b *breaker) delay() time.Duration {
	d := b.backoff.Min
	for i := 1; i < b.fails && d < b.backoff.Max; i++ {
		d *= 2
	}
	return min(d, b.backoff.Max)
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		b.down, b.fails = false, 0
		b.log.Info("cache: redis available again")
	}
}

func (b *breaker) failure(err error) {
	b.metrics.redisError()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	d := b.delay()
	b.retryAt = b.now().Add(d)
	if !b.down {
		b.down = true
		b.log.Warn("cache: redis unavailable, serving from memory", "err", err, "retry_in", d)
	}
}

var _ Store = (*Tiered)(nil)
