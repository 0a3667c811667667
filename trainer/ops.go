package trainer

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/natgw/natgw/internal/cpu"
)

// opCore is what every op of this package shares: a name, an id unique within its graph
// (gorgonia merges nodes with equal hashes and children, so distinct layers must hash
// differently), static input ranks and output shape, and the graph's buffer arena.
type opCore struct {
	name  string
	id    int64
	salt  int          // the graph's hash salt (see model.build)
	ins   []int        // rank of each input; 0 = float32 scalar
	shape tensor.Shape // output shape; nil = scalar
	a     *arena
}

func (o *opCore) Arity() int { return len(o.ins) }

func rankType(r int) hm.Type {
	if r == 0 {
		return tensor.Float32
	}
	return G.TensorType{Dims: r, Of: tensor.Float32}
}

func (o *opCore) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.ins)+1)
	for _, r := range o.ins {
		ts = append(ts, rankType(r))
	}
	ts = append(ts, rankType(len(o.shape)))
	return hm.NewFnType(ts...)
}

func (o *opCore) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if o.shape == nil {
		return tensor.ScalarShape(), nil
	}
	return o.shape.Clone(), nil
}
func (o *opCore) ReturnsPtr() bool     { return false }
func (o *opCore) CallsExtern() bool    { return false }
func (o *opCore) OverwritesInput() int { return -1 }
func (o *opCore) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "natgw.%s#%d", o.name, o.id)
	if o.salt != 0 {
		fmt.Fprintf(h, "~%d", o.salt)
	}
}
func (o *opCore) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
func (o *opCore) String() string { return o.name }

// out allocates the op's output tensor from the arena (contents unspecified).
func (o *opCore) out() (*tensor.Dense, []float32) {
	buf := o.a.get(o.shape.TotalSize())
	return tensor.New(tensor.WithShape(o.shape.Clone()...), tensor.WithBacking(buf)), buf
}

// outZero allocates a zeroed output tensor.
func (o *opCore) outZero() (*tensor.Dense, []float32) {
	t, b := o.out()
	clear(b)
	return t, b
}

// noDiff is embedded by gradient ops: training needs first derivatives only.
type noDiff struct{}

func (noDiff) DiffWRT(n int) []bool { return make([]bool, n) }
func (noDiff) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("trainer: second derivatives are not supported")
}

func f32s(v G.Value) []float32 {
	switch t := v.(type) {
	case *tensor.Dense:
		return t.Float32s()
	case *G.F32:
		return []float32{float32(*t)}
	}
	panic(fmt.Sprintf("trainer: value %T is not float32", v))
}

func scalar32(v G.Value) float32 {
	switch t := v.(type) {
	case *G.F32:
		return float32(*t)
	case *tensor.Dense:
		return t.Float32s()[0]
	}
	panic(fmt.Sprintf("trainer: value %T is not a float32 scalar", v))
}

// builder creates ops for one graph.
type builder struct {
	g    *G.ExprGraph
	a    *arena
	next int64
	salt int
	err  error
}

func (b *builder) core(name string, shape tensor.Shape, ins ...int) opCore {
	b.next++
	return opCore{name: name, id: b.next, salt: b.salt, ins: ins, shape: shape, a: b.a}
}

// apply adds an op node, remembering the first error so graph code stays linear.
func (b *builder) apply(op G.Op, children ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := G.ApplyOp(op, children...)
	if err != nil {
		b.err = fmt.Errorf("%v: %w", op, err)
		return nil
	}
	return n
}

func rank(n *G.Node) int { return n.Shape().Dims() }

// ---------------------------------------------------------------- convolution

// convOp is a 2-D convolution without bias (dense, 1×1 or depthwise): inputs x, w.
type convOp struct {
	opCore
	c      cpu.Conv
	needDX bool // false for the network input: its gradient is never used
	b      *builder
}

func (b *builder) conv(x, w *G.Node, c cpu.Conv, needDX bool) *G.Node {
	op := &convOp{opCore: b.core(fmt.Sprintf("conv%s", convName(c)), tensor.Shape{c.N, c.K, c.OutH(), c.OutW()}, 4, 4), c: c, needDX: needDX, b: b}
	return b.apply(op, x, w)
}

func convName(c cpu.Conv) string {
	return fmt.Sprintf("[%d,%d,%dx%d→%d k%d s%d g%d]", c.N, c.C, c.H, c.W, c.K, c.KH, c.StrideH, c.Groups)
}

func (o *convOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	cpu.ConvForward(o.c, f32s(in[0]), f32s(in[1]), nil, cpu.ActNone, y)
	return t, nil
}
func (o *convOp) DiffWRT(int) []bool { return []bool{o.needDX, true} }
func (o *convOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	dw := b.apply(&convFilterOp{opCore: b.core("convDW"+convName(o.c), in[1].Shape().Clone(), 4, 4), c: o.c}, in[0], grad)
	var dx *G.Node
	if o.needDX {
		dx = b.apply(&convDataOp{opCore: b.core("convDX"+convName(o.c), in[0].Shape().Clone(), 4, 4), c: o.c}, in[1], grad)
	}
	return G.Nodes{dx, dw}, b.err
}

// convDataOp is dL/dx of a convolution: inputs w, dy.
type convDataOp struct {
	opCore
	noDiff
	c cpu.Conv
}

func (o *convDataOp) Do(in ...G.Value) (G.Value, error) {
	t, dx := o.out()
	w, dy := f32s(in[0]), f32s(in[1])
	if c := o.c; c.Groups == c.C && c.K == c.C && c.C > 1 {
		if g, ok := depthwiseTransposed(c); ok {
			// dx is the stride-1 correlation of the zero-dilated dy with the flipped
			// kernels, which runs on the fast depthwise forward kernel.
			kk := c.KH * c.KW
			wf := o.a.get(len(w))
			for ch := range c.C {
				for i := range kk {
					wf[ch*kk+i] = w[ch*kk+kk-1-i]
				}
			}
			src := dy
			if c.StrideH > 1 || c.StrideW > 1 {
				src = o.a.get(c.N * c.C * g.H * g.W)
				dilate(dy, src, c.N*c.C, c.OutH(), c.OutW(), c.StrideH, c.StrideW, g.H, g.W)
			}
			cpu.ConvForward(g, src, wf, nil, cpu.ActNone, dx)
			return t, nil
		}
	}
	cpu.ConvBackwardData(o.c, dy, w, dx)
	return t, nil
}

// depthwiseTransposed is the stride-1 depthwise convolution over the zero-dilated output
// gradient whose result is the input gradient of c.
func depthwiseTransposed(c cpu.Conv) (cpu.Conv, bool) {
	lh, lw := (c.OutH()-1)*c.StrideH+1, (c.OutW()-1)*c.StrideW+1
	g := cpu.Conv{N: c.N, C: c.C, H: lh, W: lw, K: c.C, KH: c.KH, KW: c.KW, StrideH: 1, StrideW: 1, Groups: c.C,
		PadTop: c.KH - 1 - c.PadTop, PadLeft: c.KW - 1 - c.PadLeft}
	g.PadBottom = c.H - 1 + c.KH - lh - g.PadTop
	g.PadRight = c.W - 1 + c.KW - lw - g.PadLeft
	ok := g.PadTop >= 0 && g.PadLeft >= 0 && g.PadBottom >= 0 && g.PadRight >= 0 && g.Check() == nil &&
		g.OutH() == c.H && g.OutW() == c.W
	return g, ok
}

// convFilterOp is dL/dw of a convolution summed over the batch: inputs x, dy.
type convFilterOp struct {
	opCore
	noDiff
	c cpu.Conv
}

func (o *convFilterOp) Do(in ...G.Value) (G.Value, error) {
	t, dw := o.out()
	cpu.ConvBackwardFilter(o.c, f32s(in[0]), f32s(in[1]), dw)
	return t, nil
}

// ---------------------------------------------------------------- activations

func actValue(a cpu.Act, z float32) float32 {
	switch a {
	case cpu.ActReLU:
		return max(z, 0)
	case cpu.ActReLU6:
		return min(max(z, 0), 6)
	case cpu.ActHSwish:
		return z * min(max(z+3, 0), 6) / 6
	case cpu.ActHSigmoid:
		return min(max(z+3, 0), 6) / 6
	}
	return z
}

// actSlope is the derivative PyTorch's autograd gives: relu' = [z>0]; relu6' = [0<z<6];
// h_swish = z·relu6(z+3)/6 gives 0 for z ≤ -3, (2z+3)/6 between, 1 for z ≥ 3;
// h_sigmoid' = 1/6 on (-3,3).
func actSlope(a cpu.Act, z float32) float32 {
	switch a {
	case cpu.ActReLU:
		if z > 0 {
			return 1
		}
		return 0
	case cpu.ActReLU6:
		if z > 0 && z < 6 {
			return 1
		}
		return 0
	case cpu.ActHSwish:
		switch {
		case z <= -3:
			return 0
		case z >= 3:
			return 1
		}
		return (2*z + 3) / 6
	case cpu.ActHSigmoid:
		if z > -3 && z < 3 {
			return 1.0 / 6
		}
		return 0
	}
	return 1
}

// actOp applies an activation elementwise: input x.
type actOp struct {
	opCore
	act cpu.Act
	b   *builder
}

func (b *builder) activation(x *G.Node, a cpu.Act) *G.Node {
	if a == cpu.ActNone {
		return x
	}
	return b.apply(&actOp{opCore: b.core("act_"+a.String(), x.Shape().Clone(), rank(x)), act: a, b: b}, x)
}

func (o *actOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	copy(y, f32s(in[0]))
	cpu.Apply(o.act, y)
	return t, nil
}
func (o *actOp) DiffWRT(int) []bool { return []bool{true} }
func (o *actOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	op := &actGradOp{opCore: b.core("actGrad_"+o.act.String(), in[0].Shape().Clone(), rank(in[0]), rank(in[0])), act: o.act}
	return G.Nodes{b.apply(op, in[0], grad)}, b.err
}

// actGradOp is dy·act'(x): inputs x, dy.
type actGradOp struct {
	opCore
	noDiff
	act cpu.Act
}

func (o *actGradOp) Do(in ...G.Value) (G.Value, error) {
	t, dx := o.out()
	x, dy := f32s(in[0]), f32s(in[1])
	for i := range dx {
		dx[i] = dy[i] * actSlope(o.act, x[i])
	}
	return t, nil
}

// ---------------------------------------------------------------- BatchNorm

// bnState carries what the backward ops of one BatchNorm need from its forward.
type bnState struct {
	mean, invstd []float32
	dz           []float32 // dL/d(pre-activation), set by bnParamGradOp
}

// bnActOp is train-mode BatchNorm followed by an activation: inputs x [N,C,H,W] (or
// [N,C]), gamma [C], beta [C]. It normalises with the batch mean and biased variance and
// updates the running statistics in place (PyTorch's rule, unbiased variance).
type bnActOp struct {
	opCore
	n, c, hw  int
	eps, mom  float64
	act       cpu.Act
	rm, rv    []float32 // running stats, first C entries of the supernet's buffers
	st        *bnState
	b         *builder
	runStatsN *int // counts forwards (num_batches_tracked), may be nil
}

func (b *builder) bnAct(x, gamma, beta *G.Node, eps, mom float64, act cpu.Act, rm, rv []float32) *G.Node {
	s := x.Shape()
	n, c := s[0], s[1]
	hw := 1
	for _, d := range s[2:] {
		hw *= d
	}
	op := &bnActOp{opCore: b.core("bn_"+act.String(), s.Clone(), rank(x), 1, 1), n: n, c: c, hw: hw,
		eps: eps, mom: mom, act: act, rm: rm, rv: rv, st: &bnState{}, b: b}
	return b.apply(op, x, gamma, beta)
}

func (o *bnActOp) Do(in ...G.Value) (G.Value, error) {
	x, gamma, beta := f32s(in[0]), f32s(in[1]), f32s(in[2])
	t, y := o.out()
	st := o.st
	st.mean, st.invstd = o.a.get(o.c), o.a.get(o.c)
	mean, vari := make([]float64, o.c), make([]float64, o.c)
	bnStats(x, o.n, o.c, o.hw, mean, vari)
	cnt := float64(o.n * o.hw)
	m32, one := float32(o.mom), float32(1-o.mom)
	scale, shift := o.a.get(o.c), o.a.get(o.c)
	for ch := range o.c {
		inv := 1 / math.Sqrt(vari[ch]+o.eps)
		st.mean[ch], st.invstd[ch] = float32(mean[ch]), float32(inv)
		if o.rm != nil {
			unb := vari[ch]
			if cnt > 1 {
				unb = vari[ch] * cnt / (cnt - 1)
			}
			o.rm[ch] = one*o.rm[ch] + m32*float32(mean[ch])
			o.rv[ch] = one*o.rv[ch] + m32*float32(unb)
		}
		scale[ch] = float32(float64(gamma[ch]) * inv)
		shift[ch] = float32(float64(beta[ch]) - mean[ch]*float64(gamma[ch])*inv)
	}
	bnApply(x, y, o.n, o.c, o.hw, scale, shift, o.act)
	return t, nil
}

func (o *bnActOp) DiffWRT(int) []bool { return []bool{true, true, true} }
func (o *bnActOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	pg := b.apply(&bnParamGradOp{opCore: b.core("bnParamGrad", tensor.Shape{2, o.c}, rank(in[0]), 1, 1, rank(in[0])), f: o}, in[0], in[1], in[2], grad)
	dx := b.apply(&bnDataGradOp{opCore: b.core("bnDataGrad", in[0].Shape().Clone(), rank(in[0]), 1, 2), f: o}, in[0], in[1], pg)
	dg := b.apply(&rowOp{opCore: b.core("bnDGamma", tensor.Shape{o.c}, 2), row: 0}, pg)
	db := b.apply(&rowOp{opCore: b.core("bnDBeta", tensor.Shape{o.c}, 2), row: 1}, pg)
	return G.Nodes{dx, dg, db}, b.err
}

// bnParamGradOp computes dz = dy·act'(z) (kept for bnDataGradOp) and returns
// [dgamma; dbeta] as a [2,C] tensor: inputs x, gamma, beta, dy.
type bnParamGradOp struct {
	opCore
	noDiff
	f *bnActOp
}

func (o *bnParamGradOp) Do(in ...G.Value) (G.Value, error) {
	f := o.f
	x, gamma, beta, dy := f32s(in[0]), f32s(in[1]), f32s(in[2]), f32s(in[3])
	t, pg := o.out()
	f.st.dz = f.a.get(len(x))
	sg, sb := make([]float64, f.c), make([]float64, f.c)
	bnGradParam(x, dy, f.st.dz, f.n, f.c, f.hw, f.st.mean, f.st.invstd, gamma, beta, f.act, sg, sb)
	for ch := range f.c {
		pg[ch], pg[f.c+ch] = float32(sg[ch]), float32(sb[ch])
	}
	return t, nil
}

// bnDataGradOp is dL/dx of train-mode BatchNorm: inputs x, gamma, [dgamma; dbeta].
type bnDataGradOp struct {
	opCore
	noDiff
	f *bnActOp
}

func (o *bnDataGradOp) Do(in ...G.Value) (G.Value, error) {
	f := o.f
	x, gamma, pg := f32s(in[0]), f32s(in[1]), f32s(in[2])
	t, dx := o.out()
	cnt := float32(f.n * f.hw)
	k, mg, mb := f.a.get(f.c), f.a.get(f.c), f.a.get(f.c)
	for ch := range f.c {
		k[ch] = gamma[ch] * f.st.invstd[ch]
		mg[ch], mb[ch] = pg[ch]/cnt, pg[f.c+ch]/cnt
	}
	bnGradData(x, f.st.dz, dx, f.n, f.c, f.hw, f.st.mean, f.st.invstd, k, mg, mb)
	return t, nil
}

// rowOp copies row r of a [R,C] tensor.
type rowOp struct {
	opCore
	noDiff
	row int
}

func (o *rowOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	c := len(y)
	copy(y, f32s(in[0])[o.row*c:(o.row+1)*c])
	return t, nil
}

// ---------------------------------------------------------------- linear layers

// linearOp is y[N,out] = x[N,in]·wᵀ (+ b): inputs x, w [out,in,...] (1×1 conv weights
// count as [out,in]), and b [out] when it has a bias.
type linearOp struct {
	opCore
	n, in, outF int
	bias        bool
	b           *builder
}

func (b *builder) linear(x, w, bias *G.Node) *G.Node {
	ws := w.Shape()
	out := ws[0]
	in := ws.TotalSize() / out
	op := &linearOp{n: x.Shape()[0], in: in, outF: out, bias: bias != nil, b: b}
	if bias != nil {
		op.opCore = b.core("linear_b", tensor.Shape{op.n, out}, 2, rank(w), 1)
		return b.apply(op, x, w, bias)
	}
	op.opCore = b.core("linear", tensor.Shape{op.n, out}, 2, rank(w))
	return b.apply(op, x, w)
}

func (o *linearOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	x, w := f32s(in[0]), f32s(in[1])
	beta := float32(0)
	if o.bias {
		bs := f32s(in[2])
		for i := range o.n {
			copy(y[i*o.outF:(i+1)*o.outF], bs)
		}
		beta = 1
	}
	cpu.Sgemm(false, true, o.n, o.outF, o.in, 1, x, o.in, w, o.in, beta, y, o.outF)
	return t, nil
}

func (o *linearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (o *linearOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	dx := b.apply(&linDXOp{opCore: b.core("linDX", in[0].Shape().Clone(), rank(in[1]), 2), l: o}, in[1], grad)
	dw := b.apply(&linDWOp{opCore: b.core("linDW", in[1].Shape().Clone(), 2, 2), l: o}, in[0], grad)
	out := G.Nodes{dx, dw}
	if o.bias {
		out = append(out, b.apply(&colSumOp{opCore: b.core("linDB", tensor.Shape{o.outF}, 2)}, grad))
	}
	return out, b.err
}

// linDXOp is dy·w: inputs w, dy.
type linDXOp struct {
	opCore
	noDiff
	l *linearOp
}

func (o *linDXOp) Do(in ...G.Value) (G.Value, error) {
	l := o.l
	t, dx := o.out()
	cpu.Sgemm(false, false, l.n, l.in, l.outF, 1, f32s(in[1]), l.outF, f32s(in[0]), l.in, 0, dx, l.in)
	return t, nil
}

// linDWOp is dyᵀ·x: inputs x, dy.
type linDWOp struct {
	opCore
	noDiff
	l *linearOp
}

func (o *linDWOp) Do(in ...G.Value) (G.Value, error) {
	l := o.l
	t, dw := o.out()
	cpu.Sgemm(true, false, l.outF, l.in, l.n, 1, f32s(in[1]), l.outF, f32s(in[0]), l.in, 0, dw, l.in)
	return t, nil
}

// colSumOp sums a [N,C] tensor over N.
type colSumOp struct {
	opCore
	noDiff
}

func (o *colSumOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.outZero()
	x := f32s(in[0])
	c := len(y)
	for i := 0; i < len(x); i += c {
		for j, v := range x[i : i+c] {
			y[j] += v
		}
	}
	return t, nil
}

// ---------------------------------------------------------------- pooling, SE, residual

// poolOp is global average pooling [N,C,H,W] → [N,C].
type poolOp struct {
	opCore
	n, c, hw int
	b        *builder
}

func (b *builder) pool(x *G.Node) *G.Node {
	s := x.Shape()
	return b.apply(&poolOp{opCore: b.core("pool", tensor.Shape{s[0], s[1]}, 4), n: s[0], c: s[1], hw: s[2] * s[3], b: b}, x)
}

func (o *poolOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	cpu.GlobalAvgPool(o.n, o.c, o.hw, f32s(in[0]), y)
	return t, nil
}
func (o *poolOp) DiffWRT(int) []bool { return []bool{true} }
func (o *poolOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	return G.Nodes{b.apply(&poolGradOp{opCore: b.core("poolGrad", in[0].Shape().Clone(), 2), hw: o.hw}, grad)}, b.err
}

// poolGradOp spreads dy[N,C]/hw over each plane.
type poolGradOp struct {
	opCore
	noDiff
	hw int
}

func (o *poolGradOp) Do(in ...G.Value) (G.Value, error) {
	t, dx := o.out()
	inv := 1 / float32(o.hw)
	for p, v := range f32s(in[0]) {
		d := v * inv
		row := dx[p*o.hw : (p+1)*o.hw]
		for j := range row {
			row[j] = d
		}
	}
	return t, nil
}

// chanScaleOp multiplies each plane x[n,c] by s[n,c] (the squeeze-excite gate): inputs x, s.
type chanScaleOp struct {
	opCore
	n, c, hw int
	b        *builder
}

func (b *builder) chanScale(x, s *G.Node) *G.Node {
	xs := x.Shape()
	return b.apply(&chanScaleOp{opCore: b.core("chanScale", xs.Clone(), 4, 2), n: xs[0], c: xs[1], hw: xs[2] * xs[3], b: b}, x, s)
}

func (o *chanScaleOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	copy(y, f32s(in[0]))
	cpu.ChannelScale(o.n, o.c, o.hw, y, f32s(in[1]))
	return t, nil
}
func (o *chanScaleOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *chanScaleOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	dx := b.chanScale(grad, in[1])
	ds := b.apply(&chanDotOp{opCore: b.core("chanDot", in[1].Shape().Clone(), 4, 4), hw: o.hw}, in[0], grad)
	return G.Nodes{dx, ds}, b.err
}

// chanDotOp is Σ_hw x·dy per plane: inputs x, dy.
type chanDotOp struct {
	opCore
	noDiff
	hw int
}

func (o *chanDotOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	x, dy := f32s(in[0]), f32s(in[1])
	for p := range y {
		var s float32
		xs, ds := x[p*o.hw:(p+1)*o.hw], dy[p*o.hw:(p+1)*o.hw]
		for j, v := range xs {
			s += v * ds[j]
		}
		y[p] = s
	}
	return t, nil
}

// addOp is a + b (residual connections).
type addOp struct {
	opCore
}

func (b *builder) add(x, y *G.Node) *G.Node {
	return b.apply(&addOp{opCore: b.core("add", x.Shape().Clone(), rank(x), rank(y))}, x, y)
}

func (o *addOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	copy(y, f32s(in[0]))
	cpu.Add(y, f32s(in[1]))
	return t, nil
}
func (o *addOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *addOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}

// ---------------------------------------------------------------- parameters

// paramGrad is the full-size gradient accumulator of one supernet tensor.
type paramGrad struct {
	name    string
	shape   []int
	data    []float32 // the supernet's tensor (shared)
	grad    []float32
	present bool // some subnet used the tensor since the last optimizer step
}

// sliceOp takes the leading rows [:rows] and columns [:cols] of a parameter of shape
// [R, C, rest...] (or [:rows] of a vector); its gradient is scattered into the
// parameter's accumulator, so the gradient of the whole tensor is zero outside the slice.
type sliceOp struct {
	opCore
	full       []int
	rows, cols int
	p          *paramGrad
	b          *builder
}

func (b *builder) slice(param *G.Node, p *paramGrad, rows, cols int) *G.Node {
	full := append([]int(nil), p.shape...)
	out := tensor.Shape(append([]int(nil), full...))
	out[0] = rows
	if len(full) > 1 {
		out[1] = cols
	} else {
		cols = 1
	}
	return b.apply(&sliceOp{opCore: b.core("slice:"+p.name, out, len(full)), full: full, rows: rows, cols: cols, p: p, b: b}, param)
}

func (o *sliceOp) geometry() (fullCols, inner int) {
	inner = 1
	fullCols = 1
	if len(o.full) > 1 {
		fullCols = o.full[1]
		for _, d := range o.full[2:] {
			inner *= d
		}
	}
	return fullCols, inner
}

func (o *sliceOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	src := f32s(in[0])
	fc, inner := o.geometry()
	row := o.cols * inner
	for r := range o.rows {
		copy(y[r*row:(r+1)*row], src[r*fc*inner:r*fc*inner+row])
	}
	return t, nil
}
func (o *sliceOp) DiffWRT(int) []bool { return []bool{true} }
func (o *sliceOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	op := &scatterAccOp{opCore: b.core("gradAcc:"+o.p.name, in[0].Shape().Clone(), len(o.shape)), s: o}
	return G.Nodes{b.apply(op, grad)}, b.err
}

// scatterAccOp adds the gradient of a slice into the parameter's accumulator and returns
// the accumulator (the parameter's full gradient so far).
type scatterAccOp struct {
	opCore
	noDiff
	s *sliceOp
}

func (o *scatterAccOp) Do(in ...G.Value) (G.Value, error) {
	s := o.s
	dy := f32s(in[0])
	acc := s.p.grad
	fc, inner := s.geometry()
	row := s.cols * inner
	if len(dy) != s.rows*row {
		return nil, fmt.Errorf("gradient of %s: %d values for a [%d rows × %d] slice of %v (input shape %v)",
			s.p.name, len(dy), s.rows, row, s.full, in[0].Shape())
	}
	for r := range s.rows {
		dst := acc[r*fc*inner : r*fc*inner+row]
		for j, v := range dy[r*row : (r+1)*row] {
			dst[j] += v
		}
	}
	s.p.present = true
	return tensor.New(tensor.WithShape(s.full...), tensor.WithBacking(acc)), nil
}

// ---------------------------------------------------------------- kernel transformation

// kernelOp maps depthwise kernels w [C,1,k,k] to [C,1,n,n]: each channel's centre n×n,
// flattened, times Mᵀ (OFA's F.linear(crop, M)): inputs w, M [n²,n²].
type kernelOp struct {
	opCore
	c, k, n int
	b       *builder
}

func (b *builder) kernelTransform(w, m *G.Node, n int) *G.Node {
	s := w.Shape()
	return b.apply(&kernelOp{opCore: b.core(fmt.Sprintf("kernel%dto%d", s[2], n), tensor.Shape{s[0], 1, n, n}, 4, 2), c: s[0], k: s[2], n: n, b: b}, w, m)
}

// crop writes the centre n×n of each k×k kernel, flattened, into dst [C, n²].
func (o *kernelOp) crop(w, dst []float32) {
	off := (o.k - o.n) / 2
	for c := range o.c {
		src := w[c*o.k*o.k:]
		for y := range o.n {
			copy(dst[c*o.n*o.n+y*o.n:c*o.n*o.n+(y+1)*o.n], src[(y+off)*o.k+off:(y+off)*o.k+off+o.n])
		}
	}
}

func (o *kernelOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	nn := o.n * o.n
	crop := o.a.get(o.c * nn)
	o.crop(f32s(in[0]), crop)
	cpu.Sgemm(false, true, o.c, nn, nn, 1, crop, nn, f32s(in[1]), nn, 0, y, nn)
	return t, nil
}
func (o *kernelOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *kernelOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	dw := b.apply(&kernelGradWOp{opCore: b.core("kernelGradW", in[0].Shape().Clone(), 2, 4), k: o}, in[1], grad)
	dm := b.apply(&kernelGradMOp{opCore: b.core("kernelGradM", in[1].Shape().Clone(), 4, 4), k: o}, in[0], grad)
	return G.Nodes{dw, dm}, b.err
}

// kernelGradWOp is dL/dw: (G·M) written into each kernel's centre, zero elsewhere: inputs M, dy.
type kernelGradWOp struct {
	opCore
	noDiff
	k *kernelOp
}

func (o *kernelGradWOp) Do(in ...G.Value) (G.Value, error) {
	k := o.k
	t, dw := o.outZero()
	nn := k.n * k.n
	tmp := o.a.get(k.c * nn)
	cpu.Sgemm(false, false, k.c, nn, nn, 1, f32s(in[1]), nn, f32s(in[0]), nn, 0, tmp, nn)
	off := (k.k - k.n) / 2
	for c := range k.c {
		for y := range k.n {
			copy(dw[c*k.k*k.k+(y+off)*k.k+off:][:k.n], tmp[c*nn+y*k.n:][:k.n])
		}
	}
	return t, nil
}

// kernelGradMOp is dL/dM = Gᵀ·crop summed over channels: inputs w, dy.
type kernelGradMOp struct {
	opCore
	noDiff
	k *kernelOp
}

func (o *kernelGradMOp) Do(in ...G.Value) (G.Value, error) {
	k := o.k
	t, dm := o.out()
	nn := k.n * k.n
	crop := o.a.get(k.c * nn)
	k.crop(f32s(in[0]), crop)
	cpu.Sgemm(true, false, nn, nn, k.c, 1, f32s(in[1]), nn, crop, nn, 0, dm, nn)
	return t, nil
}

// ---------------------------------------------------------------- dropout

// dropoutOp zeroes each element with probability p and scales the rest by 1/(1-p),
// drawing the mask from the trainer's generator.
type dropoutOp struct {
	opCore
	p    float64
	rnd  func() float64
	mask []float32
	b    *builder
}

func (b *builder) dropout(x *G.Node, p float64, rnd func() float64) *G.Node {
	if p <= 0 {
		return x
	}
	return b.apply(&dropoutOp{opCore: b.core("dropout", x.Shape().Clone(), rank(x)), p: p, rnd: rnd, b: b}, x)
}

func (o *dropoutOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	x := f32s(in[0])
	o.mask = o.a.get(len(x))
	keep := float32(1 / (1 - o.p))
	for i, v := range x {
		m := float32(0)
		if o.rnd() >= o.p {
			m = keep
		}
		o.mask[i] = m
		y[i] = v * m
	}
	return t, nil
}
func (o *dropoutOp) DiffWRT(int) []bool { return []bool{true} }
func (o *dropoutOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	return G.Nodes{b.apply(&maskOp{opCore: b.core("dropoutGrad", in[0].Shape().Clone(), rank(in[0])), d: o}, grad)}, b.err
}

// maskOp multiplies dy by the forward's dropout mask.
type maskOp struct {
	opCore
	noDiff
	d *dropoutOp
}

func (o *maskOp) Do(in ...G.Value) (G.Value, error) {
	t, y := o.out()
	for i, v := range f32s(in[0]) {
		y[i] = v * o.d.mask[i]
	}
	return t, nil
}

// ---------------------------------------------------------------- loss

// lossState holds the per-run targets of a cross-entropy op and what it computed.
type lossState struct {
	target  []float32 // [N,K] target distribution(s); rows may sum to more than 1
	softmax []float32
	loss    float64
}

// xentOp is mean over the batch of -Σ_k t[n,k]·log_softmax(logits)[n,k]: input logits
// [N,K]; the targets come from its state. One-hot targets give PyTorch's cross-entropy,
// smoothed ones label smoothing, a teacher's softmax knowledge distillation, and their
// sum the combined loss.
type xentOp struct {
	opCore
	n, k int
	st   *lossState
	b    *builder
}

func (b *builder) xent(logits *G.Node, st *lossState) *G.Node {
	s := logits.Shape()
	return b.apply(&xentOp{opCore: b.core("xent", nil, 2), n: s[0], k: s[1], st: st, b: b}, logits)
}

func (o *xentOp) Do(in ...G.Value) (G.Value, error) {
	z := f32s(in[0])
	st := o.st
	if len(st.target) != o.n*o.k {
		return nil, fmt.Errorf("xent: %d target values, want %d", len(st.target), o.n*o.k)
	}
	if len(st.softmax) != len(z) {
		st.softmax = make([]float32, len(z))
	}
	var total float64
	for i := range o.n {
		row := z[i*o.k : (i+1)*o.k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		lse := m + math.Log(s)
		for j, v := range row {
			lp := float64(v) - lse
			st.softmax[i*o.k+j] = float32(math.Exp(lp))
			total -= float64(st.target[i*o.k+j]) * lp
		}
	}
	st.loss = total / float64(o.n)
	return G.NewF32(float32(st.loss)), nil
}
func (o *xentOp) DiffWRT(int) []bool { return []bool{true} }
func (o *xentOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	b := o.b
	return G.Nodes{b.apply(&xentGradOp{opCore: b.core("xentGrad", in[0].Shape().Clone(), 2, 0), x: o}, in[0], grad)}, b.err
}

// xentGradOp is (softmax·Σt - t)/N·dy: inputs logits, dy (scalar).
type xentGradOp struct {
	opCore
	noDiff
	x *xentOp
}

func (o *xentGradOp) Do(in ...G.Value) (G.Value, error) {
	x := o.x
	t, dz := o.out()
	scale := float64(scalar32(in[1])) / float64(x.n)
	for i := range x.n {
		tr := x.st.target[i*x.k : (i+1)*x.k]
		var sum float64
		for _, v := range tr {
			sum += float64(v)
		}
		for j := range tr {
			dz[i*x.k+j] = float32((float64(x.st.softmax[i*x.k+j])*sum - float64(tr[j])) * scale)
		}
	}
	return t, nil
}
