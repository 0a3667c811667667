package trainer

import (
	"errors"
	"fmt"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/natgw/natgw/internal/cpu"
	"github.com/natgw/natgw/supernet"
)

// model is a supernet prepared for training: its trainable tensors with gradient
// accumulators, and the arena the graphs allocate from.
type model struct {
	sn     *supernet.Supernet
	params []*paramGrad // trainable tensors in the spec's key order
	byName map[string]*paramGrad
	a      *arena
	rnd    func() float64 // dropout's generator
}

// trainable reports whether a supernet tensor is a parameter (running statistics are buffers).
func trainable(name string) bool {
	return !strings.HasSuffix(name, ".running_mean") && !strings.HasSuffix(name, ".running_var")
}

func newModel(sn *supernet.Supernet, rnd func() float64) *model {
	m := &model{sn: sn, byName: map[string]*paramGrad{}, a: newArena(1 << 29), rnd: rnd}
	for _, p := range sn.Params() {
		if !trainable(p.Name) {
			continue
		}
		pg := &paramGrad{name: p.Name, shape: p.Shape, data: p.Data, grad: make([]float32, len(p.Data))}
		m.params = append(m.params, pg)
		m.byName[p.Name] = pg
	}
	return m
}

// zeroGrad clears the accumulators and marks every tensor as unused.
func (m *model) zeroGrad() {
	for _, p := range m.params {
		if p.present {
			clear(p.grad)
			p.present = false
		}
	}
}

// subnetGraph is the compiled forward+backward graph of one active subnet at one batch
// shape. Running it adds the subnet's gradients into the model's accumulators.
type subnetGraph struct {
	g      *G.ExprGraph
	vm     G.VM
	x      *G.Node
	logits *G.Node
	loss   *lossState
	a      *arena
	n, r   int
}

func toAct(a supernet.Act) cpu.Act {
	switch a {
	case supernet.ActReLU:
		return cpu.ActReLU
	case supernet.ActReLU6:
		return cpu.ActReLU6
	case supernet.ActHSwish:
		return cpu.ActHSwish
	}
	return cpu.ActNone
}

// validArch checks the elastic part of an arch (ks, e, d) against the spec; the
// resolution is the batch's and is not checked.
func validArch(s *supernet.Spec, a supernet.Arch) error {
	a.R = s.Resolutions[0]
	return s.ValidateArch(a)
}

// maxSalts bounds the rebuilds of a graph whose node hashes collide.
const maxSalts = 8

// build makes the training graph of arch for batches of n images of r×r pixels.
//
// Gorgonia identifies a node by a 32-bit hash: its compiler gives two nodes with equal
// hashes one register, so one silently reads the other's value. A graph of ~900 nodes
// collides about once in 10⁴ builds, and a training run builds hundreds to thousands of
// them. So every graph is checked, and one with a collision is rebuilt with another salt
// in its op and input names' hashes.
func (m *model) build(arch supernet.Arch, n, r int) (*subnetGraph, error) {
	var errs []error
	for salt := range maxSalts {
		sg, err := m.buildSalted(arch, n, r, salt)
		if err != nil {
			return nil, err
		}
		x, y, ok := hashCollision(sg.g)
		if !ok {
			return sg, nil
		}
		errs = append(errs, fmt.Errorf("salt %d: %v and %v hash alike", salt, x, y))
	}
	return nil, fmt.Errorf("graph of %s at %d × %d px: node hashes collide with every salt: %w", arch.JSON(), n, r, errors.Join(errs...))
}

// hashCollision returns two distinct nodes of g with equal hashes, if any.
func hashCollision(g *G.ExprGraph) (x, y *G.Node, ok bool) {
	seen := make(map[uint32]*G.Node, len(g.AllNodes()))
	for _, n := range g.AllNodes() {
		h := n.Hashcode()
		if o, dup := seen[h]; dup && o != n {
			return o, n, true
		}
		seen[h] = n
	}
	return nil, nil, false
}

// buildSalted is build with one hash salt: 0 keeps the tensors' own names.
func (m *model) buildSalted(arch supernet.Arch, n, r, salt int) (*subnetGraph, error) {
	s := m.sn.Spec
	if err := validArch(s, arch); err != nil {
		return nil, err
	}
	if n < 1 || r < 1 {
		return nil, fmt.Errorf("batch %d × %d px: sizes must be positive", n, r)
	}
	g := G.NewGraph()
	b := &builder{g: g, a: m.a, salt: salt}
	// An input node's hash covers its name, so the salt goes into the names too.
	nodeName := func(name string) string {
		if salt == 0 {
			return name
		}
		return fmt.Sprintf("%s~%d", name, salt)
	}
	var wrt G.Nodes
	sl := func(name string, rows, cols int) *G.Node {
		p, ok := m.byName[name]
		if !ok {
			b.err = errors.Join(b.err, fmt.Errorf("tensor %s: missing", name))
			return nil
		}
		if b.err != nil {
			return nil
		}
		node := G.NewTensor(g, tensor.Float32, len(p.shape), G.WithShape(p.shape...), G.WithName(nodeName(name)),
			G.WithValue(tensor.New(tensor.WithShape(p.shape...), tensor.WithBacking(p.data))))
		wrt = append(wrt, node)
		return b.slice(node, p, rows, cols)
	}
	conv := func(in, w *G.Node, k, stride, groups int, needDX bool) *G.Node {
		if b.err != nil {
			return nil
		}
		sh := in.Shape()
		pt, pb := supernet.Pads(s.Padding, sh[2], k, stride)
		pl, pr := supernet.Pads(s.Padding, sh[3], k, stride)
		c := cpu.Conv{N: sh[0], C: sh[1], H: sh[2], W: sh[3], K: w.Shape()[0], KH: k, KW: k, StrideH: stride, StrideW: stride,
			PadTop: pt, PadLeft: pl, PadBottom: pb, PadRight: pr, Groups: groups}
		if err := c.Check(); err != nil {
			b.err = fmt.Errorf("%s input %v: %w", s.Name, sh, err)
			return nil
		}
		return b.conv(in, w, c, needDX)
	}
	bn := func(in *G.Node, prefix string, c int, act supernet.Act) *G.Node {
		gamma, beta := sl(prefix+".weight", c, 0), sl(prefix+".bias", c, 0)
		if b.err != nil {
			return nil
		}
		rm, rv := m.sn.Tensor(prefix+".running_mean"), m.sn.Tensor(prefix+".running_var")
		return b.bnAct(in, gamma, beta, s.BNEps, s.BNMomentum, toAct(act), rm[:c], rv[:c])
	}
	se := func(t *G.Node, prefix string, mid, maxMid int) *G.Node {
		hidden, maxHidden := s.SEWidth(mid), s.SEWidth(maxMid)
		_ = maxHidden
		p := b.pool(t)
		h := b.linear(p, sl(prefix+".se.fc.reduce.weight", hidden, mid), sl(prefix+".se.fc.reduce.bias", hidden, 0))
		h = b.activation(h, cpu.ActReLU)
		gate := b.linear(h, sl(prefix+".se.fc.expand.weight", mid, hidden), sl(prefix+".se.fc.expand.bias", mid, 0))
		gate = b.activation(gate, cpu.ActHSigmoid)
		return b.chanScale(t, gate)
	}

	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, 3, r, r), G.WithName(nodeName("input")))
	stem := s.Stem
	y := conv(x, sl("first_conv.conv.weight", stem.Out, 3), stem.Kernel, stem.Stride, 1, false)
	y = bn(y, "first_conv.bn", stem.Out, stem.Act)

	// The fixed first block (expand ratio 1).
	in := stem.Out
	t := conv(y, sl("blocks.0.conv.depth_conv.conv.weight", in, 1), s.First.Kernel, s.First.Stride, in, true)
	t = bn(t, "blocks.0.conv.depth_conv.bn", in, s.First.Act)
	if s.First.SE {
		t = se(t, "blocks.0.conv.depth_conv", in, in)
	}
	t = conv(t, sl("blocks.0.conv.point_linear.conv.weight", s.First.Out, in), 1, 1, 1, true)
	t = bn(t, "blocks.0.conv.point_linear.bn", s.First.Out, supernet.ActNone)
	if s.First.Stride == 1 && in == s.First.Out {
		t = b.add(t, y)
	}
	y = t

	ks := s.Kernels
	for _, g := range s.ActiveBlocks(arch) {
		blk, stage, in, out, mid, maxMid, stride := g.Index, g.Stage, g.In, g.Out, g.Mid, g.MaxMid, g.Stride
		p := fmt.Sprintf("blocks.%d.conv", blk+1)
		t := conv(y, sl(p+".inverted_bottleneck.conv.conv.weight", mid, in), 1, 1, 1, true)
		t = bn(t, p+".inverted_bottleneck.bn.bn", mid, stage.Act)
		w := sl(p+".depth_conv.conv.conv.weight", mid, 1)
		k := g.Kernel
		for i := len(ks) - 1; i > 0 && ks[i] > k && b.err == nil; i-- {
			next := ks[i-1]
			mname := fmt.Sprintf("%s.depth_conv.conv.%dto%d_matrix", p, ks[i], next)
			w = b.kernelTransform(w, sl(mname, next*next, next*next), next)
		}
		t = conv(t, w, k, stride, mid, true)
		t = bn(t, p+".depth_conv.bn.bn", mid, stage.Act)
		if stage.SE {
			t = se(t, p+".depth_conv", mid, maxMid)
		}
		t = conv(t, sl(p+".point_linear.conv.conv.weight", out, mid), 1, 1, 1, true)
		t = bn(t, p+".point_linear.bn.bn", out, supernet.ActNone)
		if g.Residual {
			t = b.add(t, y)
		}
		y = t
	}
	feat := s.FeatureWidth()
	if fe := s.FinalExpand; fe != nil {
		y = conv(y, sl("final_expand_layer.conv.weight", fe.Out, feat), 1, 1, 1, true)
		if fe.BN {
			y = bn(y, "final_expand_layer.bn", fe.Out, fe.Act)
		} else {
			y = b.activation(y, toAct(fe.Act))
		}
		feat = fe.Out
	}
	if b.err != nil {
		return nil, b.err
	}
	y = b.pool(y)
	if fm := s.FeatureMix; fm != nil {
		y = b.linear(y, sl("feature_mix_layer.conv.weight", fm.Out, feat), nil)
		if fm.BN {
			y = bn(y, "feature_mix_layer.bn", fm.Out, fm.Act)
		} else {
			y = b.activation(y, toAct(fm.Act))
		}
		feat = fm.Out
	}
	y = b.dropout(y, s.Dropout, m.rnd)
	logits := b.linear(y, sl("classifier.linear.weight", s.Classes, feat), sl("classifier.linear.bias", s.Classes, 0))
	st := &lossState{}
	cost := b.xent(logits, st)
	if b.err != nil {
		return nil, b.err
	}
	if _, err := G.Grad(cost, wrt...); err != nil {
		return nil, fmt.Errorf("gradient graph: %w", err)
	}
	if b.err != nil {
		return nil, b.err
	}
	return &subnetGraph{g: g, vm: G.NewTapeMachine(g), x: x, logits: logits, loss: st, a: m.a, n: n, r: r}, nil
}

// run executes forward and backward on x [n,3,r,r] with the given target distribution
// [n,classes]; it returns the loss and a copy of the logits. Gradients are added to the
// model's accumulators and BatchNorm running statistics are updated.
func (sg *subnetGraph) run(x []float32, target []float32, logits []float32) (float64, error) {
	defer sg.a.reset()
	defer sg.vm.Reset()
	if len(x) != sg.n*3*sg.r*sg.r {
		return 0, fmt.Errorf("input has %d values, want %d", len(x), sg.n*3*sg.r*sg.r)
	}
	sg.loss.target = target
	if err := G.Let(sg.x, tensor.New(tensor.WithShape(sg.n, 3, sg.r, sg.r), tensor.WithBacking(x))); err != nil {
		return 0, err
	}
	if err := sg.vm.RunAll(); err != nil {
		return 0, err
	}
	if logits != nil {
		copy(logits, f32s(sg.logits.Value()))
	}
	return sg.loss.loss, nil
}
