package supernet

import (
	"fmt"
	"math"
	"strings"
)

// BatchNorm holds one BatchNorm's affine parameters and running statistics.
type BatchNorm struct {
	Weight, Bias, Mean, Var []float32
	Eps                     float64
}

// ConvLayer is a convolution (no bias unless Bias is set), optionally followed by
// BatchNorm, then an activation.
type ConvLayer struct {
	In, Out, Kernel, Stride, Groups int
	Weight                          []float32 // [Out, In/Groups, Kernel, Kernel]
	Bias                            []float32 // nil: none
	BN                              *BatchNorm
	Act                             Act
}

// SE is squeeze-and-excitation: pool, 1×1 reduce + ReLU, 1×1 expand + h_sigmoid, multiply.
type SE struct {
	Channels, Hidden                                   int
	ReduceWeight, ReduceBias, ExpandWeight, ExpandBias []float32
}

// Block is one inverted-residual block of a subnet.
type Block struct {
	Index        int        // supernet block index (0 = the fixed first block)
	Expand       *ConvLayer // nil when the expand ratio is 1
	Depthwise    ConvLayer
	SE           *SE
	Project      ConvLayer
	Residual     bool
	In, Mid, Out int
	Kernel, E    int
}

// Linear is the classifier.
type Linear struct {
	In, Out int
	Weight  []float32 // [Out, In]
	Bias    []float32
}

// Subnet is a stand-alone network taken out of a supernet: its own copies of the sliced
// and transformed weights, in eval mode.
type Subnet struct {
	SpecName    string
	Arch        Arch // canonical
	Resolution  int
	Padding     string
	Stem        ConvLayer
	Blocks      []Block
	FinalExpand *ConvLayer // before pooling; nil when absent
	FeatureMix  *ConvLayer // after pooling; nil when absent
	Classifier  Linear
	Dropout     float64
}

// Extract returns the subnet that OFA's get_active_subnet(preserve_weight=True) builds:
// the first d blocks of each stage, middle channels as a leading slice, depthwise kernels
// centre-cropped through the kernel-transform chain, SE and BatchNorm sliced to match.
// The subnet owns its weights; changing it leaves the supernet alone.
func (sn *Supernet) Extract(a Arch) (*Subnet, error) {
	s := sn.Spec
	a, err := s.Canonical(a)
	if err != nil {
		return nil, err
	}
	t := sn.Tensor
	net := &Subnet{SpecName: s.Name, Arch: a, Resolution: a.R, Padding: s.Padding, Dropout: s.Dropout}
	net.Stem = ConvLayer{
		In: 3, Out: s.Stem.Out, Kernel: s.Stem.Kernel, Stride: s.Stem.Stride, Groups: 1,
		Weight: clone(t("first_conv.conv.weight")), BN: sn.bn("first_conv.bn", s.Stem.Out), Act: s.Stem.Act,
	}
	in := s.Stem.Out
	first := Block{Index: 0, In: in, Mid: in, Out: s.First.Out, Kernel: s.First.Kernel, E: 1,
		Residual: s.First.Stride == 1 && in == s.First.Out}
	first.Depthwise = ConvLayer{In: in, Out: in, Kernel: s.First.Kernel, Stride: s.First.Stride, Groups: in,
		Weight: clone(t("blocks.0.conv.depth_conv.conv.weight")), BN: sn.bn("blocks.0.conv.depth_conv.bn", in), Act: s.First.Act}
	if s.First.SE {
		first.SE = sn.se("blocks.0.conv.depth_conv", in, in)
	}
	first.Project = ConvLayer{In: in, Out: s.First.Out, Kernel: 1, Stride: 1, Groups: 1,
		Weight: sliceConv(t("blocks.0.conv.point_linear.conv.weight"), in, s.First.Out, in, 1),
		BN:     sn.bn("blocks.0.conv.point_linear.bn", s.First.Out), Act: ActNone}
	net.Blocks = append(net.Blocks, first)

	kmax := s.Kernels[len(s.Kernels)-1]
	for _, g := range s.ActiveBlocks(a) {
		stage, in, mid, out, stride := g.Stage, g.In, g.Mid, g.Out, g.Stride
		p := fmt.Sprintf("blocks.%d.conv", g.Index+1)
		blk := Block{Index: g.Index + 1, In: in, Mid: mid, Out: out, Kernel: g.Kernel, E: g.Expand, Residual: g.Residual}
		blk.Expand = &ConvLayer{In: in, Out: mid, Kernel: 1, Stride: 1, Groups: 1,
			Weight: sliceConv(t(p+".inverted_bottleneck.conv.conv.weight"), in, mid, in, 1),
			BN:     sn.bn(p+".inverted_bottleneck.bn.bn", mid), Act: stage.Act}
		blk.Depthwise = ConvLayer{In: mid, Out: mid, Kernel: g.Kernel, Stride: stride, Groups: mid,
			Weight: sn.depthwiseKernel(p+".depth_conv.conv", mid, kmax, g.Kernel),
			BN:     sn.bn(p+".depth_conv.bn.bn", mid), Act: stage.Act}
		if stage.SE {
			blk.SE = sn.se(p+".depth_conv", g.MaxMid, mid)
		}
		blk.Project = ConvLayer{In: mid, Out: out, Kernel: 1, Stride: 1, Groups: 1,
			Weight: sliceConv(t(p+".point_linear.conv.conv.weight"), g.MaxMid, out, mid, 1),
			BN:     sn.bn(p+".point_linear.bn.bn", out), Act: ActNone}
		net.Blocks = append(net.Blocks, blk)
	}
	feat := s.FeatureWidth()
	if fe := s.FinalExpand; fe != nil {
		l := &ConvLayer{In: feat, Out: fe.Out, Kernel: 1, Stride: 1, Groups: 1,
			Weight: clone(t("final_expand_layer.conv.weight")), Act: fe.Act}
		if fe.BN {
			l.BN = sn.bn("final_expand_layer.bn", fe.Out)
		}
		net.FinalExpand, feat = l, fe.Out
	}
	if fm := s.FeatureMix; fm != nil {
		l := &ConvLayer{In: feat, Out: fm.Out, Kernel: 1, Stride: 1, Groups: 1,
			Weight: clone(t("feature_mix_layer.conv.weight")), Act: fm.Act}
		if fm.BN {
			l.BN = sn.bn("feature_mix_layer.bn", fm.Out)
		}
		net.FeatureMix, feat = l, fm.Out
	}
	net.Classifier = Linear{In: feat, Out: s.Classes,
		Weight: clone(t("classifier.linear.weight")), Bias: clone(t("classifier.linear.bias"))}
	return net, nil
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }

// sliceConv takes rows [:out] and input columns [:in] of a [rows, cols, k, k] weight.
func sliceConv(w []float32, cols, out, in, k int) []float32 {
	kk := k * k
	dst := make([]float32, 0, out*in*kk)
	for o := range out {
		row := w[o*cols*kk:]
		dst = append(dst, row[:in*kk]...)
	}
	return dst
}

func (sn *Supernet) bn(prefix string, c int) *BatchNorm {
	return &BatchNorm{
		Weight: clone(sn.Tensor(prefix + ".weight")[:c]),
		Bias:   clone(sn.Tensor(prefix + ".bias")[:c]),
		Mean:   clone(sn.Tensor(prefix + ".running_mean")[:c]),
		Var:    clone(sn.Tensor(prefix + ".running_var")[:c]),
		Eps:    sn.Spec.BNEps,
	}
}

// se slices the SE weights of a block whose full middle width is maxMid to the active mid;
// the hidden width follows the active mid, as in OFA's DynamicSE.
func (sn *Supernet) se(prefix string, maxMid, mid int) *SE {
	maxHidden := sn.Spec.SEWidth(maxMid)
	hidden := sn.Spec.SEWidth(mid)
	return &SE{
		Channels: mid, Hidden: hidden,
		ReduceWeight: sliceConv(sn.Tensor(prefix+".se.fc.reduce.weight"), maxMid, hidden, mid, 1),
		ReduceBias:   clone(sn.Tensor(prefix + ".se.fc.reduce.bias")[:hidden]),
		ExpandWeight: sliceConv(sn.Tensor(prefix+".se.fc.expand.weight"), maxHidden, mid, hidden, 1),
		ExpandBias:   clone(sn.Tensor(prefix + ".se.fc.expand.bias")[:mid]),
	}
}

// depthwiseKernel builds the [mid,1,k,k] kernel for kernel size k from the stored
// [maxMid,1,kmax,kmax] weight: each step down the chain takes the centre of the current
// kernel and maps it through that step's matrix (v' = M·v per channel).
func (sn *Supernet) depthwiseKernel(prefix string, mid, kmax, k int) []float32 {
	w := sn.Tensor(prefix + ".conv.weight")
	cur := clone(w[:mid*kmax*kmax])
	curK := kmax
	ks := sn.Spec.Kernels
	for i := len(ks) - 1; i > 0 && ks[i] > k; i-- {
		next := ks[i-1]
		m := sn.Tensor(fmt.Sprintf("%s.%dto%d_matrix", prefix, ks[i], next))
		cur = transformKernel(cur, mid, curK, next, m)
		curK = next
	}
	return cur
}

// transformKernel centre-crops each channel's k×k kernel to n×n and multiplies by m
// (out[j] = Σ_i m[j,i]·crop[i], PyTorch's F.linear(crop, m)).
func transformKernel(w []float32, ch, k, n int, m []float32) []float32 {
	off := (k - n) / 2
	nn := n * n
	out := make([]float32, ch*nn)
	crop := make([]float32, nn)
	for c := range ch {
		src := w[c*k*k:]
		for y := range n {
			for x := range n {
				crop[y*n+x] = src[(y+off)*k+x+off]
			}
		}
		dst := out[c*nn:]
		for j := range nn {
			row := m[j*nn:]
			var s float32
			for i := range nn {
				s += row[i] * crop[i]
			}
			dst[j] = s
		}
	}
	return out
}

// Counts are a subnet's multiply-adds and parameters by OFA's counting rule.
type Counts struct {
	MAdds  int64 `json:"madds"`
	Params int64 `json:"params"`
}

// Count returns MAdds (batch 1, conv and linear multiply-adds, no biases, BatchNorm,
// activations, pooling or residual adds) and parameters (weights, biases, BatchNorm
// affine parameters) of the subnet, in int64.
func (n *Subnet) Count() Counts {
	var c Counts
	h := int64(n.Resolution)
	conv := func(l *ConvLayer) {
		h = outSize(h, int64(l.Kernel), int64(l.Stride))
		k := int64(l.Kernel)
		c.MAdds += int64(l.In) * h * h * k * k * int64(l.Out) / int64(l.Groups)
		c.Params += int64(len(l.Weight)) + int64(len(l.Bias))
		if l.BN != nil {
			c.Params += 2 * int64(len(l.BN.Weight))
		}
	}
	conv(&n.Stem)
	for i := range n.Blocks {
		b := &n.Blocks[i]
		if b.Expand != nil {
			conv(b.Expand)
		}
		conv(&b.Depthwise)
		if se := b.SE; se != nil {
			c.MAdds += 2 * int64(se.Channels) * int64(se.Hidden)
			c.Params += int64(len(se.ReduceWeight) + len(se.ReduceBias) + len(se.ExpandWeight) + len(se.ExpandBias))
		}
		conv(&b.Project)
	}
	if n.FinalExpand != nil {
		conv(n.FinalExpand)
	}
	h = 1
	if n.FeatureMix != nil {
		conv(n.FeatureMix)
	}
	c.MAdds += int64(n.Classifier.In) * int64(n.Classifier.Out)
	c.Params += int64(len(n.Classifier.Weight) + len(n.Classifier.Bias))
	return c
}

// outSize is the output size of a convolution with "same"-style padding: ceil(h/stride),
// which both symmetric k/2 padding (odd k) and TensorFlow's SAME give.
func outSize(h, k, stride int64) int64 { return (h + stride - 1) / stride }

// Pads returns the top/left and bottom/right padding for an input of size h.
func Pads(padding string, h, k, stride int) (before, after int) {
	if padding == PadSame {
		out := (h + stride - 1) / stride
		total := max((out-1)*stride+k-h, 0)
		return total / 2, total - total/2
	}
	return k / 2, k / 2
}

func hasSuffix(s, suf string) bool { return strings.HasSuffix(s, suf) }
func isBN(name string) bool        { return strings.Contains(name, ".bn.") }
func sqrt(v float64) float64       { return math.Sqrt(v) }
