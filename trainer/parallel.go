package trainer

import (
	"runtime"
	"sync"
)

// workers is how many goroutines share c independent units of about total elements of
// work: one per core, fewer when the work is too small to pay for the goroutines.
func workers(c, total int) int {
	return max(1, min(runtime.GOMAXPROCS(0), c, total/(1<<15)))
}

// runRanges splits [0,c) into w contiguous ranges run concurrently.
func runRanges(c, w int, fn func(lo, hi int)) {
	var wg sync.WaitGroup
	for i := range w - 1 {
		lo, hi := i*c/w, (i+1)*c/w
		wg.Go(func() { fn(lo, hi) })
	}
	fn((w-1)*c/w, c)
	wg.Wait()
}

// forChannels runs fn for every channel in [0,c), split over the cores when the work
// (about total elements touched) is large enough.
func forChannels(c, total int, fn func(ch int)) {
	w := workers(c, total)
	if w <= 1 {
		for ch := range c {
			fn(ch)
		}
		return
	}
	runRanges(c, w, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			fn(ch)
		}
	})
}
