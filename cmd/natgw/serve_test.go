package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// writeTask saves a small random-weight task under root/name.
func writeTask(t *testing.T, root, name string) {
	t.Helper()
	spec := supernet.OFAMobileNetV3(1.0, 3)
	sn, err := supernet.Random(spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	a := &task.Archive{}
	for _, arch := range []supernet.Arch{spec.Smallest(), spec.Largest()} {
		sub, _ := sn.Extract(arch)
		c := sub.Count()
		a.Put(task.Entry{Arch: arch, Hash: arch.Hash(), MAdds: c.MAdds, Params: c.Params, Top1: float64(c.MAdds) / 1e9, Split: task.SplitVal})
	}
	tk := &task.Task{Manifest: task.Manifest{Name: name, Preprocess: preprocess.DefaultSpec(0)}, Supernet: sn,
		Labels: []string{"a", "b", "c"}, Archive: a}
	if err := task.Save(filepath.Join(root, name), tk, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestServeShutdown: serve starts ready on a task folder; on cancellation readiness turns
// off before the server drains, and run returns cleanly.
func TestServeShutdown(t *testing.T) {
	root := t.TempDir()
	writeTask(t, root, "demo")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--models", root, "--shutdown-delay", "1500ms",
			"--access-log=false", "--search-time", "0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "natgw listening on "))
	ready := func() int {
		res, err := http.Get("http://" + addr + "/v2/health/ready")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := ready(); code != 200 {
		t.Fatalf("ready before shutdown: %d", code)
	}
	res, err := http.Get("http://" + addr + "/v1/models?task=demo&madds=1G")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("models: %v %v", err, res)
	}
	res.Body.Close()
	cancel()
	deadline := time.Now().Add(time.Second)
	for ready() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readiness still on during the shutdown delay")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeNoTasks(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--models", filepath.Join(t.TempDir(), "none"), "--access-log=false"}, pw, io.Discard)
		pw.Close()
	}()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "natgw listening on "))
	res, err := http.Get("http://" + addr + "/v2/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ready with no tasks: %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeBadFlags(t *testing.T) {
	t.Setenv("NATGW_MAX_BATCH", "lots")
	_, _, err := runCLI(t, "serve", "--models", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "NATGW_MAX_BATCH") || exitCode(err) != 2 {
		t.Fatalf("err %v", err)
	}
}

func TestServeBadOrtFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ort-spin", "sometimes"}, "--ort-spin"},
		{[]string{"--ort-spin", ""}, "--ort-spin"},
		{[]string{"--ort-cpus", "one"}, "--ort-cpus"},
		{[]string{"--ort-cpus", "3-1"}, "--ort-cpus"},
		{[]string{"--ort-cpus", "1", "--ort-threads", "2"}, "--ort-threads 2 with --ort-cpus 1"},
		{[]string{"--warm-batch", "-2"}, "--warm-batch -2"},
		{[]string{"--warm-batch", "17"}, "--warm-batch 17 exceeds --max-batch 16"},
		{[]string{"--warm-batch", "4", "--max-batch", "2"}, "--warm-batch 4 exceeds --max-batch 2"},
	} {
		_, _, err := runCLI(t, append([]string{"serve", "--models", t.TempDir()}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
			t.Errorf("%v: err %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}
