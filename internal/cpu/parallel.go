package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// workerLimit is the process-wide cap on goroutines one op may use; 0 means GOMAXPROCS.
// It is a tuning knob (like GOMAXPROCS itself), read atomically on every op.
var workerLimit atomic.Int64

// Workers reports how many goroutines one op may use (default runtime.GOMAXPROCS(0)).
func Workers() int {
	if n := int(workerLimit.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// SetWorkers sets the per-op goroutine cap; n <= 0 restores the default. It returns the previous
// setting (0 for the default).
func SetWorkers(n int) int {
	if n < 0 {
		n = 0
	}
	return int(workerLimit.Swap(int64(n)))
}

const (
	// minFlopsPerWorker keeps each extra goroutine busy for roughly 10µs or more, well above
	// the cost of starting and joining it.
	minFlopsPerWorker = 1 << 18
	// minElemsPerWorker is the same threshold for memory-bound elementwise ops.
	minElemsPerWorker = 1 << 15
)

// workersFor picks the goroutine count for a job of the given size split into at most tasks parts.
func workersFor(work float64, perWorker float64, tasks int) int {
	return workersCapped(Workers(), work, perWorker, tasks)
}

// workersCapped is workersFor with an explicit cap.
func workersCapped(w int, work float64, perWorker float64, tasks int) int {
	if byWork := int(work / perWorker); byWork < w {
		w = byWork
	}
	if tasks < w {
		w = tasks
	}
	return max(w, 1)
}

// parallel splits [0,n) into w contiguous chunks and runs fn(worker, lo, hi) for each, the
// last chunk on the calling goroutine.
func parallel(n, w int, fn func(worker, lo, hi int)) {
	if w <= 1 || n <= 1 {
		fn(0, 0, n)
		return
	}
	w = min(w, n)
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 0; i < w-1; i++ {
		lo, hi := i*n/w, (i+1)*n/w
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	fn(w-1, (w-1)*n/w, n)
	wg.Wait()
}
