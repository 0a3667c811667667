package affinity

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// threadCPUs returns every thread's allowed CPUs.
func threadCPUs(t *testing.T) map[int][]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]int{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &s); err == nil {
			out[tid] = members(&s)
		}
	}
	return out
}

func TestSplitAndPin(t *testing.T) {
	before, err := Thread()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) < 2 {
		t.Skipf("needs two usable CPUs, has %v", before)
	}
	inference := before[len(before)-1:]
	t.Cleanup(func() {
		var all unix.CPUSet
		for _, c := range before {
			all.Set(c)
		}
		for tid := range threadCPUs(t) {
			_ = unix.SchedSetaffinity(tid, &all)
		}
	})

	if _, err := Split(before); err == nil {
		t.Error("Split of every usable CPU left nothing for the rest, and did not fail")
	}
	if _, err := Split([]int{maxCPU - 1}); err == nil {
		t.Error("Split of an unusable CPU did not fail")
	}
	rest, err := Split(inference)
	if err != nil {
		t.Fatal(err)
	}
	if want := before[:len(before)-1]; !slices.Equal(rest, want) {
		t.Fatalf("rest = %v, want %v", rest, want)
	}
	for tid, cpus := range threadCPUs(t) {
		if !slices.Equal(cpus, rest) {
			t.Errorf("thread %d on %v after Split, want %v", tid, cpus, rest)
		}
	}

	got := make(chan []int)
	go func() {
		runtime.LockOSThread() // never unlocked: the pinned thread ends with the goroutine
		if err := PinThread(inference); err != nil {
			t.Error(err)
		}
		cpus, _ := Thread()
		got <- cpus
	}()
	if cpus := <-got; !slices.Equal(cpus, inference) {
		t.Errorf("pinned thread on %v, want %v", cpus, inference)
	}
	if cpus, _ := Thread(); !slices.Equal(cpus, rest) {
		t.Errorf("this thread moved to %v, want %v", cpus, rest)
	}
}
