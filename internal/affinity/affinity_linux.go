package affinity

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Split moves every thread of the process off cpus, onto the other CPUs it may use, and
// returns those. Threads created later inherit the mask of their creator, so Go's own
// threads stay there; PinThread then puts chosen threads on cpus. It fails when cpus
// are not all usable or leave nothing for the rest.
func Split(cpus []int) (rest []int, err error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("affinity: %w", err)
	}
	var restSet unix.CPUSet
	for c := range maxCPU {
		if allowed.IsSet(c) {
			restSet.Set(c)
		}
	}
	for _, c := range cpus {
		if !allowed.IsSet(c) {
			return nil, fmt.Errorf("affinity: CPU %d is not available to this process (allowed: %s)", c, Format(members(&allowed)))
		}
		restSet.Clear(c)
	}
	rest = members(&restSet)
	if len(rest) == 0 {
		return nil, fmt.Errorf("affinity: CPUs %s are all this process may use (%s): none left for the rest", Format(cpus), Format(members(&allowed)))
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("affinity: list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread may exit meanwhile (ESRCH): nothing to move.
		if err := unix.SchedSetaffinity(tid, &restSet); err != nil && err != unix.ESRCH {
			return nil, fmt.Errorf("affinity: thread %d: %w", tid, err)
		}
	}
	return rest, nil
}

// PinThread restricts the calling OS thread to cpus. Call it with the goroutine locked to
// its thread (runtime.LockOSThread) and let the goroutine exit still locked, so that the
// thread ends with it instead of returning to Go's pool pinned.
func PinThread(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("affinity: pin thread to %s: %w", Format(cpus), err)
	}
	return nil
}

// Background is the niceness LowerThread gives a thread: the kernel runs any thread of
// normal priority first.
const Background = 19

// LowerThread sets the calling OS thread's niceness (Linux schedules threads, so this
// touches no other thread of the process). Lock the goroutine to its thread first
// (runtime.LockOSThread), and keep it locked: a thread handed back to Go's pool would
// carry the lower priority to whatever goroutine runs on it next.
func LowerThread(nice int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice); err != nil {
		return fmt.Errorf("affinity: lower thread priority to %d: %w", nice, err)
	}
	return nil
}

// ThreadNice returns the calling OS thread's niceness.
func ThreadNice() (int, error) {
	// getpriority's raw value is 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		return 0, fmt.Errorf("affinity: %w", err)
	}
	return 20 - p, nil
}

// Thread returns the CPUs the calling OS thread may run on.
func Thread() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("affinity: %w", err)
	}
	return members(&set), nil
}

func members(s *unix.CPUSet) []int {
	var out []int
	for c := range maxCPU {
		if s.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
