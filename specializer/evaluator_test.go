package specializer

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func newTestEvaluator(t *testing.T, data string, arch *task.Archive) *SubnetEvaluator {
	t.Helper()
	ev, err := NewSubnetEvaluator(context.Background(), EvalConfig{
		Supernet: tinySupernet(t), Data: data, Template: preprocess.DefaultSpec(0),
		CalibImages: 24, CalibBatch: 10, CalibSeed: 5, EvalBatch: 16, Archive: arch,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestEvaluatorDeterministicAndCached(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 12, "val": 8, "test": 4})
	ev := newTestEvaluator(t, data, nil)
	spec := ev.Spec()
	rng := rand.New(rand.NewPCG(1, 1))
	archs := []supernet.Arch{spec.Smallest(), spec.Largest(), RandomArch(spec, rng), RandomArch(spec, rng)}
	first := make([]task.Entry, len(archs))
	for i, a := range archs {
		e, err := ev.Evaluate(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := spec.Canonical(a)
		cnt, _ := CountArch(spec, c)
		if e.Hash != c.Hash() || e.Split != task.SplitVal || e.MAdds != cnt.MAdds || e.Params != cnt.Params || e.Top1 < 0 || e.Top1 > 1 {
			t.Fatalf("entry %+v for %s", e, c)
		}
		first[i] = e
	}
	if s := ev.Stats(); s.Measured != len(archs) || s.CacheHits != 0 {
		t.Fatalf("stats %+v after %d distinct archs", s, len(archs))
	}
	// Cached: same entries, nothing measured again.
	for i, a := range archs {
		e, err := ev.Evaluate(context.Background(), a)
		if err != nil || !reflect.DeepEqual(e, first[i]) {
			t.Fatalf("cached evaluation %d: %+v, %v; want %+v", i, e, err, first[i])
		}
	}
	if s := ev.Stats(); s.Measured != len(archs) || s.CacheHits != len(archs) {
		t.Fatalf("stats %+v after repeats", s)
	}
	// Deterministic: a fresh evaluator (same seed) measures the same accuracies, evaluating
	// in another order and with the tensor cache bounded to one resolution.
	ev2, err := NewSubnetEvaluator(context.Background(), EvalConfig{
		Supernet: tinySupernet(t), Data: data, Template: preprocess.DefaultSpec(0),
		CalibImages: 24, CalibBatch: 10, CalibSeed: 5, EvalBatch: 5, MaxTensorBytes: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(archs) - 1; i >= 0; i-- {
		e, err := ev2.Evaluate(context.Background(), archs[i])
		if err != nil || !reflect.DeepEqual(e, first[i]) {
			t.Fatalf("fresh evaluator, arch %d: %+v, %v; want %+v", i, e, err, first[i])
		}
	}
	// Recalibration matters: another calibration sample gives other statistics; at least
	// the logits change, so some accuracy or nothing may move; check the run works.
	if _, err := ev2.Evaluate(context.Background(), RandomArch(spec, rng)); err != nil {
		t.Fatal(err)
	}
}

func TestEvaluatorUsesArchive(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 6, "val": 4})
	spec := tinySpec()
	a := spec.Largest()
	arch := &task.Archive{}
	arch.Put(task.Entry{Arch: a, Hash: a.Hash(), MAdds: 1, Params: 2, Top1: 0.123, Split: task.SplitVal, Source: task.SourceSynthetic})
	ev := newTestEvaluator(t, data, arch)
	e, err := ev.Evaluate(context.Background(), a)
	if err != nil || e.Top1 != 0.123 {
		t.Fatalf("got %+v, %v; want the archive's entry", e, err)
	}
	if s := ev.Stats(); s.Measured != 0 || s.CacheHits != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEvaluatorRefusesTestSplit(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 2, "val": 2, "test": 2})
	for _, split := range []string{"test", "TEST", "../test", "holdout"} {
		_, err := NewSubnetEvaluator(context.Background(), EvalConfig{
			Supernet: tinySupernet(t), Data: data, Template: preprocess.DefaultSpec(0), CalibSplit: split})
		if !errors.Is(err, ErrSplitRefused) {
			t.Errorf("calibration split %q: err %v, want ErrSplitRefused", split, err)
		}
	}
	if _, err := openSplit(data, task.SplitTest); !errors.Is(err, ErrSplitRefused) {
		t.Errorf("openSplit(test): %v", err)
	}
	// val as calibration split is allowed.
	if _, err := NewSubnetEvaluator(context.Background(), EvalConfig{
		Supernet: tinySupernet(t), Data: data, Template: preprocess.DefaultSpec(0), CalibSplit: "val"}); err != nil {
		t.Errorf("calibration on val: %v", err)
	}
}

func TestEvaluatorClassMismatch(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 1, "val": 1})
	sn, err := supernet.Random(supernet.OFAMobileNetV3(1.0, 5), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSubnetEvaluator(context.Background(), EvalConfig{Supernet: sn, Data: data, Template: preprocess.DefaultSpec(0)}); err == nil {
		t.Fatal("5-class supernet on a 3-class data set: no error")
	}
}

// The evaluator's cached tensors and loop give what the dataset Loader's eval batches
// give through the plain supernet API.
func TestEvaluatorMatchesLoaderPipeline(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 10, "val": 6})
	ev := newTestEvaluator(t, data, nil)
	sn := tinySupernet(t)
	a := RandomArch(sn.Spec, rand.New(rand.NewPCG(3, 3)))
	got, err := ev.Evaluate(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pp := preprocess.DefaultSpec(a.R)
	train, err := dataset.Open(data, "train")
	if err != nil {
		t.Fatal(err)
	}
	calib, err := dataset.NewLoader(dataset.Config{Set: train.Subset(24, 5), Spec: pp, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := sn.Extract(a)
	if err != nil {
		t.Fatal(err)
	}
	err = sub.Recalibrate(ctx, func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		return calib.Epoch(ctx, 0, func(b dataset.Batch) error { return fn(b.X, b.N, a.R, a.R) })
	})
	if err != nil {
		t.Fatal(err)
	}
	valSet, err := dataset.Open(data, "val")
	if err != nil {
		t.Fatal(err)
	}
	val, err := dataset.NewLoader(dataset.Config{Set: valSet, Spec: pp, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	net := sub.Compile()
	correct, n := 0, 0
	err = val.Epoch(ctx, 0, func(b dataset.Batch) error {
		logits, err := net.Forward(ctx, b.X, b.N, a.R, a.R)
		if err != nil {
			return err
		}
		for i := range b.N {
			if scores.Argmax(logits[i*3:(i+1)*3]) == b.Labels[i] {
				correct++
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(correct) / float64(n); got.Top1 != want {
		t.Fatalf("evaluator top-1 %v, loader pipeline %v", got.Top1, want)
	}
	t.Logf("top-1 %v on %d val images (random weights)", got.Top1, n)
}

// The calibration batch changes the statistics (not only their rounding), so a search that
// leaves it unset must measure with the batch that serving recalibrates with.
func TestEvaluatorDefaultCalibBatchIsServing(t *testing.T) {
	data := writeShapes(t, map[string]int{"train": 4, "val": 2})
	ev, err := NewSubnetEvaluator(context.Background(), EvalConfig{
		Supernet: tinySupernet(t), Data: data, Template: preprocess.DefaultSpec(0), CalibImages: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.cfg.CalibBatch != task.CalibBatch {
		t.Fatalf("default calibration batch %d, serving recalibrates with %d", ev.cfg.CalibBatch, task.CalibBatch)
	}
}

func TestEvalConfigSpec(t *testing.T) {
	cfg := EvalConfig{Template: preprocess.DefaultSpec(0), Crops: map[int]float64{96: 0.5}}
	for _, tc := range []struct {
		r    int
		crop float64
	}{{96, 0.5}, {128, cfg.Template.CropFraction}} {
		if p := cfg.spec(tc.r); p.Resolution != tc.r || p.CropFraction != tc.crop {
			t.Errorf("spec(%d) = resolution %d crop %v, want crop %v", tc.r, p.Resolution, p.CropFraction, tc.crop)
		}
	}
}
