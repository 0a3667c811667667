package specializer

import (
	"fmt"

	"github.com/natgw/natgw/supernet"
)

// Layer kinds listed by Layers.
const (
	LayerConv      = "conv"      // the stem's full convolution
	LayerPointwise = "pointwise" // 1×1 convolutions: expand, project, final expand, feature mix
	LayerDepthwise = "depthwise"
	LayerSE        = "se"
	LayerLinear    = "linear"
)

// Layer is one layer of a subnet as the cost models see it.
type Layer struct {
	Kind                    string
	In, Out, Kernel, Stride int
	InSize, OutSize         int // spatial size (height = width) of input and output
	MAdds, Params           int64
}

// Layers walks the subnet that arch selects without extracting any weights, in execution
// order. Summing MAdds and Params gives exactly what supernet.Subnet.Count reports (a
// test checks this), at a tiny fraction of Extract's cost, so the search can cost
// thousands of candidates per second.
func Layers(spec *supernet.Spec, arch supernet.Arch) ([]Layer, error) {
	a, err := spec.Canonical(arch)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	var out []Layer
	h := a.R
	conv := func(kind string, in, o, k, stride, groups int, bn bool) {
		oh := (h + stride - 1) / stride
		l := Layer{Kind: kind, In: in, Out: o, Kernel: k, Stride: stride, InSize: h, OutSize: oh}
		l.MAdds = int64(in) * int64(oh) * int64(oh) * int64(k) * int64(k) * int64(o) / int64(groups)
		l.Params = int64(o) * int64(in/groups) * int64(k) * int64(k)
		if bn {
			l.Params += 2 * int64(o)
		}
		out = append(out, l)
		h = oh
	}
	se := func(ch int) {
		hid := spec.SEWidth(ch)
		out = append(out, Layer{Kind: LayerSE, In: ch, Out: ch, Kernel: 1, Stride: 1, InSize: h, OutSize: h,
			MAdds: 2 * int64(ch) * int64(hid), Params: 2*int64(ch)*int64(hid) + int64(hid) + int64(ch)})
	}
	conv(LayerConv, 3, spec.Stem.Out, spec.Stem.Kernel, spec.Stem.Stride, 1, true)
	in := spec.Stem.Out
	conv(LayerDepthwise, in, in, spec.First.Kernel, spec.First.Stride, in, true)
	if spec.First.SE {
		se(in)
	}
	conv(LayerPointwise, in, spec.First.Out, 1, 1, 1, true)
	for _, g := range spec.ActiveBlocks(a) {
		stage, bin, mid, stride := g.Stage, g.In, g.Mid, g.Stride
		conv(LayerPointwise, bin, mid, 1, 1, 1, true)
		conv(LayerDepthwise, mid, mid, g.Kernel, stride, mid, true)
		if stage.SE {
			se(mid)
		}
		conv(LayerPointwise, mid, stage.Width, 1, 1, 1, true)
	}
	feat := spec.FeatureWidth()
	if fe := spec.FinalExpand; fe != nil {
		conv(LayerPointwise, feat, fe.Out, 1, 1, 1, fe.BN)
		feat = fe.Out
	}
	h = 1 // global pooling
	if fm := spec.FeatureMix; fm != nil {
		conv(LayerPointwise, feat, fm.Out, 1, 1, 1, fm.BN)
		feat = fm.Out
	}
	out = append(out, Layer{Kind: LayerLinear, In: feat, Out: spec.Classes, Kernel: 1, Stride: 1, InSize: 1, OutSize: 1,
		MAdds: int64(feat) * int64(spec.Classes), Params: int64(feat)*int64(spec.Classes) + int64(spec.Classes)})
	return out, nil
}

// CountArch is supernet.Subnet.Count computed from the spec alone.
func CountArch(spec *supernet.Spec, arch supernet.Arch) (supernet.Counts, error) {
	ls, err := Layers(spec, arch)
	if err != nil {
		return supernet.Counts{}, err
	}
	var c supernet.Counts
	for _, l := range ls {
		c.MAdds += l.MAdds
		c.Params += l.Params
	}
	return c, nil
}
