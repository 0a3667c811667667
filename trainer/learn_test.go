package trainer

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// tinySpec is a small elastic MobileNetV3-style space for fast learning tests.
func tinySpec(classes int) *supernet.Spec {
	s := supernet.OFAMobileNetV3(1.0, classes)
	s.Name = "tiny"
	s.Stem.Out = 8
	s.First.Out = 8
	s.Stages = []supernet.Stage{
		{Width: 16, Stride: 2, Act: supernet.ActReLU, Depths: []int{1, 2}},
		{Width: 24, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2}},
	}
	s.FinalExpand = &supernet.Pointwise{Out: 64, BN: true, Act: supernet.ActHSwish}
	s.FeatureMix = &supernet.Pointwise{Out: 96, Act: supernet.ActHSwish}
	return s
}

// TestStepsFitFixedBatch: repeated sandwich steps on one batch must drive its loss down
// and the largest subnet's accuracy up (the gradients point downhill through every op).
func TestStepsFitFixedBatch(t *testing.T) {
	const classes, n, r = 5, 16, 24
	sn, err := supernet.Random(tinySpec(classes), 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.LabelSmoothing = n, r, 1, 0.05, 0
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, n*3*r*r)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
		for j := range 3 * r * r {
			// Class-dependent mean so that the task is learnable.
			x[i*3*r*r+j] = float32(rng.NormFloat64()) + float32(labels[i]-2)*0.5*float32(j%3)
		}
	}
	var first, last StepResult
	for s := range 40 {
		res, err := tr.Step(context.Background(), x, cfg.Resolution, labels, cfg.LR)
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 {
			first = res
		}
		last = res
	}
	t.Logf("largest: loss %.3f → %.3f, accuracy %.2f → %.2f", first.LargestLoss, last.LargestLoss, first.LargestAcc, last.LargestAcc)
	if !(last.LargestLoss < 0.5*first.LargestLoss) || last.LargestAcc < 0.9 {
		t.Errorf("no fit: largest loss %.3f → %.3f, accuracy %.2f → %.2f", first.LargestLoss, last.LargestLoss, first.LargestAcc, last.LargestAcc)
	}
}

// TestFixedTrainsOneSubnet: with Config.Fixed a step runs that subnet alone, so weights
// only larger subnets use (the second block of a stage whose fixed depth is 1) stay as
// they were, while the fixed subnet's own weights move.
func TestFixedTrainsOneSubnet(t *testing.T) {
	const classes, n, r = 5, 8, 24
	sn, err := supernet.Random(tinySpec(classes), 4)
	if err != nil {
		t.Fatal(err)
	}
	fixed := sn.Spec.Smallest()
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.LR, cfg.Fixed = n, r, 0.05, &fixed
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(sn)
	x := noise(n*3*r*r, 1)
	labels := []int{0, 1, 2, 3, 4, 0, 1, 2}
	res, err := tr.Step(context.Background(), x, cfg.Resolution, labels, cfg.LR)
	if err != nil {
		t.Fatal(err)
	}
	if res.Subnets != 1 {
		t.Fatalf("%d subnets in a fixed step", res.Subnets)
	}
	moved := func(name string) bool { return maxAbsDiff(before[name], sn.Tensor(name)) > 0 }
	// Stage depths are 1 in the smallest subnet: blocks.2 is the second block of stage 0.
	for _, name := range []string{"blocks.2.conv.depth_conv.conv.conv.weight", "classifier.linear.weight"} {
		if _, ok := sn.Param(name); !ok {
			t.Fatalf("no tensor %s", name)
		}
	}
	if moved("blocks.2.conv.depth_conv.conv.conv.weight") {
		t.Error("a block outside the fixed subnet was updated")
	}
	if !moved("classifier.linear.weight") {
		t.Error("the fixed subnet's classifier did not move")
	}
	bad := fixed
	bad.D = []int{9, 9}
	cfg.Fixed = &bad
	if _, err := New(sn, cfg); err == nil {
		t.Error("a fixed subnet outside the space was accepted")
	}
}

// TestTrainableLimitsUpdate: with Trainable accepting only the classifier, a step moves
// the classifier and nothing else (a linear probe).
func TestTrainableLimitsUpdate(t *testing.T) {
	const classes, n, r = 5, 8, 24
	sn, err := supernet.Random(tinySpec(classes), 4)
	if err != nil {
		t.Fatal(err)
	}
	fixed := sn.Spec.Largest()
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.LR, cfg.Fixed = n, r, 0.05, &fixed
	cfg.Trainable = func(name string) bool { return strings.HasPrefix(name, "classifier.") }
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(sn)
	x := noise(n*3*r*r, 2)
	for range 2 {
		if _, err := tr.Step(context.Background(), x, cfg.Resolution, []int{0, 1, 2, 3, 4, 0, 1, 2}, cfg.LR); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range sn.Params() {
		moved := maxAbsDiff(before[p.Name], sn.Tensor(p.Name)) > 0
		isHead := strings.HasPrefix(p.Name, "classifier.")
		// BatchNorm running statistics follow the batches in train mode; they are buffers, not learned.
		if strings.Contains(p.Name, "running_") {
			continue
		}
		if moved != isHead {
			t.Errorf("%s: moved %v", p.Name, moved)
		}
	}
}

// snapshot copies every tensor of sn by name.
func snapshot(sn *supernet.Supernet) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range sn.Params() {
		out[p.Name] = append([]float32(nil), sn.Tensor(p.Name)...)
	}
	return out
}

// noise is n standard-normal values from a fixed seed.
func noise(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}
