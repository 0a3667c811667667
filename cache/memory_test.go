package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newMem(t *testing.T, opts MemoryOptions) *Memory {
	t.Helper()
	m, err := NewMemory(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// op is one step of a Memory scenario.
type op struct {
	do      string // set, get, del, advance
	key     string
	val     string
	ttl     time.Duration
	wantOK  bool   // for get
	wantVal string // for get
}

func TestMemoryScenarios(t *testing.T) {
	// Keys are 1 byte, so an entry "a"+"xxxx" costs 5 bytes.
	tests := []struct {
		name       string
		maxBytes   int64
		maxEntries int
		ops        []op
		wantLen    int
		wantBytes  int64
	}{
		{
			name: "evicts least recently used by bytes", maxBytes: 15,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "set", key: "b", val: "bbbb"},
				{do: "set", key: "c", val: "cccc"},
				{do: "get", key: "a", wantOK: true, wantVal: "aaaa"}, // a is now most recent
				{do: "set", key: "d", val: "dddd"},                   // evicts b
				{do: "get", key: "b"},
				{do: "get", key: "a", wantOK: true, wantVal: "aaaa"},
				{do: "get", key: "c", wantOK: true, wantVal: "cccc"},
				{do: "get", key: "d", wantOK: true, wantVal: "dddd"},
			},
			wantLen: 3, wantBytes: 15,
		},
		{
			name: "large entry evicts several", maxBytes: 15,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "set", key: "b", val: "bbbb"},
				{do: "set", key: "c", val: "cccc"},
				{do: "set", key: "d", val: "ddddddddd"}, // 10 bytes: a and b must go
				{do: "get", key: "a"},
				{do: "get", key: "b"},
				{do: "get", key: "c", wantOK: true, wantVal: "cccc"},
				{do: "get", key: "d", wantOK: true, wantVal: "ddddddddd"},
			},
			wantLen: 2, wantBytes: 15,
		},
		{
			name: "entry cap", maxBytes: 1000, maxEntries: 2,
			ops: []op{
				{do: "set", key: "a", val: "1"},
				{do: "set", key: "b", val: "2"},
				{do: "set", key: "c", val: "3"},
				{do: "get", key: "a"},
				{do: "get", key: "b", wantOK: true, wantVal: "2"},
			},
			wantLen: 2, wantBytes: 4,
		},
		{
			name: "oversize entry is not stored", maxBytes: 10,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "set", key: "b", val: "bbbbbbbbbb"}, // 11 bytes > cap
				{do: "get", key: "b"},
				{do: "get", key: "a", wantOK: true, wantVal: "aaaa"},
			},
			wantLen: 1, wantBytes: 5,
		},
		{
			name: "oversize replacement drops the stale value", maxBytes: 10,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "set", key: "a", val: "aaaaaaaaaaaa"},
				{do: "get", key: "a"},
			},
			wantLen: 0, wantBytes: 0,
		},
		{
			name: "entry exactly at cap is stored", maxBytes: 5,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "get", key: "a", wantOK: true, wantVal: "aaaa"},
			},
			wantLen: 1, wantBytes: 5,
		},
		{
			name: "overwrite updates size", maxBytes: 100,
			ops: []op{
				{do: "set", key: "a", val: "aaaa"},
				{do: "set", key: "a", val: "aa"},
				{do: "get", key: "a", wantOK: true, wantVal: "aa"},
			},
			wantLen: 1, wantBytes: 3,
		},
		{
			name: "ttl expiry", maxBytes: 100,
			ops: []op{
				{do: "set", key: "a", val: "1", ttl: time.Minute},
				{do: "set", key: "b", val: "2"}, // no expiry
				{do: "advance", ttl: time.Minute - time.Nanosecond},
				{do: "get", key: "a", wantOK: true, wantVal: "1"},
				{do: "advance", ttl: time.Nanosecond},
				{do: "get", key: "a"},
				{do: "advance", ttl: 1000 * time.Hour},
				{do: "get", key: "b", wantOK: true, wantVal: "2"},
			},
			wantLen: 1, wantBytes: 2,
		},
		{
			name: "overwrite resets ttl", maxBytes: 100,
			ops: []op{
				{do: "set", key: "a", val: "1", ttl: time.Second},
				{do: "set", key: "a", val: "2"},
				{do: "advance", ttl: time.Hour},
				{do: "get", key: "a", wantOK: true, wantVal: "2"},
			},
			wantLen: 1, wantBytes: 2,
		},
		{
			name: "delete", maxBytes: 100,
			ops: []op{
				{do: "set", key: "a", val: "1"},
				{do: "del", key: "a"},
				{do: "del", key: "missing"},
				{do: "get", key: "a"},
			},
			wantLen: 0, wantBytes: 0,
		},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			m := newMem(t, MemoryOptions{MaxBytes: tc.maxBytes, MaxEntries: tc.maxEntries, Now: clk.Now})
			for i, o := range tc.ops {
				switch o.do {
				case "set":
					if err := m.Set(ctx, o.key, []byte(o.val), o.ttl); err != nil {
						t.Fatalf("op %d set: %v", i, err)
					}
				case "get":
					v, ok, err := m.Get(ctx, o.key)
					if err != nil || ok != o.wantOK || string(v) != o.wantVal {
						t.Fatalf("op %d get %q = %q, %v, %v; want %q, %v", i, o.key, v, ok, err, o.wantVal, o.wantOK)
					}
				case "del":
					if err := m.Delete(ctx, o.key); err != nil {
						t.Fatalf("op %d del: %v", i, err)
					}
				case "advance":
					clk.Advance(o.ttl)
				default:
					t.Fatalf("bad op %q", o.do)
				}
			}
			if m.Len() != tc.wantLen || m.Bytes() != tc.wantBytes {
				t.Fatalf("Len, Bytes = %d, %d; want %d, %d", m.Len(), m.Bytes(), tc.wantLen, tc.wantBytes)
			}
		})
	}
}

func TestMemoryOptionsAndTTLErrors(t *testing.T) {
	for _, o := range []MemoryOptions{{MaxBytes: 0}, {MaxBytes: -1}, {MaxBytes: 10, MaxEntries: -1}} {
		if _, err := NewMemory(o); err == nil {
			t.Errorf("NewMemory(%+v) accepted", o)
		}
	}
	m := newMem(t, MemoryOptions{MaxBytes: 10})
	if err := m.Set(context.Background(), "a", []byte("x"), -time.Second); err == nil {
		t.Fatal("negative ttl accepted")
	}
}

func TestMemoryCopiesOnSet(t *testing.T) {
	m := newMem(t, MemoryOptions{MaxBytes: 100})
	buf := []byte("abc")
	_ = m.Set(context.Background(), "k", buf, 0)
	buf[0] = 'X'
	if v, _, _ := m.Get(context.Background(), "k"); string(v) != "abc" {
		t.Fatalf("stored value aliased the caller's buffer: %q", v)
	}
}

// TestMemoryConcurrent is meant for -race; it also checks the caps hold.
func TestMemoryConcurrent(t *testing.T) {
	const maxBytes = 2000
	m := newMem(t, MemoryOptions{MaxBytes: maxBytes, MaxEntries: 50})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				key := fmt.Sprintf("k%d", (i*7+w)%97)
				switch i % 4 {
				case 0, 1:
					_ = m.Set(ctx, key, make([]byte, i%60), time.Duration(i%3)*time.Hour)
				case 2:
					if v, ok, _ := m.Get(ctx, key); ok && len(v) >= 60 {
						t.Errorf("corrupt value length %d", len(v))
					}
				case 3:
					_ = m.Delete(ctx, key)
				}
				if b, n := m.Bytes(), m.Len(); b > maxBytes || n > 50 {
					t.Errorf("caps exceeded: %d bytes, %d entries", b, n)
				}
			}
		}()
	}
	wg.Wait()
	var sum int64
	for k, el := range m.items {
		sum += int64(len(k) + len(el.Value.(*memEntry).val))
	}
	if sum != m.Bytes() || len(m.items) != m.ll.Len() {
		t.Fatalf("accounting drift: map %d bytes / %d items, counters %d / %d", sum, len(m.items), m.Bytes(), m.ll.Len())
	}
}
