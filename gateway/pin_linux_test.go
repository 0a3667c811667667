package gateway

import (
	"bytes"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natgw/natgw/internal/affinity"
	"github.com/natgw/natgw/task"
)

// pinnedThreads counts the process's threads allowed exactly cpus; with skipMain, not the
// main thread: Go never ends it, and a locked goroutine exiting on it leaves it parked
// for good instead (runtime.mexit), so it never runs Go code again.
func pinnedThreads(t *testing.T, cpus []int, skipMain bool) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if skipMain && tid == os.Getpid() {
			continue
		}
		var s unix.CPUSet
		if unix.SchedGetaffinity(tid, &s) != nil {
			continue
		}
		var got []int
		for c := range 1024 {
			if s.IsSet(c) {
				got = append(got, c)
			}
		}
		if slices.Equal(got, cpus) {
			n++
		}
	}
	return n
}

// TestPinnedInference: with Batch.CPUs the batcher runs on those CPUs, and its thread ends
// with it instead of going back to Go's pool pinned.
func TestPinnedInference(t *testing.T) {
	all, err := affinity.Thread()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skipf("needs two usable CPUs, has %v", all)
	}
	cpus := all[len(all)-1:]
	sessions, env := testSessions(t) // one intra-op thread: the batcher's thread is the only one pinned
	ts := newTestServer(t, Config{Tasks: []*task.Task{testTask(t, "shapes")}, Sessions: sessions, LiveSessions: env.LiveSessions,
		Batch: BatchConfig{MaxBatch: 4, CPUs: cpus}})
	if n := pinnedThreads(t, cpus, true); n != 0 {
		t.Fatalf("%d threads pinned before any inference", n)
	}
	before := pinnedThreads(t, cpus, false) // the main thread, parked by an earlier run

	res, err := http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G", "image/png", bytes.NewReader(testPNG(t, 7, 40, 40)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("classify: %d", res.StatusCode)
	}
	if n := pinnedThreads(t, cpus, false) - before; n != 1 {
		t.Fatalf("%d threads newly pinned to %v while the batcher lives, want 1", n, cpus)
	}
	deadline := time.Now().Add(batcherIdle + 5*time.Second)
	for pinnedThreads(t, cpus, true) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pinned thread still alive after the batcher retired")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
