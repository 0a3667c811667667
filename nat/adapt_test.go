package nat

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/natgw/natgw/internal/testtask"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.Supernet, c.Data, c.Out = "s.safetensors", "data", "models/toy"
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("defaults with paths: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no supernet", func(c *Config) { c.Supernet = "" }, "Supernet: no checkpoint"},
		{"no data", func(c *Config) { c.Data = "" }, "Data: no data set"},
		{"no out", func(c *Config) { c.Out = "" }, "Out: no task folder"},
		{"bad name", func(c *Config) { c.Name = "Bad Name" }, `Name "Bad Name"`},
		{"negative iterations", func(c *Config) { c.Iterations = -1 }, "Iterations -1"},
		{"zero epochs", func(c *Config) { c.Epochs = 0 }, "Epochs 0: want ≥ 1"},
		{"zero batch", func(c *Config) { c.Batch = 0 }, "Batch 0"},
		{"three evals", func(c *Config) { c.Evals = 3 }, "Evals 3: want ≥ 4"},
		{"three final evals", func(c *Config) { c.FinalEvals = 3 }, "FinalEvals 3"},
		{"negative carry", func(c *Config) { c.Carry = -1 }, "Carry -1"},
		{"tiny resolution", func(c *Config) { c.Resolution = 4 }, "Resolution 4"},
		{"bad train size", func(c *Config) { c.TrainResolutions = []int{96, 2} }, "TrainResolutions [96 2]: size 2"},
		{"elite and list", func(c *Config) { c.EliteResolutions, c.TrainResolutions = true, []int{96} }, "not beside EliteResolutions"},
		{"average too large", func(c *Config) { c.Average = 4 }, "Average 4: want 0..Iterations+1 = 3"},
		{"zero lr", func(c *Config) { c.LR = 0 }, "LR 0"},
		{"smoothing 1", func(c *Config) { c.LabelSmoothing = 1 }, "LabelSmoothing 1"},
		{"crop scale 0", func(c *Config) { c.CropScale = 0 }, "CropScale 0"},
		{"uniform 2", func(c *Config) { c.Uniform = 2 }, "Uniform 2"},
		{"kd without sizes", func(c *Config) { c.TopKD = true }, "TopKD needs TopSizes"},
		{"kd weight without kd", func(c *Config) { c.TopKDWeight = 2 }, "TopKDWeight 2 needs TopKD"},
		{"negative kd weight", func(c *Config) { c.TopKDWeight = -1 }, "TopKDWeight -1: want ≥ 0"},
		{"zero budget", func(c *Config) { c.Budgets = []int64{25e6, 0} }, "0 is not a positive MAdds count"},
		{"latency without threads", func(c *Config) { c.ORTThreads = 0 }, "ORTThreads 0"},
	} {
		c := good()
		tc.edit(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a ConfigError with %q", tc.name, err, tc.want)
		}
	}
	// Every problem is reported, not the first alone.
	c := good()
	c.Epochs, c.LR = 0, 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Epochs") || !strings.Contains(err.Error(), "LR") {
		t.Errorf("two problems: %v", err)
	}
}

// toyConfig is a tiny adaptation: one round of search and fine-tuning, then the final
// search, on three classes of solid images.
func toyConfig(t *testing.T, dir string) Config {
	t.Helper()
	c := DefaultConfig()
	c.Supernet = testtask.Checkpoint(t, dir, 3, []int{24, 32})
	c.Data = testtask.Data(t, dir, 4, "train", "val")
	c.Out = filepath.Join(dir, "models", "toy")
	c.Iterations, c.Epochs, c.Batch, c.Resolution = 1, 2, 4, 32
	c.Evals, c.FinalEvals, c.Initial, c.PerIteration, c.Carry, c.CalibImages = 5, 6, 4, 2, 2, 6
	c.Workers, c.Latency, c.Budgets = 1, false, []int64{1e9}
	c.TrainResolutions = []int{24, 32}
	return c
}

// TestRunResumesToTheSameTask: an adaptation killed in the middle of its fine-tuning round,
// then run again, writes exactly the task an uninterrupted run writes.
func TestRunResumesToTheSameTask(t *testing.T) {
	whole := toyConfig(t, t.TempDir())
	want, err := Run(context.Background(), whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Rounds) != 2 || want.Rounds[0].Steps == 0 {
		t.Fatalf("uninterrupted run: %+v", want.Rounds)
	}

	// Killed during the fine-tuning's fourth step, its state saved every second step: the
	// rerun keeps the round's search, resumes the training from the saved state and ends
	// where the uninterrupted run did.
	killed := toyConfig(t, t.TempDir())
	killed.StateEvery = 2
	ctx, cancel := context.WithCancel(context.Background())
	var kills atomic.Int32
	_, err = Run(ctx, killed, func(e Event) {
		if e.Stage == StageFineTune && e.Done == 4 && kills.Add(1) == 1 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v, want context.Canceled", err)
	}
	if exists(filepath.Join(killed.Out, task.ArchiveFile)) || !exists(filepath.Join(killed.Out+".work", "train-0.state")) {
		t.Fatal("the killed run wrote a task, or no training state")
	}
	var resumed bool
	got, err := Run(context.Background(), killed, func(e Event) {
		resumed = resumed || e.Message == "fine-tuning resumed at step 4"
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{task.ArchiveFile, task.SupernetFile, task.ManifestFile, task.LabelsFile, task.BNStatsFile} {
		a, err1 := os.ReadFile(filepath.Join(whole.Out, name))
		b, err2 := os.ReadFile(filepath.Join(killed.Out, name))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run (%v, %v)", name, err1, err2)
		}
	}
	if len(got.Archive) != len(want.Archive) || got.Front[len(got.Front)-1].Hash != want.Front[len(want.Front)-1].Hash {
		t.Fatalf("results differ: %d/%d entries", len(got.Archive), len(want.Archive))
	}
	if !resumed {
		t.Fatal("the rerun did not resume the fine-tuning from its saved state")
	}
}

// TestRunRefusesTopOutsideTheSpace: a Top the supernet's space cannot hold is a
// ConfigError before any training.
func TestRunRefusesTopOutsideTheSpace(t *testing.T) {
	c := toyConfig(t, t.TempDir())
	sn, err := supernet.Load(c.Supernet, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top := sn.Spec.Largest()
	top.R = 4
	c.Top = &top
	_, err = Run(context.Background(), c, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Top") {
		t.Fatalf("err %v, want a ConfigError naming Top", err)
	}
	if exists(filepath.Join(c.Work, "weights-1.safetensors")) {
		t.Fatal("trained before refusing")
	}
}
