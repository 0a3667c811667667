package trainer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// TestFlowersShortRun trains a small supernet from scratch on Flowers102's train split at
// 64 px for a few epochs: the training loss must fall and the largest subnet's validation
// accuracy must beat chance (1/102) by a wide margin. It also checks that the resumable
// state round-trips.
func TestFlowersShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	root := sharedDir(t, "data/flowers102")
	trainSet, err := dataset.Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	valSet, err := dataset.Open(root, "val")
	if err != nil {
		t.Fatal(err)
	}
	const r, batch = 64, 32
	spec := tinySpec(len(trainSet.Classes))
	spec.Stages[0].Width, spec.Stages[1].Width = 24, 40
	spec.FinalExpand.Out, spec.FeatureMix.Out = 192, 256
	sn, err := supernet.Random(spec, 11)
	if err != nil {
		t.Fatal(err)
	}
	eval := preprocess.DefaultSpec(r)
	train, err := dataset.NewLoader(dataset.Config{Set: trainSet, Spec: eval, Batch: batch, Shuffle: true, Seed: 5,
		Augment: &dataset.Augment{RandomResizedCrop: true, ScaleMin: 0.35, ScaleMax: 1, HFlip: true}, DropLast: true, CacheDecoded: true})
	if err != nil {
		t.Fatal(err)
	}
	val, err := dataset.NewLoader(dataset.Config{Set: valSet, Spec: eval, Batch: 100, CacheDecoded: true})
	if err != nil {
		t.Fatal(err)
	}
	calib, err := dataset.NewLoader(dataset.Config{Set: trainSet.Subset(300, 1), Spec: eval, Batch: 100, CacheDecoded: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Epochs, cfg.Subnets = batch, r, 8, 1
	cfg.LR, cfg.WarmupSteps = 0.1, 10
	cfg.Checkpoint = filepath.Join(t.TempDir(), "state")
	cfg.Progress = os.Stderr
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := Data{Train: train, Val: val, Calib: calib}
	ctx := context.Background()
	before, err := tr.Validate(ctx, d, spec.Largest())
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Fit(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	largest := res.Evals[len(res.Evals)-2]
	t.Logf("steps %d, %.1f images/s, loss %.3f → %.3f, largest val accuracy %.4f → %.4f (chance %.4f), smallest %.4f",
		res.Steps, res.ImagesPerSec, res.FirstLoss, res.FinalLoss, before.Accuracy, largest.Accuracy, 1.0/102, res.Evals[len(res.Evals)-1].Accuracy)
	if !(res.FinalLoss < res.FirstLoss-0.3) {
		t.Errorf("training loss %.3f → %.3f did not fall", res.FirstLoss, res.FinalLoss)
	}
	if largest.Accuracy < 5.0/102 {
		t.Errorf("largest subnet's validation accuracy %.4f is not well above chance", largest.Accuracy)
	}
	// The saved state resumes into an identical trainer.
	sn2, err := supernet.Random(spec, 99)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := New(sn2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Resume(cfg.Checkpoint); err != nil {
		t.Fatal(err)
	}
	if tr2.StepCount() != res.Steps {
		t.Errorf("resumed at step %d, want %d", tr2.StepCount(), res.Steps)
	}
	for _, p := range sn.Params() {
		q := sn2.Tensor(p.Name)
		if d := maxAbsDiff(q, p.Data); d != 0 || math.IsNaN(d) {
			t.Fatalf("%s: resumed tensor differs by %g", p.Name, d)
		}
	}
	if tr2.rng.Uint64() != tr.rng.Uint64() {
		t.Error("resumed generator differs")
	}
}
