package cache

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryOptions configures a [Memory].
type MemoryOptions struct {
	// MaxBytes caps the sum of len(key)+len(value) over all entries; required.
	MaxBytes int64
	// MaxEntries caps the number of entries; 0 means no entry cap.
	MaxEntries int
	// Now is the clock used for TTLs; nil means time.Now.
	Now func() time.Time
}

// Memory is an in-process LRU cache bounded by bytes, safe for concurrent use.
// All operations are O(1) apart from the evictions a Set triggers.
type Memory struct {
	maxBytes   int64
	maxEntries int
	now        func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = most recently used
	items map[string]*list.Element
	bytes int64
}

type memEntry struct {
	key     string
	val     []byte
	expires time.Time // zero: no expiry
}

func (e *memEntry) size() int64 { return int64(len(e.key) + len(e.val)) }

// NewMemory returns an empty Memory.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	if opts.MaxBytes <= 0 {
		return nil, errors.New("cache: memory MaxBytes must be positive")
	}
	if opts.MaxEntries < 0 {
		return nil, errors.New("cache: memory MaxEntries must not be negative")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Memory{
		maxBytes:   opts.MaxBytes,
		maxEntries: opts.MaxEntries,
		now:        now,
		ll:         list.New(),
		items:      make(map[string]*list.Element),
	}, nil
}

// Get returns the value for key and marks it most recently used. It never
// returns an error.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*memEntry)
	if !e.expires.IsZero() && !m.now().Before(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.ll.MoveToFront(el)
	return e.val, true, nil
}

// Set stores a copy of val. An entry larger than MaxBytes is not stored (and
// any older value under key is dropped, so a stale value is never served).
func (m *Memory) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl < 0 {
		return ErrNegativeTTL
	}
	e := &memEntry{key: key, val: append([]byte(nil), val...)}
	if ttl > 0 {
		e.expires = m.now().Add(ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	if e.size() > m.maxBytes {
		return nil
	}
	m.items[key] = m.ll.PushFront(e)
	m.bytes += e.size()
	for m.bytes > m.maxBytes || (m.maxEntries > 0 && m.ll.Len() > m.maxEntries) {
		m.remove(m.ll.Back())
	}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	return nil
}

// Len reports the number of entries, expired ones not yet dropped included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}

// Bytes reports the summed len(key)+len(value) of all entries.
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

func (m *Memory) remove(el *list.Element) {
	e := m.ll.Remove(el).(*memEntry)
	delete(m.items, e.key)
	m.bytes -= e.size()
}

var _ Store = (*Memory)(nil)
