package gateway

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
)

// TestONNXForwardMeasuresAsGo: a candidate measured through onnxruntime gets the logits
// natgw's Go forward gives (to float rounding) and the same top-1, for subnets of every size.
func TestONNXForwardMeasuresAsGo(t *testing.T) {
	_, env := testSessions(t)
	tk := sparseTestTask(t, "measure", func(madds int64) float64 { return 0 })
	val, err := tk.ValImages()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	newEval := func(fw specializer.ForwardMaker) *specializer.SubnetEvaluator {
		ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
			Supernet: tk.Supernet, Template: tk.Manifest.Preprocess, Calib: tk.Calib, Val: val,
			Workers: 1, EvalBatch: 3, Forward: fw,
		})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	goEval, ortEval := newEval(nil), newEval(ONNXForward(env))
	spec := tk.Supernet.Spec
	for _, a := range []supernet.Arch{spec.Smallest(), spec.Uniform(5, 4, 2, 56), spec.Largest()} {
		ge, sub, err := goEval.EvaluateSubnet(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		oe, err := ortEval.Evaluate(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if ge.Top1 != oe.Top1 {
			t.Errorf("%s: top-1 %.4f through onnxruntime, %.4f through the Go forward", ge.Hash[:12], oe.Top1, ge.Top1)
		}
		// The logits themselves, on random input.
		r := sub.Resolution
		x := make([]float32, 2*3*r*r)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		want, err := sub.CompileOn(1).Forward(ctx, x, 2, r, r)
		if err != nil {
			t.Fatal(err)
		}
		fw, release, err := ONNXForward(env)(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fw.Forward(ctx, x, 2, r, r)
		release()
		if err != nil {
			t.Fatal(err)
		}
		if fw.Classes() != len(tk.Labels) || len(got) != len(want) {
			t.Fatalf("%d classes, %d logits; want %d, %d", fw.Classes(), len(got), len(tk.Labels), len(want))
		}
		scale, diff := 0.0, 0.0
		for i := range want {
			scale = max(scale, math.Abs(float64(want[i])))
			diff = max(diff, math.Abs(float64(got[i]-want[i])))
		}
		if diff > 1e-4*max(scale, 1) {
			t.Errorf("%s: logits differ by %.3g (largest %.3g)", ge.Hash[:12], diff, scale)
		}
	}
}
