package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"
)

// GroupOptions configures a [Group].
type GroupOptions struct {
	// Cache is required. When its remote tier is a *Redis, that server also
	// provides the cross-replica lock.
	Cache *Tiered
	// LockTTL is the lock's expiry (default 10 s). The holder renews it every
	// LockTTL/3 while loading, so it only runs out when the holder vanished.
	LockTTL time.Duration
	// MaxWait bounds how long a replica waits for another one's load before
	// loading itself (default 2 min).
	MaxWait time.Duration
	// Poll is the waiting replicas' polling backoff (default 10 ms to 250 ms).
	Poll Backoff
	// Logger may be nil.
	Logger *slog.Logger
	// Metrics may be nil; Loads counts load calls.
	Metrics *Metrics
}

// Group loads missing values at most once per key at a time: once per
// process via singleflight and, while Redis is up, once across replicas.
type Group struct {
	cache   *Tiered
	redis   *Redis
	lockTTL time.Duration
	maxWait time.Duration
	poll    Backoff
	log     *slog.Logger
	metrics *Metrics
	sf      singleflight.Group
}

// NewGroup returns a Group.
func NewGroup(opts GroupOptions) (*Group, error) {
	if opts.Cache == nil {
		return nil, errors.New("cache: group needs a Cache")
	}
	g := &Group{
		cache:   opts.Cache,
		lockTTL: opts.LockTTL,
		maxWait: opts.MaxWait,
		poll:    opts.Poll.withDefaults(10*time.Millisecond, 250*time.Millisecond),
		log:     opts.Logger,
		metrics: opts.Metrics,
	}
	g.redis, _ = opts.Cache.remote.(*Redis)
	if g.lockTTL <= 0 {
		g.lockTTL = 10 * time.Second
	}
	if g.lockTTL < 3*time.Millisecond {
		return nil, fmt.Errorf("cache: group LockTTL %v too short", g.lockTTL)
	}
	if g.maxWait <= 0 {
		g.maxWait = 2 * time.Minute
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// Do returns the cached value for key or, on a miss, the result of load,
// which it stores with ttl. Concurrent callers of the same key share one
// load (the first caller's load and ttl win). The shared load runs on a
// context detached from any one caller's cancellation; each caller stops
// waiting when its own ctx ends. Load errors are returned and not cached.
func (g *Group) Do(ctx context.Context, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, error) {
	if ttl < 0 {
		return nil, ErrNegativeTTL
	}
	v, ok, err := g.cache.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if ok {
		return v, nil
	}
	detached := context.WithoutCancel(ctx)
	ch := g.sf.DoChan(key, func() (any, error) {
		return g.fill(detached, key, ttl, load)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cache: waiting for %q: %w", key, ctx.Err())
	}
}

// fill runs once per key per process at a time.
func (g *Group) fill(ctx context.Context, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, error) {
	// A flight that finished between the caller's Get and this one has
	// already stored the value.
	if v, ok, _ := g.cache.get(ctx, key, false); ok {
		return v, nil
	}
	if g.redis == nil || !g.cache.RemoteUp() {
		return g.loadAndSet(ctx, key, ttl, load)
	}

	wctx, cancel := context.WithTimeout(ctx, g.maxWait)
	v, l, err := g.redis.lockOrValue(wctx, key, g.lockTTL, func(ctx context.Context) ([]byte, bool, error) {
		v, ok, _ := g.cache.get(ctx, key, false)
		return v, ok, nil
	}, g.poll)
	cancel()
	switch {
	case err != nil:
		if !errors.Is(err, ErrWaitTimeout) {
			g.cache.remoteResult(ctx, err)
		}
		g.log.Debug("cache: loading without the cross-replica lock", "key", key, "err", err)
		return g.loadAndSet(ctx, key, ttl, load)
	case l == nil:
		return v, nil
	}
	defer l.release(ctx)
	// The previous holder may have stored the value and released the lock
	// between our last look and our SET NX.
	if v, ok, _ := g.cache.get(ctx, key, false); ok {
		return v, nil
	}
	stop := g.keepAlive(ctx, l)
	defer stop()
	return g.loadAndSet(ctx, key, ttl, load)
}

// loadAndSet stores before returning, so the lock is released only after
// the value is visible to waiting replicas.
func (g *Group) loadAndSet(ctx context.Context, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, error) {
	g.metrics.load()
	v, err := load(ctx)
	if err != nil {
		return nil, fmt.Errorf("cache: load %q: %w", key, err)
	}
	if err := g.cache.Set(ctx, key, v, ttl); err != nil {
		return nil, fmt.Errorf("cache: store %q: %w", key, err)
	}
	return v, nil
}

// keepAlive renews the lock every LockTTL/3 until stop is called, so a slow
// load keeps its lock and a crashed holder's lock still expires.
func (g *Group) keepAlive(ctx context.Context, l *lease) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(g.lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ectx, cancel := context.WithTimeout(ctx, g.lockTTL/3)
				ok, err := l.extend(ectx)
				cancel()
				if err == nil && !ok {
					g.log.Warn("cache: lost load lock; another replica may load too", "key", l.key)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
