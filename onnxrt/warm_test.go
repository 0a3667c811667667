package onnxrt

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// TestCacheWarmBatches: a Cache of an Env with WarmBatches runs each new session at those
// batch sizes, in order, before handing it out. Seen in onnxruntime's profile: the input
// shapes of the model's node runs, before and besides the one run the test makes.
func TestCacheWarmBatches(t *testing.T) {
	requireLibrary(t)
	prefix := filepath.Join(t.TempDir(), "prof")
	env, err := NewEnv(Config{IntraOpThreads: 1, InterOpThreads: 1, ProfilePrefix: prefix, WarmBatches: []int{5, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	c := NewCache(env, 2, 1<<20)
	m := tinyModel(t, 3, nil)
	lease, err := c.Get(context.Background(), shaHex(m), func(context.Context) ([]byte, error) { return m, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := runTiny(t, lease.Session, model{scale: 3}); err != nil {
		t.Fatal(err)
	}
	again, err := c.Get(context.Background(), shaHex(m), func(context.Context) ([]byte, error) { return m, nil })
	if err != nil {
		t.Fatal(err)
	}
	if lease.Built <= 0 || again.Built != 0 {
		t.Errorf("Built: %v on the load, %v on the hit; want > 0, then 0", lease.Built, again.Built)
	}
	again.Release()
	lease.Release()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(prefix + "_*.json")
	if len(files) != 1 {
		t.Fatalf("profile files %v, want one", files)
	}
	var events []struct {
		Name string `json:"name"`
		Args struct {
			OpName string               `json:"op_name"`
			Input  []map[string][]int64 `json:"input_type_shape"`
		} `json:"args"`
	}
	if err := json.Unmarshal(readFile(t, files[0]), &events); err != nil {
		t.Fatal(err)
	}
	var batches []int64
	for _, e := range events {
		if e.Args.OpName != "Mul" || len(e.Args.Input) == 0 {
			continue
		}
		for _, shape := range e.Args.Input[0] {
			batches = append(batches, shape[0])
		}
	}
	// Each node run has a few profile events (fence, kernel time); keep one per run.
	batches = slices.Compact(batches)
	if want := []int64{5, 2, 1}; !slices.Equal(batches, want) {
		t.Fatalf("batch sizes of the model's runs %v, want %v (warm-up 5, 2, then the test's run)", batches, want)
	}
}

// TestWarmSymbolicShape: a model whose input has a symbolic dimension besides the batch
// cannot be warmed (ErrSymbolicShape), and a Cache that warms still serves it, cold.
func TestWarmSymbolicShape(t *testing.T) {
	requireLibrary(t)
	env, err := NewEnv(Config{IntraOpThreads: 1, InterOpThreads: 1, WarmBatches: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	m := tinyModelShape(t, "batch", "n")
	s, err := env.NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Warm(context.Background(), []int{4}); !errors.Is(err, ErrSymbolicShape) {
		t.Errorf("Warm of input [batch, n]: %v, want ErrSymbolicShape", err)
	}
	if err := s.Warm(context.Background(), nil); err != nil {
		t.Errorf("Warm at no batch size: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := NewCache(env, 2, 1<<20)
	defer c.Close()
	lease, err := c.Get(context.Background(), shaHex(m), func(context.Context) ([]byte, error) { return m, nil })
	if err != nil {
		t.Fatalf("cache of a warming Env refused a model it cannot warm: %v", err)
	}
	defer lease.Release()
	if err := runTiny(t, lease.Session, model{scale: 3}); err != nil {
		t.Fatal(err)
	}
}

// TestWarmBadBatch: batch sizes below 1 are refused, not run.
func TestWarmBadBatch(t *testing.T) {
	env := newTestEnv(t, 1)
	s, err := env.NewSession(tinyModel(t, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range []int{0, -3} {
		if err := s.Warm(context.Background(), []int{b}); err == nil {
			t.Errorf("Warm at batch %d: no error", b)
		}
	}
}
