package specializer

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// heldOutError fits on the first nTrain archs and returns the mean absolute percentage
// error on the rest.
func heldOutError(t *testing.T, spec *supernet.Spec, archs []supernet.Arch, ms []float64, nTrain int) (*LatencyModel, float64) {
	t.Helper()
	m, err := FitLatency(spec, archs[:nTrain], ms[:nTrain])
	if err != nil {
		t.Fatal(err)
	}
	mape := 0.0
	for i := nTrain; i < len(archs); i++ {
		mape += math.Abs(m.PredictMS(archs[i])-ms[i]) / ms[i]
	}
	return m, mape / float64(len(archs)-nTrain)
}

// A known per-layer cost model with noise: the fit recovers it on held-out subnets.
func TestLatencyModelSynthetic(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 1000)
	rng := rand.New(rand.NewPCG(5, 5))
	var archs []supernet.Arch
	var ms []float64
	for range 80 {
		a := RandomArch(spec, rng)
		ls, err := Layers(spec, a)
		if err != nil {
			t.Fatal(err)
		}
		lat := 0.3
		for _, l := range ls {
			per := map[string]float64{LayerPointwise: 0.004, LayerDepthwise: 0.012, LayerConv: 0.006, LayerSE: 0.02, LayerLinear: 0.003}[l.Kind]
			if l.Kind == LayerDepthwise && l.Kernel == 7 {
				per *= 1.6
			}
			lat += 0.01 + per*float64(l.MAdds)/1e6 + 0.002*float64(l.Out*l.OutSize*l.OutSize)/1e6
		}
		archs = append(archs, a)
		ms = append(ms, lat*(1+0.02*rng.NormFloat64()))
	}
	m, mape := heldOutError(t, spec, archs, ms, 50)
	t.Logf("synthetic per-layer latency: held-out MAPE %.2f%% on 30 subnets (2%% noise)", 100*mape)
	if mape > 0.05 {
		t.Fatalf("held-out MAPE %.3f, want < 5%%", mape)
	}
	// JSON round trip keeps predictions.
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var m2 LatencyModel
	if err := json.Unmarshal(data, &m2); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(m2.PredictMS(archs[0])) {
		t.Fatal("an unbound model predicts")
	}
	if err := m2.Bind(spec); err != nil {
		t.Fatal(err)
	}
	if m2.PredictMS(archs[60]) != m.PredictMS(archs[60]) {
		t.Fatal("prediction changed through JSON")
	}
	if err := m2.Bind(tinySpec()); err == nil {
		t.Fatal("bound to another space")
	}
	if _, err := FitLatency(spec, archs[:3], ms[:3]); err == nil {
		t.Fatal("fit with fewer measurements than coefficients")
	}
}

// Real onnxruntime measurements of the tiny space: the held-out error is reported (wall
// clock on a shared machine, so only sanity is asserted).
func TestLatencyMeasuredTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("measures onnxruntime latency")
	}
	env := requireORT(t, 1)
	defer env.Close()
	sn := tinySupernet(t)
	rng := rand.New(rand.NewPCG(8, 8))
	var archs []supernet.Arch
	var ms []float64
	for i := range 36 {
		a := RandomArch(sn.Spec, rng)
		if i == 0 {
			a = sn.Spec.Largest()
		}
		sub, err := sn.Extract(a)
		if err != nil {
			t.Fatal(err)
		}
		l, err := MeasureLatency(context.Background(), env, sub, LatencyOptions{Warmup: 3, Runs: 15})
		if err != nil {
			t.Fatal(err)
		}
		if !(l > 0) || math.IsInf(l, 0) {
			t.Fatalf("latency %v", l)
		}
		archs, ms = append(archs, a), append(ms, l)
	}
	_, mape := heldOutError(t, sn.Spec, archs, ms, 24)
	t.Logf("onnxruntime (1 thread) latency of the tiny space: held-out MAPE %.1f%% on 12 subnets", 100*mape)
	if env.LiveSessions() != 0 {
		t.Fatalf("%d sessions left open", env.LiveSessions())
	}
}
