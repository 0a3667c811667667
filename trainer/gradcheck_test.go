package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/natgw/natgw/internal/cpu"
)

// dotOp is Σ y·r in float64 for a fixed random r: a scalar test loss whose gradient is r.
type dotOp struct {
	opCore
	r []float32
	b *builder
}

func (o *dotOp) Do(in ...G.Value) (G.Value, error) {
	var s float64
	for i, v := range f32s(in[0]) {
		s += float64(v) * float64(o.r[i])
	}
	return G.NewF32(float32(s)), nil
}
func (o *dotOp) DiffWRT(int) []bool { return []bool{true} }
func (o *dotOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	return G.Nodes{b.apply(&constGradOp{opCore: b.core("dotGrad", in[0].Shape().Clone(), 0), r: o.r}, grad)}, b.err
}

// constGradOp is r·dy.
type constGradOp struct {
	opCore
	noDiff
	r []float32
}

func (o *constGradOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	d := scalar32(in[0])
	for i, v := range o.r {
		y[i] = v * d
	}
	return t, nil
}

// gradCase builds y = op(inputs) for given input shapes; inputs are graph inputs.
type gradCase struct {
	name   string
	shapes [][]int
	build  func(b *builder, in []*G.Node) *G.Node
	// h is the finite-difference step; smooth ops take a larger one.
	h float64
	// init fills input i (nil: N(0,1)).
	init func(i int, v []float32, r *rand.Rand)
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// checkGrad compares the graph's gradients with central differences of the float32
// forward, accumulated in float64: the relative L2 error of each input's gradient over
// a sample of coordinates, and a directional derivative along a random direction.
func checkGrad(t *testing.T, gc gradCase) {
	r := rand.New(rand.NewPCG(7, uint64(len(gc.name))))
	g := G.NewGraph()
	b := &builder{g: g, a: newArena(1 << 26)}
	var ins []*G.Node
	var data [][]float32
	for i, s := range gc.shapes {
		v := make([]float32, numel(s))
		if gc.init != nil {
			gc.init(i, v, r)
		} else {
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
		}
		data = append(data, v)
		ins = append(ins, G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(fmt.Sprintf("in%d", i)),
			G.WithValue(tensor.New(tensor.WithShape(s...), tensor.WithBacking(v)))))
	}
	y := gc.build(b, ins)
	if b.err != nil {
		t.Fatal(b.err)
	}
	rv := make([]float32, y.Shape().TotalSize())
	for i := range rv {
		rv[i] = float32(r.NormFloat64())
	}
	cost := b.apply(&dotOp{opCore: b.core("dot", nil, rank(y)), r: rv, b: b}, y)
	if b.err != nil {
		t.Fatal(b.err)
	}
	grads, err := G.Grad(cost, ins...)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	eval := func() float64 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		v := float64(scalar32(cost.Value()))
		vm.Reset()
		b.a.reset()
		return v
	}
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	var analytic [][]float32
	for _, gn := range grads {
		analytic = append(analytic, append([]float32(nil), f32s(gn.Value())...))
	}
	vm.Reset()
	b.a.reset()
	h := gc.h
	if h == 0 {
		h = 1e-2
	}
	for i, v := range data {
		// Coordinates: all of small inputs, a random sample of large ones.
		idx := r.Perm(len(v))
		if len(idx) > 60 {
			idx = idx[:60]
		}
		var num, ana []float32
		for _, j := range idx {
			old := v[j]
			v[j] = old + float32(h)
			lp := eval()
			v[j] = old - float32(h)
			lm := eval()
			v[j] = old
			num = append(num, float32((lp-lm)/(2*h)))
			ana = append(ana, analytic[i][j])
		}
		e := relL2(ana, num)
		if e > 2e-2 {
			t.Errorf("%s: input %d: gradient relative L2 error %.3g vs finite differences", gc.name, i, e)
		}
		// Directional derivative along a random unit-scale direction.
		dir := make([]float32, len(v))
		var want float64
		for j := range dir {
			dir[j] = float32(r.NormFloat64())
			want += float64(dir[j]) * float64(analytic[i][j])
		}
		orig := append([]float32(nil), v...)
		step := h / math.Sqrt(float64(len(v)))
		for j := range v {
			v[j] = orig[j] + float32(step)*dir[j]
		}
		lp := eval()
		for j := range v {
			v[j] = orig[j] - float32(step)*dir[j]
		}
		lm := eval()
		copy(v, orig)
		got := (lp - lm) / (2 * step)
		if d := math.Abs(got - want); d > 2e-2*math.Abs(want)+1e-3 {
			t.Errorf("%s: input %d: directional derivative %.6g, finite differences %.6g", gc.name, i, want, got)
		}
	}
}

func convGeom(n, c, h, k, kern, stride, groups int) cpu.Conv {
	p := kern / 2
	return cpu.Conv{N: n, C: c, H: h, W: h, K: k, KH: kern, KW: kern, StrideH: stride, StrideW: stride,
		PadTop: p, PadLeft: p, PadBottom: p, PadRight: p, Groups: groups}
}

func TestGradCheck(t *testing.T) {
	positive := func(i int, v []float32, r *rand.Rand) {
		for j := range v {
			v[j] = float32(r.NormFloat64())
			if i > 0 {
				v[j] = float32(0.5 + r.Float64())
			}
		}
	}
	cases := []gradCase{}
	for _, cv := range []struct {
		name string
		c    cpu.Conv
	}{
		{"conv_dense3x3_s2", convGeom(2, 3, 9, 4, 3, 2, 1)},
		{"conv_pointwise", convGeom(2, 5, 4, 6, 1, 1, 1)},
		{"conv_depthwise_k3_s1", convGeom(2, 4, 6, 4, 3, 1, 4)},
		{"conv_depthwise_k5_s2", convGeom(2, 3, 9, 3, 5, 2, 3)},
		{"conv_depthwise_k7_s2_even", convGeom(1, 2, 8, 2, 7, 2, 2)},
		{"conv_depthwise_k3_s2_even", convGeom(2, 3, 8, 3, 3, 2, 3)},
	} {
		c := cv.c
		cases = append(cases, gradCase{name: cv.name,
			shapes: [][]int{{c.N, c.C, c.H, c.W}, {c.K, c.C / c.Groups, c.KH, c.KW}},
			build:  func(b *builder, in []*G.Node) *G.Node { return b.conv(in[0], in[1], c, true) }})
	}
	for _, act := range []cpu.Act{cpu.ActNone, cpu.ActReLU, cpu.ActReLU6, cpu.ActHSwish} {
		cases = append(cases, gradCase{name: "bn_" + act.String(), h: 1e-3, init: positive,
			shapes: [][]int{{3, 4, 3, 3}, {4}, {4}},
			build: func(b *builder, in []*G.Node) *G.Node {
				return b.bnAct(in[0], in[1], in[2], 1e-5, 0.1, act, nil, nil)
			}})
	}
	cases = append(cases,
		gradCase{name: "bn_rank2", h: 1e-3, init: positive, shapes: [][]int{{6, 5}, {5}, {5}},
			build: func(b *builder, in []*G.Node) *G.Node {
				return b.bnAct(in[0], in[1], in[2], 1e-5, 0.1, cpu.ActHSwish, nil, nil)
			}},
		gradCase{name: "act_hsigmoid", h: 1e-3, shapes: [][]int{{4, 7}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.activation(in[0], cpu.ActHSigmoid) }},
		gradCase{name: "act_hswish", h: 1e-3, shapes: [][]int{{4, 7}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.activation(in[0], cpu.ActHSwish) }},
		gradCase{name: "act_relu", h: 1e-3, shapes: [][]int{{4, 7}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.activation(in[0], cpu.ActReLU) }},
		gradCase{name: "linear_bias_conv_weight", shapes: [][]int{{3, 5}, {4, 5, 1, 1}, {4}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.linear(in[0], in[1], in[2]) }},
		gradCase{name: "linear", shapes: [][]int{{3, 5}, {4, 5}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.linear(in[0], in[1], nil) }},
		gradCase{name: "pool", shapes: [][]int{{2, 3, 4, 5}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.pool(in[0]) }},
		gradCase{name: "chan_scale", shapes: [][]int{{2, 3, 4, 4}, {2, 3}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.chanScale(in[0], in[1]) }},
		gradCase{name: "add", shapes: [][]int{{2, 3, 2, 2}, {2, 3, 2, 2}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.add(in[0], in[1]) }},
		gradCase{name: "kernel7to5", shapes: [][]int{{3, 1, 7, 7}, {25, 25}},
			build: func(b *builder, in []*G.Node) *G.Node { return b.kernelTransform(in[0], in[1], 5) }},
		gradCase{name: "kernel7to5to3", shapes: [][]int{{3, 1, 7, 7}, {25, 25}, {9, 9}},
			build: func(b *builder, in []*G.Node) *G.Node {
				return b.kernelTransform(b.kernelTransform(in[0], in[1], 5), in[2], 3)
			}},
		gradCase{name: "dropout", shapes: [][]int{{4, 6}},
			build: func(b *builder, in []*G.Node) *G.Node {
				// resetRNG restarts the generator for every run: the same mask each time.
				op := &dropoutOp{opCore: b.core("dropout", in[0].Shape().Clone(), 2), p: 0.3, b: b}
				return b.apply(&resetRNG{dropoutOp: op, seed: 3}, in[0])
			}},
	)
	// Slice: the gradient lands in the accumulator of the full tensor.
	for _, sc := range []struct {
		name       string
		full       []int
		rows, cols int
	}{{"slice_conv", []int{6, 5, 1, 1}, 4, 3}, {"slice_dw", []int{5, 1, 3, 3}, 3, 1}, {"slice_vector", []int{7}, 4, 0}} {
		p := &paramGrad{name: sc.name, shape: sc.full, grad: make([]float32, numel(sc.full))}
		cases = append(cases, gradCase{name: sc.name, shapes: [][]int{sc.full},
			build: func(b *builder, in []*G.Node) *G.Node {
				return b.activation(b.slice(in[0], p, sc.rows, sc.cols), cpu.ActHSwish)
			}})
	}
	for _, gc := range cases {
		t.Run(gc.name, func(t *testing.T) { checkGrad(t, gc) })
	}
}

// resetRNG restarts a dropout op's generator on every forward so finite differences see
// the same mask.
type resetRNG struct {
	*dropoutOp
	seed uint64
}

func (o *resetRNG) Do(in ...G.Value) (G.Value, error) {
	rnd := rand.New(rand.NewPCG(o.seed, o.seed))
	o.dropoutOp.rnd = rnd.Float64
	return o.dropoutOp.Do(in...)
}

// TestGradCheckLoss checks the cross-entropy op (soft targets summing to more than one, as
// with label smoothing plus distillation).
func TestGradCheckLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	target := make([]float32, 3*6)
	for i := range target {
		target[i] = float32(r.Float64())
	}
	st := &lossState{target: target}
	g := G.NewGraph()
	b := &builder{g: g, a: newArena(1 << 20)}
	z := make([]float32, 3*6)
	for i := range z {
		z[i] = float32(2 * r.NormFloat64())
	}
	x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(3, 6), G.WithName("z"), G.WithValue(tensor.New(tensor.WithShape(3, 6), tensor.WithBacking(z))))
	cost := b.xent(x, st)
	grads, err := G.Grad(cost, x)
	if err != nil || b.err != nil {
		t.Fatal(err, b.err)
	}
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	ana := append([]float32(nil), f32s(grads[0].Value())...)
	vm.Reset()
	const h = 1e-3
	num := make([]float32, len(z))
	for j := range z {
		old := z[j]
		z[j] = old + h
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		lp := st.loss
		vm.Reset()
		z[j] = old - h
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		lm := st.loss
		vm.Reset()
		z[j] = old
		num[j] = float32((lp - lm) / (2 * h))
	}
	if e := relL2(ana, num); e > 1e-3 {
		t.Errorf("xent gradient relative L2 error %.3g", e)
	}
}
