package trainer

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// trainStepCase is the part of a fixture case JSON the parity test reads.
type trainStepCase struct {
	ID     string `json:"id"`
	Config struct {
		KS []int `json:"ks"`
		E  []int `json:"e"`
		D  []int `json:"d"`
	} `json:"config"`
	Input struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"input"`
	Labels []int   `json:"labels"`
	Loss   float64 `json:"loss"`
	Logits struct {
		File string `json:"file"`
	} `json:"logits"`
	Tensors map[string]struct {
		Shape      []int  `json:"shape"`
		GradIsNone bool   `json:"grad_is_none"`
		GradFile   string `json:"grad_file"`
		AfterFile  string `json:"after_file"`
		AfterShape []int  `json:"after_file_shape"`
	} `json:"tensors"`
	BNAfter     map[string]json.RawMessage `json:"bn_running_stats_after_forward"`
	GradL2      map[string]float64         `json:"grad_l2"`
	UpdateL2    map[string]float64         `json:"update_l2"`
	GradIsNone  []string                   `json:"grad_is_none"`
	MathZero    []string                   `json:"grad_mathematically_zero"`
	BNBuffersL2 map[string]float64         `json:"bn_buffers_after_forward_l2"`
}

// TestTrainStepParity runs one OFA training step (train-mode forward, cross-entropy,
// backward into the shared tensors, Nesterov SGD) for the fixture's three subnets and
// compares everything the fixture records.
func TestTrainStepParity(t *testing.T) {
	dir := sharedDir(t, "fixtures/ofa-train-step")
	ckpt := sharedDir(t, "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth")
	for _, id := range []string{"C1_largest", "C2_smallest", "C3_random"} {
		t.Run(id, func(t *testing.T) {
			var c trainStepCase
			readJSON(t, filepath.Join(dir, id+".json"), &c)
			sn, err := supernet.Load(ckpt, supernet.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before := map[string][]float32{}
			for _, p := range sn.Params() {
				before[p.Name] = slices.Clone(p.Data)
			}
			m := newModel(sn, nil)
			if len(m.params) != 283 {
				t.Fatalf("%d trainable tensors, want 283", len(m.params))
			}
			arch := supernet.Arch{KS: c.Config.KS, E: c.Config.E, D: c.Config.D}
			n, r := c.Input.Shape[0], c.Input.Shape[2]
			sg, err := m.build(arch, n, r)
			if err != nil {
				t.Fatal(err)
			}
			classes := sn.Spec.Classes
			target := make([]float32, n*classes)
			for i, l := range c.Labels {
				target[i*classes+l] = 1
			}
			x := readF32(t, filepath.Join(dir, c.Input.File))
			logits := make([]float32, n*classes)
			loss, err := sg.run(x, target, logits)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(loss - c.Loss); d > 1e-4 {
				t.Errorf("loss %.7f, want %.7f (diff %.2g)", loss, c.Loss, d)
			}
			wantLogits := readF32(t, filepath.Join(dir, c.Logits.File))
			if d := maxAbsDiff(logits, wantLogits); d > 1e-4 {
				t.Errorf("logits max|diff| %.3g > 1e-4", d)
			}
			t.Logf("loss %.7f (want %.7f), logits max|diff| %.3g", loss, c.Loss, maxAbsDiff(logits, wantLogits))

			mathZero := map[string]bool{}
			for _, k := range c.MathZero {
				mathZero[k] = true
			}
			none := map[string]bool{}
			for _, k := range c.GradIsNone {
				none[k] = true
			}
			// Selected tensors: full gradients.
			worst := 0.0
			for key, tc := range c.Tensors {
				p := m.byName[key]
				if p == nil {
					t.Errorf("%s: not a trainable tensor", key)
					continue
				}
				if tc.GradIsNone {
					if p.present {
						t.Errorf("%s: has a gradient, fixture has None", key)
					}
					continue
				}
				if !p.present {
					t.Errorf("%s: no gradient, fixture has one", key)
					continue
				}
				want := readF32(t, filepath.Join(dir, tc.GradFile))
				e := relL2(p.grad, want)
				worst = math.Max(worst, e)
				if mathZero[key] {
					if d := l2(p.grad); d > 1e-4 {
						t.Errorf("%s: mathematically zero gradient has L2 %.3g", key, d)
					}
				} else if e > 1e-3 {
					t.Errorf("%s: gradient relative L2 error %.3g > 1e-3", key, e)
				}
			}
			t.Logf("selected gradients: worst relative L2 error %.3g", worst)
			// Every tensor: presence and L2 norm.
			worstNorm := 0.0
			for _, p := range m.params {
				want, ok := c.GradL2[p.name]
				if !ok {
					t.Errorf("%s: not in the fixture's grad_l2", p.name)
					continue
				}
				if none[p.name] == p.present {
					t.Errorf("%s: gradient present=%v, fixture None=%v", p.name, p.present, none[p.name])
					continue
				}
				got := 0.0
				if p.present {
					got = l2(p.grad)
				}
				if mathZero[p.name] {
					if got > 1e-4 {
						t.Errorf("%s: mathematically zero gradient has L2 %.3g", p.name, got)
					}
					continue
				}
				if want == 0 {
					if got != 0 {
						t.Errorf("%s: grad L2 %.3g, want 0", p.name, got)
					}
					continue
				}
				e := math.Abs(got-want) / want
				worstNorm = math.Max(worstNorm, e)
				if e > 1e-3 {
					t.Errorf("%s: grad L2 %.6g, want %.6g (rel %.3g)", p.name, got, want, e)
				}
			}
			t.Logf("grad L2 norms of %d tensors: worst relative error %.3g", len(m.params), worstNorm)
			// BatchNorm running statistics after the forward.
			for key, raw := range c.BNAfter {
				var f struct {
					File string `json:"file"`
				}
				if json.Unmarshal(raw, &f) != nil {
					continue // num_batches_tracked: natgw keeps no counters
				}
				got := sn.Tensor(key)
				want := readF32(t, filepath.Join(dir, f.File))
				if d := maxAbsDiff(got, want); d > 1e-5*(1+l2(want)) {
					t.Errorf("%s: max|diff| %.3g", key, d)
				}
			}
			worstBN := 0.0
			for key, want := range c.BNBuffersL2 {
				if strings.HasSuffix(key, "num_batches_tracked") {
					continue
				}
				got := l2(sn.Tensor(key))
				e := math.Abs(got-want) / math.Max(want, 1e-12)
				worstBN = math.Max(worstBN, e)
				if e > 1e-5 {
					t.Errorf("%s: L2 %.8g, want %.8g", key, got, want)
				}
			}
			t.Logf("BN buffer L2 norms: worst relative error %.3g", worstBN)

			// One SGD step: lr 0.1, momentum 0.9, Nesterov, no weight decay.
			opt := &SGD{Momentum: 0.9, Nesterov: true}
			opt.step(m.params, 0.1)
			for key, tc := range c.Tensors {
				want := readF32(t, filepath.Join(dir, tc.AfterFile))
				got := sn.Tensor(key)[:len(want)]
				b := before[key][:len(want)]
				du, dw := make([]float32, len(want)), make([]float32, len(want))
				for i := range want {
					du[i], dw[i] = got[i]-b[i], want[i]-b[i]
				}
				if l2(dw) == 0 {
					if l2(du) != 0 {
						t.Errorf("%s: moved, fixture unchanged", key)
					}
					continue
				}
				if e := relL2(du, dw); e > 1e-3 {
					t.Errorf("%s: update relative L2 error %.3g", key, e)
				}
			}
			for _, p := range m.params {
				want := c.UpdateL2[p.name]
				d := make([]float32, len(p.data))
				for i := range d {
					d[i] = p.data[i] - before[p.name][i]
				}
				got := l2(d)
				if mathZero[p.name] {
					if math.Abs(got-want) > 1e-4 {
						t.Errorf("%s: update L2 %.3g, want %.3g", p.name, got, want)
					}
					continue
				}
				if math.Abs(got-want) > 1e-3*want+1e-12 {
					t.Errorf("%s: update L2 %.6g, want %.6g", p.name, got, want)
				}
			}
		})
	}
}

// TestSGDFirstStepBitExact applies the optimizer to the fixture's stored gradients: PyTorch's
// fused multiply-add rule must reproduce the stored weights bit for bit.
func TestSGDFirstStepBitExact(t *testing.T) {
	dir := sharedDir(t, "fixtures/ofa-train-step")
	ckpt := sharedDir(t, "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth")
	sn, err := supernet.Load(ckpt, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c trainStepCase
	readJSON(t, filepath.Join(dir, "C3_random.json"), &c)
	checked := 0
	for key, tc := range c.Tensors {
		if tc.GradIsNone {
			continue
		}
		p, _ := sn.Param(key)
		pg := &paramGrad{name: key, data: slices.Clone(p.Data), grad: readF32(t, filepath.Join(dir, tc.GradFile)), present: true}
		opt := &SGD{Momentum: 0.9, Nesterov: true}
		opt.step([]*paramGrad{pg}, 0.1)
		want := readF32(t, filepath.Join(dir, tc.AfterFile))
		diff := 0
		for i := range want {
			if math.Float32bits(pg.data[i]) != math.Float32bits(want[i]) {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s: %d of %d values differ from PyTorch's bits", key, diff, len(want))
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d tensors checked", checked)
	}
}
