package specializer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/supernet"
)

// LatencyOptions controls MeasureLatency. Zero values take the defaults given.
type LatencyOptions struct {
	Warmup int // untimed runs first; default 5
	Runs   int // timed runs, the median is reported; default 21
}

// MeasureLatency exports sub to ONNX, builds an onnxruntime session with env's thread
// settings and returns the median wall time in milliseconds of Runs batch-1 runs on a
// fixed random input after Warmup untimed runs.
func MeasureLatency(ctx context.Context, env *onnxrt.Env, sub *supernet.Subnet, opt LatencyOptions) (float64, error) {
	if opt.Warmup == 0 {
		opt.Warmup = 5
	}
	if opt.Runs == 0 {
		opt.Runs = 21
	}
	if opt.Warmup < 0 || opt.Runs < 1 {
		return 0, fmt.Errorf("latency: %d warm-up and %d timed runs", opt.Warmup, opt.Runs)
	}
	model, err := exporter.Export(sub, exporter.Options{})
	if err != nil {
		return 0, fmt.Errorf("latency: %w", err)
	}
	sess, err := env.NewSession(model)
	if err != nil {
		return 0, fmt.Errorf("latency: %w", err)
	}
	defer sess.Close()
	r := sub.Resolution
	x := make([]float32, 3*r*r)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	shape := []int64{1, 3, int64(r), int64(r)}
	times := make([]float64, 0, opt.Runs)
	for i := range opt.Warmup + opt.Runs {
		t0 := time.Now()
		if _, _, err := sess.Run(ctx, x, shape); err != nil {
			return 0, fmt.Errorf("latency: %w", err)
		}
		if i >= opt.Warmup {
			times = append(times, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// LatencyModel predicts onnxruntime latency from an arch without running it. OFA keeps a
// lookup table of measured per-layer latencies; here the per-layer costs are learnt from
// whole-network measurements instead, by ridge least squares on a per-layer-type linear
// model, so a few dozen measured subnets suffice and no layer needs timing on its own:
//
//	latency ≈ c0 + c1·(1×1 MAdds) + Σ_k c_k·(depthwise k×k MAdds) + c2·(other MAdds: stem, SE,
//	          classifier) + c3·(activation volume: Σ output elements) + c4·(layer count)
//
// (MAdds and elements in millions). It is only valid for the machine and thread settings
// the training latencies were measured with.
type LatencyModel struct {
	SpecName string    `json:"spec"`
	Features []string  `json:"features"`
	Coef     []float64 `json:"coef"`

	spec *supernet.Spec
}

// LatencyFeatures returns the model's inputs for arch and their names.
func LatencyFeatures(spec *supernet.Spec, arch supernet.Arch) ([]float64, []string, error) {
	ls, err := Layers(spec, arch)
	if err != nil {
		return nil, nil, err
	}
	names := []string{"const", "pointwise_madds_m"}
	for _, k := range spec.Kernels {
		names = append(names, fmt.Sprintf("depthwise%d_madds_m", k))
	}
	names = append(names, "other_madds_m", "activations_m", "layers")
	f := make([]float64, len(names))
	f[0] = 1
	other, act := 1+1+len(spec.Kernels), 2+1+len(spec.Kernels)
	for _, l := range ls {
		m := float64(l.MAdds) / 1e6
		switch l.Kind {
		case LayerPointwise:
			f[1] += m
		case LayerDepthwise:
			if i := slices.Index(spec.Kernels, l.Kernel); i >= 0 {
				f[2+i] += m
			} else {
				f[other] += m // the fixed first block's kernel may lie outside the choices
			}
		default:
			f[other] += m
		}
		f[act] += float64(l.Out) * float64(l.OutSize) * float64(l.OutSize) / 1e6
		f[act+1]++
	}
	return f, names, nil
}

// FitLatency fits a LatencyModel to measured latencies (ms) of archs; it needs at least as
// many measurements as the model has coefficients.
func FitLatency(spec *supernet.Spec, archs []supernet.Arch, ms []float64) (*LatencyModel, error) {
	if len(archs) != len(ms) {
		return nil, fmt.Errorf("latency fit: %d archs, %d latencies", len(archs), len(ms))
	}
	var rows [][]float64
	var names []string
	for i, a := range archs {
		f, n, err := LatencyFeatures(spec, a)
		if err != nil {
			return nil, fmt.Errorf("latency fit: arch %d: %w", i, err)
		}
		if !(ms[i] > 0) || math.IsInf(ms[i], 0) {
			return nil, fmt.Errorf("latency fit: latency %d is %v", i, ms[i])
		}
		rows, names = append(rows, f), n
	}
	if len(rows) == 0 || len(rows) < len(names) {
		return nil, fmt.Errorf("latency fit: %d measurements for %d coefficients", len(rows), len(names))
	}
	d := len(names)
	// Scale columns to unit RMS so one ridge strength suits all; the constant is not penalised.
	scale := make([]float64, d)
	for j := range d {
		for _, r := range rows {
			scale[j] += r[j] * r[j]
		}
		scale[j] = math.Sqrt(scale[j] / float64(len(rows)))
		if scale[j] == 0 {
			scale[j] = 1
		}
	}
	const ridge = 1e-3
	n := len(rows)
	a := mat.NewDense(n+d-1, d, nil)
	b := mat.NewVecDense(n+d-1, nil)
	for i, r := range rows {
		for j := range d {
			a.Set(i, j, r[j]/scale[j])
		}
		b.SetVec(i, ms[i])
	}
	for j := 1; j < d; j++ {
		a.Set(n+j-1, j, math.Sqrt(ridge*float64(n)))
	}
	var qr mat.QR
	qr.Factorize(a)
	var x mat.VecDense
	if err := qr.SolveVecTo(&x, false, b); err != nil {
		return nil, fmt.Errorf("latency fit: %w", err)
	}
	coef := make([]float64, d)
	for j := range d {
		coef[j] = x.AtVec(j) / scale[j]
	}
	return &LatencyModel{SpecName: spec.Name, Features: names, Coef: coef, spec: spec}, nil
}

// Bind attaches the spec a model loaded from JSON predicts for.
func (m *LatencyModel) Bind(spec *supernet.Spec) error {
	_, names, err := LatencyFeatures(spec, spec.Smallest())
	if err != nil {
		return err
	}
	if spec.Name != m.SpecName || !slices.Equal(names, m.Features) || len(m.Coef) != len(names) {
		return errors.New("latency model: fitted for another space")
	}
	m.spec = spec
	return nil
}

// PredictMS implements LatencyPredictor; it is NaN for an invalid arch or an unbound model.
func (m *LatencyModel) PredictMS(arch supernet.Arch) float64 {
	if m == nil || m.spec == nil {
		return math.NaN()
	}
	f, _, err := LatencyFeatures(m.spec, arch)
	if err != nil {
		return math.NaN()
	}
	p := 0.0
	for j, v := range f {
		p += m.Coef[j] * v
	}
	return math.Max(p, 1e-3) // a latency is positive even where the linear model undershoots
}
