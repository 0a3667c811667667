package trainer

import (
	"math/bits"
	"slices"
)

// arena hands out float32 buffers for one graph run and takes them all back at reset, so
// that the hundreds of megabytes a training step touches are not garbage each step.
// Buffers come in size classes (four per power of two) so that subnets of other shapes
// reuse them. It is used from one goroutine at a time (the tape machine runs ops in order).
type arena struct {
	free map[int][]freeBuf
	used [][]float32
	// held is the number of floats owned (free and used). Beyond the limit, reset drops
	// the free buffers least recently used, never those of the run just ended: the next
	// run of the same subnet needs them again.
	held    int
	maxHeld int
	// peak is the largest number of floats one run has used; the limit is at least 1.5×
	// that, since a run that needs more than the limit would otherwise reallocate (and
	// page-fault in) all its buffers every time.
	peak int
	gen  int // runs ended so far
}

// freeBuf is a free buffer and the run (gen) that last used it.
type freeBuf struct {
	b   []float32
	gen int
}

func newArena(maxFloats int) *arena {
	return &arena{free: map[int][]freeBuf{}, maxHeld: maxFloats}
}

// sizeClass rounds n up to 1, 1.25, 1.5 or 1.75 times a power of two.
func sizeClass(n int) int {
	if n <= 16 {
		return 16
	}
	p := bits.Len(uint(n-1)) - 1 // 2^p < n ≤ 2^(p+1)
	step := 1 << max(p-2, 0)
	return (n + step - 1) / step * step
}

// get returns a buffer of n floats with unspecified contents.
func (a *arena) get(n int) []float32 {
	c := sizeClass(n)
	var b []float32
	// Its own class first, else a free buffer of up to twice the size: runs at another
	// input resolution (elastic-resolution training) ask for other sizes, and allocating
	// them all would overflow the limit and page in fresh memory every step.
	for f := c; f <= 2*c && b == nil; f = sizeClass(f + 1) {
		if l := a.free[f]; len(l) > 0 {
			b = l[len(l)-1].b
			l[len(l)-1] = freeBuf{}
			a.free[f] = l[:len(l)-1]
		}
	}
	if b == nil {
		b = make([]float32, c)
		a.held += c
	}
	a.used = append(a.used, b)
	return b[:n]
}

// zeros returns a zeroed buffer of n floats.
func (a *arena) zeros(n int) []float32 {
	b := a.get(n)
	clear(b)
	return b
}

// limit is the number of floats reset keeps at most.
func (a *arena) limit() int { return max(a.maxHeld, a.peak+a.peak/2) }

// reset makes every buffer handed out since the last reset available again.
func (a *arena) reset() {
	a.gen++
	run := 0
	for i, b := range a.used {
		run += cap(b)
		a.free[cap(b)] = append(a.free[cap(b)], freeBuf{b: b[:cap(b)], gen: a.gen})
		a.used[i] = nil
	}
	a.used = a.used[:0]
	a.peak = max(a.peak, run)
	if a.held > a.limit() {
		a.trim()
	}
}

// trim drops free buffers, least recently used first, until held is within the limit or
// only buffers of the last run are left.
func (a *arena) trim() {
	var old []freeBuf
	for c, l := range a.free {
		keep := l[:0]
		for _, f := range l {
			if f.gen == a.gen {
				keep = append(keep, f)
			} else {
				old = append(old, f)
			}
		}
		clear(l[len(keep):])
		a.free[c] = keep
	}
	// Most recent first and, within a run, smallest first, so that the tail (what goes
	// first) is the largest of the oldest.
	slices.SortFunc(old, func(x, y freeBuf) int {
		if x.gen != y.gen {
			return y.gen - x.gen
		}
		return cap(x.b) - cap(y.b)
	})
	for len(old) > 0 && a.held > a.limit() {
		a.held -= cap(old[len(old)-1].b)
		old[len(old)-1] = freeBuf{}
		old = old[:len(old)-1]
	}
	for _, f := range old {
		c := cap(f.b)
		a.free[c] = append(a.free[c], f)
	}
}
