package onnxrt

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrModelTooLarge is returned (wrapped) when one model alone exceeds the cache's byte cap.
var ErrModelTooLarge = errors.New("onnxrt: model larger than the cache byte cap")

// Cache holds sessions keyed by the hex SHA-256 of their model bytes, capped by
// count and by total model bytes, with LRU eviction. An evicted session is
// destroyed when its last Lease is released. Model bytes are the size measure
// because they track the weights a session keeps in memory.
type Cache struct {
	env         *Env
	maxSessions int
	maxBytes    int64

	mu      sync.Mutex
	entries map[string]*cacheEntry
	lru     *list.List // front = most recently used; values are *cacheEntry
	bytes   int64
	loading map[string]*loadCall
	closed  bool
}

type cacheEntry struct {
	key     string
	sess    *Session
	size    int64
	refs    int  // leases not yet released
	evicted bool // out of the map; destroy at refs == 0
	elem    *list.Element
}

// loadCall is one in-progress cold load that concurrent Gets of the same key wait on.
type loadCall struct {
	done    chan struct{}
	waiters int         // Gets waiting; each is given a reference on success
	ent     *cacheEntry // set on success
	err     error
}

// Lease is a reference to a cached session. Use Session, then call Release once.
type Lease struct {
	Session *Session
	// Built is how long this Get took to fetch, compile and warm the session; zero when
	// it found the session cached or waited for another Get's load.
	Built time.Duration

	c    *Cache
	ent  *cacheEntry
	once sync.Once
}

// Release returns the lease. When the session was evicted (or the cache closed)
// and this was its last lease, the session is destroyed here. Safe to call twice.
func (l *Lease) Release() {
	l.once.Do(func() { l.c.release(l.ent) })
}

// NewCache returns a cache of at most maxSessions sessions and maxBytes model bytes.
// A value <= 0 takes the Env's Config value, and if that is 0 the package default.
func NewCache(env *Env, maxSessions int, maxBytes int64) *Cache {
	if maxSessions <= 0 {
		maxSessions = env.cfg.MaxSessions
	}
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	if maxBytes <= 0 {
		maxBytes = env.cfg.MaxBytes
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Cache{
		env:         env,
		maxSessions: maxSessions,
		maxBytes:    maxBytes,
		entries:     map[string]*cacheEntry{},
		lru:         list.New(),
		loading:     map[string]*loadCall{},
	}
}

// Get returns a lease on the session for the model whose SHA-256 is sha (hex).
// On a miss it calls load for the model bytes (once, however many Gets wait),
// checks their hash and builds the session.
func (c *Cache) Get(ctx context.Context, sha string, load func(ctx context.Context) ([]byte, error)) (*Lease, error) {
	key := strings.ToLower(sha)
	if len(key) != sha256.Size*2 {
		return nil, fmt.Errorf("onnxrt: cache get: key %q is not a hex SHA-256", sha)
	}
	if _, err := hex.DecodeString(key); err != nil {
		return nil, fmt.Errorf("onnxrt: cache get: key %q is not a hex SHA-256: %w", sha, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("onnxrt: cache get %s: %w", key, err)
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("onnxrt: cache get %s: %w", key, ErrClosed)
		}
		if ent, ok := c.entries[key]; ok {
			ent.refs++
			c.lru.MoveToFront(ent.elem)
			c.mu.Unlock()
			return c.lease(ent), nil
		}
		if call, ok := c.loading[key]; ok {
			call.waiters++
			c.mu.Unlock()
			lease, retry, err := c.wait(ctx, key, call)
			if retry {
				continue
			}
			return lease, err
		}
		call := &loadCall{done: make(chan struct{})}
		c.loading[key] = call
		c.mu.Unlock()
		return c.load(ctx, key, call, load)
	}
}

// wait blocks on another Get's load. retry reports that the loader gave up only
// because its own context ended while ours is still live.
func (c *Cache) wait(ctx context.Context, key string, call *loadCall) (lease *Lease, retry bool, err error) {
	select {
	case <-call.done:
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-call.done:
			// Finished while we were giving up: we hold a reference that must be returned.
			c.mu.Unlock()
			if call.err == nil {
				c.release(call.ent)
			}
		default:
			call.waiters--
			c.mu.Unlock()
		}
		return nil, false, fmt.Errorf("onnxrt: cache get %s: %w", key, ctx.Err())
	}
	if call.err != nil {
		if (errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			return nil, true, nil
		}
		return nil, false, call.err
	}
	return c.lease(call.ent), false, nil
}

// load runs a cold load for key and publishes the result to waiters.
func (c *Cache) load(ctx context.Context, key string, call *loadCall, load func(ctx context.Context) ([]byte, error)) (*Lease, error) {
	start := time.Now()
	sess, size, err := c.build(ctx, key, load)

	c.mu.Lock()
	delete(c.loading, key)
	if err == nil && c.closed {
		err = fmt.Errorf("onnxrt: cache get %s: %w", key, ErrClosed)
	}
	var evicted []*Session
	if err == nil {
		ent := &cacheEntry{key: key, sess: sess, size: size, refs: 1 + call.waiters}
		ent.elem = c.lru.PushFront(ent)
		c.entries[key] = ent
		c.bytes += size
		call.ent = ent
		evicted = c.evictLocked()
	}
	call.err = err
	close(call.done)
	c.mu.Unlock()

	if err != nil {
		if sess != nil {
			_ = sess.Close()
		}
		return nil, err
	}
	_ = destroy(evicted) // a failed destroy cannot be undone; the new session is fine
	l := c.lease(call.ent)
	l.Built = time.Since(start)
	return l, nil
}

// build fetches, verifies and compiles one model. It runs without the cache lock.
func (c *Cache) build(ctx context.Context, key string, load func(ctx context.Context) ([]byte, error)) (*Session, int64, error) {
	model, err := load(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: %w", key, err)
	}
	size := int64(len(model))
	if size > c.maxBytes {
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: %d bytes > cap %d: %w", key, size, c.maxBytes, ErrModelTooLarge)
	}
	sum := sha256.Sum256(model)
	if got := hex.EncodeToString(sum[:]); got != key {
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: model bytes hash to %s", key, got)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: %w", key, err)
	}
	sess, err := c.env.NewSession(model)
	if err != nil {
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: %w", key, err)
	}
	// A model of symbolic height or width serves cold rather than not at all.
	if err := sess.Warm(ctx, c.env.cfg.WarmBatches); err != nil && !errors.Is(err, ErrSymbolicShape) {
		_ = sess.Close()
		return nil, 0, fmt.Errorf("onnxrt: cache load %s: %w", key, err)
	}
	return sess, size, nil
}

// evictLocked drops least recently used entries until both caps hold and returns
// the sessions that can be destroyed now (those without leases). The newest
// entry is never dropped: it is at the front and alone fits both caps.
func (c *Cache) evictLocked() []*Session {
	var now []*Session
	for c.lru.Len() > c.maxSessions || c.bytes > c.maxBytes {
		back := c.lru.Back()
		if back == nil || back == c.lru.Front() {
			break
		}
		if s := c.removeLocked(back.Value.(*cacheEntry)); s != nil {
			now = append(now, s)
		}
	}
	return now
}

// removeLocked takes ent out of the cache; it returns ent's session when no lease holds it.
func (c *Cache) removeLocked(ent *cacheEntry) *Session {
	c.lru.Remove(ent.elem)
	delete(c.entries, ent.key)
	c.bytes -= ent.size
	ent.evicted = true
	if ent.refs == 0 {
		return ent.sess
	}
	return nil
}

func (c *Cache) lease(ent *cacheEntry) *Lease {
	return &Lease{Session: ent.sess, c: c, ent: ent}
}

func (c *Cache) release(ent *cacheEntry) {
	c.mu.Lock()
	ent.refs--
	if ent.refs < 0 {
		c.mu.Unlock()
		panic("onnxrt: cache lease released more often than acquired")
	}
	last := ent.refs == 0 && ent.evicted
	c.mu.Unlock()
	if last {
		_ = ent.sess.Close()
	}
}

func destroy(sessions []*Session) error {
	var errs []error
	for _, s := range sessions {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Len is the number of cached sessions (evicted ones still leased are not counted).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Bytes is the total model size of the cached sessions.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Close empties the cache and refuses further Gets. Sessions without leases are
// destroyed now; leased ones when their last lease is released. Loads still
// running are destroyed when they finish. Idempotent.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	var now []*Session
	for c.lru.Len() > 0 {
		if s := c.removeLocked(c.lru.Back().Value.(*cacheEntry)); s != nil {
			now = append(now, s)
		}
	}
	c.mu.Unlock()
	if err := destroy(now); err != nil {
		return fmt.Errorf("onnxrt: close cache: %w", err)
	}
	return nil
}
