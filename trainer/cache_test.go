package trainer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// TestGraphReuseSeesNewInput runs a cached graph on two batches: the second run must
// compute on the new input, and equal inputs must give equal logits.
func TestGraphReuseSeesNewInput(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	sn, err := supernet.Random(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(sn, nil)
	const n, r = 2, 32
	g, err := m.build(spec.Smallest(), n, r)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	batch := func() []float32 {
		x := make([]float32, n*3*r*r)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	target := make([]float32, n*10)
	target[0], target[10+3] = 1, 1
	x1, x2 := batch(), batch()
	l1, l2, l3 := make([]float32, n*10), make([]float32, n*10), make([]float32, n*10)
	for _, run := range []struct {
		x, out []float32
	}{{x1, l1}, {x2, l2}, {slices.Clone(x1), l3}} {
		if _, err := g.run(run.x, target, run.out); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Equal(l1, l2) {
		t.Fatal("a reused graph gave the same logits for a different input")
	}
	if d := maxAbsDiff(l1, l3); d > 1e-4 {
		t.Fatalf("same input, logits differ by %g", d)
	}
}
