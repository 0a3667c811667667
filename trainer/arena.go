package trainer

import "math/bits"

// arena hands out float32 buffers for one graph run and takes them all back at reset, so
// that the hundreds of megabytes a training step touches are not garbage each step.
// Buffers come in size classes (four per power of two) so that subnets of other shapes
// reuse them. It is used from one goroutine at a time (the tape machine runs ops in order).
type arena struct {
	free map[int][][]float32
	used [][]float32
	// held is the number of floats owned (free and used); beyond maxHeld, reset drops
	// the free lists instead of keeping them.
	held    int
	maxHeld int
}

func newArena(maxFloats int) *arena {
	return &arena{free: map[int][][]float32{}, maxHeld: maxFloats}
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
	if l := a.free[c]; len(l) > 0 {
		b = l[len(l)-1]
		a.free[c] = l[:len(l)-1]
	} else {
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

// reset makes every buffer handed out since the last reset available again.
func (a *arena) reset() {
	if a.held > a.maxHeld {
		a.free = map[int][][]float32{}
		a.held = 0
		for i := range a.used {
			a.used[i] = nil
		}
		a.used = a.used[:0]
		return
	}
	for i, b := range a.used {
		a.free[cap(b)] = append(a.free[cap(b)], b[:cap(b)])
		a.used[i] = nil
	}
	a.used = a.used[:0]
}
