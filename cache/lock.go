package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// lockRelease bounds the release call, which runs on a detached context so
// a cancelled caller still frees the lock.
const lockRelease = time.Second

// ErrWaitTimeout is returned by [Redis.LockOrValue] when ctx ends before the
// value appeared or the lock was won.
var ErrWaitTimeout = errors.New("cache: gave up waiting for lock or value")

// lease is one held lock, identified by its random token.
type lease struct {
	r     *Redis
	key   string // full Redis key
	token string
	ttl   time.Duration
	once  sync.Once
}

func (r *Redis) lockKey(key string) string { return r.prefix + "lock:" + key }

// acquire tries once to take the lock on key with SET NX PX.
func (r *Redis) acquire(ctx context.Context, key string, ttl time.Duration) (*lease, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("cache: lock ttl %v below 1ms", ttl)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("cache: lock token: %w", err)
	}
	l := &lease{r: r, key: r.lockKey(key), token: hex.EncodeToString(b[:]), ttl: ttl}
	ok, err := r.client.SetNX(ctx, l.key, l.token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("cache: redis lock %q: %w", key, err)
	}
	if !ok {
		return nil, false, nil
	}
	return l, true, nil
}

// release deletes the lock only if it still carries our token, so a lock
// that expired and was taken by someone else survives. Idempotent.
func (l *lease) release(ctx context.Context) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockRelease)
		defer cancel()
		// An error leaves the lock to expire by its TTL, which is the safe outcome.
		_ = l.r.unlock.Run(ctx, l.r.client, []string{l.key}, l.token).Err()
	})
}

// extend resets the lock's TTL if we still hold it; false means it was lost.
func (l *lease) extend(ctx context.Context) (bool, error) {
	n, err := l.r.extend.Run(ctx, l.r.client, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("cache: redis extend lock: %w", err)
	}
	return n == 1, nil
}

// Lock tries once to take a cross-replica lock on key that expires after
// ttl. When acquired, unlock releases it if it is still ours; calling
// unlock more than once is harmless.
func (r *Redis) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), acquired bool, err error) {
	l, ok, err := r.acquire(ctx, key, ttl)
	if err != nil || !ok {
		return nil, false, err
	}
	return func() { l.release(ctx) }, true, nil
}

// Backoff is a doubling delay between Min and Max.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) withDefaults(min, max time.Duration) Backoff {
	if b.Min <= 0 {
		b.Min = min
	}
	if b.Max < b.Min {
		b.Max = max
		if b.Max < b.Min {
			b.Max = b.Min
		}
	}
	return b
}

// LockOrValue waits until either get reports a value (returned as val) or
// the lock on key is won (unlock is non-nil; the caller loads, stores and
// then unlocks). It polls with poll's backoff and gives up with
// ErrWaitTimeout when ctx ends; errors from get or Redis are returned.
func (r *Redis) LockOrValue(ctx context.Context, key string, ttl time.Duration,
	get func(context.Context) ([]byte, bool, error), poll Backoff) (val []byte, unlock func(), err error) {
	v, l, err := r.lockOrValue(ctx, key, ttl, get, poll)
	if err != nil || l == nil {
		return v, nil, err
	}
	return nil, func() { l.release(ctx) }, nil
}

func (r *Redis) lockOrValue(ctx context.Context, key string, ttl time.Duration,
	get func(context.Context) ([]byte, bool, error), poll Backoff) ([]byte, *lease, error) {
	poll = poll.withDefaults(10*time.Millisecond, 250*time.Millisecond)
	delay := poll.Min
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		v, ok, err := get(ctx)
		if err != nil {
			if ctxDone(ctx) {
				return nil, nil, fmt.Errorf("%w: %w", ErrWaitTimeout, err)
			}
			return nil, nil, err
		}
		if ok {
			return v, nil, nil
		}
		l, ok, err := r.acquire(ctx, key, ttl)
		if err != nil {
			if ctxDone(ctx) {
				return nil, nil, fmt.Errorf("%w: %w", ErrWaitTimeout, err)
			}
			return nil, nil, err
		}
		if ok {
			return nil, l, nil
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrWaitTimeout, ctx.Err())
		case <-timer.C:
		}
		delay = min(2*delay, poll.Max)
	}
}
