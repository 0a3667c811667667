package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/task"
)

// shippedTasks are the default tasks in the repository's models folder.
var shippedTasks = []string{"cifar10", "flowers"}

// maxTaskBytes is the size limit of one shipped task folder.
const maxTaskBytes = 20 << 20

// TestShippedTasks checks the tasks natgw serves by default: each folder loads, stays
// within its size limit, and serves only measurements of its own weights, with the
// final test-split accuracy recorded for every front member (natgw evaluate), every
// subnet's BatchNorm statistics stored and the val images present (natgw task calibrate).
func TestShippedTasks(t *testing.T) {
	root := filepath.Join(testutil.RepoRoot(t), "models")
	tasks, err := task.LoadAll(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tk := range tasks {
		names = append(names, tk.Name)
	}
	if strings.Join(names, ",") != strings.Join(shippedTasks, ",") {
		t.Fatalf("shipped tasks %v, want %v", names, shippedTasks)
	}
	for _, tk := range tasks {
		var size int64
		filepath.WalkDir(tk.Dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					size += info.Size()
				}
			}
			return nil
		})
		if size > maxTaskBytes {
			t.Errorf("%s: %d bytes, over %d", tk.Name, size, maxTaskBytes)
		}
		if tk.Archive.SupernetVersion != tk.Supernet.Version() {
			t.Errorf("%s: archive measured on %q, supernet is %q", tk.Name, tk.Archive.SupernetVersion, tk.Supernet.Version())
		}
		if len(tk.Calib) == 0 {
			t.Errorf("%s: no calibration images", tk.Name)
		}
		// Served with no forward pass, and able to measure new subnets: every measured
		// subnet's statistics are stored, and the val images are there.
		for _, e := range tk.Archive.Snapshot() {
			if _, _, ok := tk.Stats.Lookup(e.Hash); !ok && !e.Predicted {
				t.Errorf("%s: no stored statistics for %s", tk.Name, e.Hash[:12])
			}
		}
		if val, err := tk.ValImages(); err != nil || len(val) < 100 {
			t.Errorf("%s: %d val images (%v)", tk.Name, len(val), err)
		}
		front := task.Front(tk.Archive.Snapshot())
		if len(front) < 3 {
			t.Errorf("%s: front of %d", tk.Name, len(front))
		}
		for _, e := range front {
			if e.Split != task.SplitVal || e.TestTop1 == nil {
				t.Errorf("%s: front member %s: split %q, test_top1 %v", tk.Name, e.Hash[:12], e.Split, e.TestTop1)
			}
		}
		t.Logf("%s: %d subnets, front of %d, %.1f MB", tk.Name, tk.Archive.Len(), len(front), float64(size)/1e6)
	}
}

// TestServeShippedDefaults runs natgw serve with no flags but the address from the
// repository root, asks both shipped tasks for a 300M-MAdds model and classifies real
// Flowers102 test images through /v1/classify.
func TestServeShippedDefaults(t *testing.T) {
	t.Chdir(testutil.RepoRoot(t))
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--access-log=false"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	base := "http://" + strings.TrimSpace(strings.TrimPrefix(line, "natgw listening on "))
	for _, name := range shippedTasks {
		res, err := http.Get(base + "/v1/models?task=" + name + "&madds=300M")
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			MAdds    int64 `json:"madds"`
			Accuracy struct {
				Top1     float64  `json:"top1"`
				Split    string   `json:"split"`
				TestTop1 *float64 `json:"test_top1"`
			} `json:"accuracy"`
		}
		err = json.NewDecoder(res.Body).Decode(&m)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || m.MAdds > 300e6 || m.Accuracy.Split != task.SplitVal || m.Accuracy.Top1 <= 0 || m.Accuracy.TestTop1 == nil {
			t.Fatalf("%s at 300M: status %d, %+v (%v)", name, res.StatusCode, m, err)
		}
		t.Logf("%s at 300M: %.0fM MAdds, val top-1 %.4f, test top-1 %.4f", name, float64(m.MAdds)/1e6, m.Accuracy.Top1, *m.Accuracy.TestTop1)
	}

	// Real images: the first image of each of the first 20 flower classes.
	data := testutil.Shared(t, "data/flowers102")
	set, err := dataset.Open(data, "test")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	correct, n := 0, 0
	for _, it := range set.Items {
		if it.Label >= 20 || seen[it.Label] {
			continue
		}
		seen[it.Label] = true
		img, err := os.ReadFile(it.Path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.Post(base+"/v1/classify?task=flowers&madds=300M", "image/jpeg", strings.NewReader(string(img)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable && os.Getenv("NATGW_REQUIRE_ORT") != "1" {
			t.Skipf("inference unavailable (onnxruntime missing?): %s", body)
		}
		var out struct {
			Predictions []struct {
				Label string `json:"label"`
			} `json:"predictions"`
		}
		if err := json.Unmarshal(body, &out); err != nil || res.StatusCode != 200 || len(out.Predictions) == 0 {
			t.Fatalf("classify %s: %d %s", it.Path, res.StatusCode, body)
		}
		n++
		if out.Predictions[0].Label == set.Labels[it.Label] {
			correct++
		}
	}
	t.Logf("flowers at 300M: %d/%d real test images right", correct, n)
	// Chance is 1 in 102; the served model claims well over half.
	if n != 20 || correct < 8 {
		t.Fatalf("%d/%d test images classified right", correct, n)
	}
}

// TestReproduceCheck: scripts/reproduce-tasks.sh check passes on the shipped tasks as
// committed, and fails when one byte of one file changes or a file is added.
func TestReproduceCheck(t *testing.T) {
	root := testutil.RepoRoot(t)
	out := t.TempDir()
	for _, name := range shippedTasks {
		if err := os.CopyFS(filepath.Join(out, name), os.DirFS(filepath.Join(root, "models", name))); err != nil {
			t.Fatal(err)
		}
	}
	check := func() error {
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "reproduce-tasks.sh"), "check")
		cmd.Env = append(os.Environ(), "OUT="+out)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, b)
		}
		return nil
	}
	if err := check(); err != nil {
		t.Fatalf("the shipped tasks fail their own check: %v", err)
	}
	victim := filepath.Join(out, "flowers", task.ArchiveFile)
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(data, []byte("0."), []byte("1."), 1)
	os.WriteFile(victim, changed, 0o644)
	if err := check(); err == nil {
		t.Fatal("a changed archive.json passed the check")
	}
	os.WriteFile(victim, data, 0o644)
	os.WriteFile(filepath.Join(out, "cifar10", "extra.txt"), []byte("x"), 0o644)
	if err := check(); err == nil || !strings.Contains(err.Error(), "extra.txt") {
		t.Fatalf("an extra file passed the check: %v", err)
	}
}
