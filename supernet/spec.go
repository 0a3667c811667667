package supernet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Act names an activation function as OFA spells it.
type Act string

// Activations a spec may use.
const (
	ActNone   Act = "none"
	ActReLU   Act = "relu"
	ActReLU6  Act = "relu6"
	ActHSwish Act = "h_swish"
)

func (a Act) valid() bool {
	switch a {
	case ActNone, ActReLU, ActReLU6, ActHSwish:
		return true
	}
	return false
}

// Padding rules for convolutions.
const (
	// PadSymmetric pads k/2 on every side (PyTorch, OFA).
	PadSymmetric = "symmetric"
	// PadSame is TensorFlow's SAME: the total padding depends on the input size and the
	// extra pixel goes to the bottom/right. Weights imported from TensorFlow need it.
	PadSame = "same"
)

// Conv describes a fixed convolution layer (the stem).
type Conv struct {
	Out    int `json:"out"`
	Kernel int `json:"kernel"`
	Stride int `json:"stride"`
	Act    Act `json:"act"`
}

// FirstBlock describes the fixed inverted-residual block after the stem (expand ratio 1).
type FirstBlock struct {
	Out    int  `json:"out"`
	Kernel int  `json:"kernel"`
	Stride int  `json:"stride"`
	Act    Act  `json:"act"`
	SE     bool `json:"se"`
}

// Stage is a run of elastic inverted-residual blocks of one width.
type Stage struct {
	Width  int   `json:"width"`
	Stride int   `json:"stride"` // of the first block; the others have stride 1
	Act    Act   `json:"act"`
	SE     bool  `json:"se"`
	Depths []int `json:"depths"` // depth choices, ascending
}

// MaxDepth is the number of blocks the stage holds in the supernet.
func (s Stage) MaxDepth() int { return s.Depths[len(s.Depths)-1] }

// Pointwise describes a 1×1 head convolution.
type Pointwise struct {
	Out int  `json:"out"`
	BN  bool `json:"bn"`
	Act Act  `json:"act"`
}

// Spec describes a MobileNetV3-style weight-sharing supernet: the search space and the
// shapes of every tensor. Spaces differ only in their Spec value.
type Spec struct {
	Name        string  `json:"name"`
	Classes     int     `json:"classes"`
	Resolutions []int   `json:"resolutions"` // ascending
	Kernels     []int   `json:"kernels"`     // ascending; the largest is stored
	Expands     []int   `json:"expands"`     // ascending
	Divisor     int     `json:"divisor"`     // channel rounding (make_divisible)
	SEReduction int     `json:"se_reduction"`
	Padding     string  `json:"padding"`
	BNEps       float64 `json:"bn_eps"`
	BNMomentum  float64 `json:"bn_momentum"`
	Dropout     float64 `json:"dropout"`

	Stem   Conv       `json:"stem"`
	First  FirstBlock `json:"first_block"`
	Stages []Stage    `json:"stages"`
	// FinalExpand runs before global pooling, FeatureMix after it; either may be absent.
	FinalExpand *Pointwise `json:"final_expand,omitempty"`
	FeatureMix  *Pointwise `json:"feature_mix,omitempty"`
}

// MakeDivisible is OFA's rounding of a channel count to a multiple of divisor, never going
// below 90% of v.
func MakeDivisible(v float64, divisor int) int {
	d := float64(divisor)
	nv := math.Max(d, math.Floor((v+d/2)/d)*d)
	if nv < 0.9*v {
		nv += d
	}
	return int(nv)
}

// roundHalfEven is Python 3's round(), which OFA uses for in×expand.
func roundHalfEven(v float64) float64 { return math.RoundToEven(v) }

// MidWidth is the middle (expanded) width of a block with input width in and expand ratio e.
func (s *Spec) MidWidth(in, e int) int {
	return MakeDivisible(roundHalfEven(float64(in)*float64(e)), s.Divisor)
}

// SEWidth is the squeeze-and-excitation hidden width for a middle width mid.
func (s *Spec) SEWidth(mid int) int { return MakeDivisible(float64(mid/s.SEReduction), s.Divisor) }

// NumBlocks is the number of elastic blocks (the length of an arch's ks and e lists).
func (s *Spec) NumBlocks() int {
	n := 0
	for _, st := range s.Stages {
		n += st.MaxDepth()
	}
	return n
}

// BlockStage maps an elastic block index (0-based) to its stage and position in the stage.
func (s *Spec) BlockStage(b int) (stage, pos int) {
	for i, st := range s.Stages {
		if b < st.MaxDepth() {
			return i, b
		}
		b -= st.MaxDepth()
	}
	return -1, -1
}

// StageStart is the elastic block index of the first block of stage i.
func (s *Spec) StageStart(i int) int {
	n := 0
	for _, st := range s.Stages[:i] {
		n += st.MaxDepth()
	}
	return n
}

// BlockIn is the input width of elastic block b (0-based).
func (s *Spec) BlockIn(b int) int {
	st, pos := s.BlockStage(b)
	if pos > 0 {
		return s.Stages[st].Width
	}
	if st == 0 {
		return s.First.Out
	}
	return s.Stages[st-1].Width
}

// FeatureWidth is the width entering the head (the last stage's width).
func (s *Spec) FeatureWidth() int { return s.Stages[len(s.Stages)-1].Width }

// Validate checks that the spec describes a buildable network.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Name == "" {
		bad("name: empty")
	}
	if s.Classes < 1 {
		bad("classes: %d, want ≥ 1", s.Classes)
	}
	checkChoices := func(field string, v []int, pred func(int) bool) {
		if len(v) == 0 {
			bad("%s: no choices", field)
			return
		}
		for i, x := range v {
			if !pred(x) || (i > 0 && x <= v[i-1]) {
				bad("%s: %v must be ascending valid values", field, v)
				return
			}
		}
	}
	checkChoices("resolutions", s.Resolutions, func(r int) bool { return r >= 8 && r <= 4096 })
	checkChoices("kernels", s.Kernels, func(k int) bool { return k >= 1 && k%2 == 1 && k <= 15 })
	checkChoices("expands", s.Expands, func(e int) bool { return e >= 1 && e <= 16 })
	if s.Divisor < 1 {
		bad("divisor: %d, want ≥ 1", s.Divisor)
	}
	if s.SEReduction < 1 {
		bad("se_reduction: %d, want ≥ 1", s.SEReduction)
	}
	if s.Padding != PadSymmetric && s.Padding != PadSame {
		bad("padding: %q, want %q or %q", s.Padding, PadSymmetric, PadSame)
	}
	if !(s.BNEps > 0) || !(s.BNMomentum > 0 && s.BNMomentum <= 1) {
		bad("bn_eps/bn_momentum: %v/%v out of range", s.BNEps, s.BNMomentum)
	}
	if s.Dropout < 0 || s.Dropout >= 1 {
		bad("dropout: %v, want [0,1)", s.Dropout)
	}
	if s.Stem.Out < 1 || s.Stem.Kernel < 1 || s.Stem.Stride < 1 || !s.Stem.Act.valid() {
		bad("stem: invalid %+v", s.Stem)
	}
	if s.First.Out < 1 || s.First.Kernel < 1 || s.First.Kernel%2 == 0 || s.First.Stride < 1 || !s.First.Act.valid() {
		bad("first_block: invalid %+v", s.First)
	}
	if len(s.Stages) == 0 {
		bad("stages: none")
	}
	for i, st := range s.Stages {
		if st.Width < 1 || st.Stride < 1 || !st.Act.valid() {
			bad("stages[%d]: invalid %+v", i, st)
		}
		checkChoices(fmt.Sprintf("stages[%d].depths", i), st.Depths, func(d int) bool { return d >= 1 && d <= 16 })
	}
	for name, p := range map[string]*Pointwise{"final_expand": s.FinalExpand, "feature_mix": s.FeatureMix} {
		if p != nil && (p.Out < 1 || !p.Act.valid()) {
			bad("%s: invalid %+v", name, *p)
		}
	}
	return errors.Join(errs...)
}

// MarshalSpec is the spec's stable JSON form, embedded in native checkpoints.
func (s *Spec) MarshalSpec() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Spec holds only plain values
	}
	return b
}

// ParseSpec decodes and validates a spec.
func ParseSpec(data []byte) (*Spec, error) {
	var s Spec
	if err := strictUnmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("spec %q: %w", s.Name, err)
	}
	return &s, nil
}

func rangeStep(lo, hi, step int) []int {
	var out []int
	for v := lo; v <= hi; v += step {
		out = append(out, v)
	}
	return out
}

// OFAMobileNetV3 is OFA's ofa_mbv3_d234_e346_k357_w<width> space with the given number of
// classes (width 1.0 and 1.2 are released by OFA).
func OFAMobileNetV3(width float64, classes int) *Spec {
	base := []int{16, 16, 24, 40, 80, 112, 160}
	w := make([]int, len(base))
	for i, b := range base {
		w[i] = MakeDivisible(float64(b)*width, 8)
	}
	depths := []int{2, 3, 4}
	return &Spec{
		Name:        fmt.Sprintf("ofa_mbv3_d234_e346_k357_w%.1f", width),
		Classes:     classes,
		Resolutions: rangeStep(128, 224, 4),
		Kernels:     []int{3, 5, 7},
		Expands:     []int{3, 4, 6},
		Divisor:     8,
		SEReduction: 4,
		Padding:     PadSymmetric,
		BNEps:       1e-5,
		BNMomentum:  0.1,
		Stem:        Conv{Out: w[0], Kernel: 3, Stride: 2, Act: ActHSwish},
		First:       FirstBlock{Out: w[1], Kernel: 3, Stride: 1, Act: ActReLU},
		Stages: []Stage{
			{Width: w[2], Stride: 2, Act: ActReLU, Depths: depths},
			{Width: w[3], Stride: 2, Act: ActReLU, SE: true, Depths: depths},
			{Width: w[4], Stride: 2, Act: ActHSwish, Depths: depths},
			{Width: w[5], Stride: 1, Act: ActHSwish, SE: true, Depths: depths},
			{Width: w[6], Stride: 2, Act: ActHSwish, SE: true, Depths: depths},
		},
		FinalExpand: &Pointwise{Out: MakeDivisible(960*width, 8), BN: true, Act: ActHSwish},
		FeatureMix:  &Pointwise{Out: MakeDivisible(1280*width, 8), Act: ActHSwish},
	}
}

// MobileNetV2Space is an elastic space with MobileNetV2's widths and block counts, no SE and
// ReLU6, padded like TensorFlow so that TensorFlow-trained MobileNetV2 weights import as its
// largest subnet.
func MobileNetV2Space(classes int) *Spec {
	return &Spec{
		Name:        "mbv2_d_e346_k357_w1.0",
		Classes:     classes,
		Resolutions: rangeStep(96, 224, 16),
		Kernels:     []int{3, 5, 7},
		Expands:     []int{3, 4, 6},
		Divisor:     8,
		SEReduction: 4,
		Padding:     PadSame,
		BNEps:       1e-3,
		BNMomentum:  0.1,
		Stem:        Conv{Out: 32, Kernel: 3, Stride: 2, Act: ActReLU6},
		First:       FirstBlock{Out: 16, Kernel: 3, Stride: 1, Act: ActReLU6},
		Stages: []Stage{
			{Width: 24, Stride: 2, Act: ActReLU6, Depths: []int{1, 2}},
			{Width: 32, Stride: 2, Act: ActReLU6, Depths: []int{1, 2, 3}},
			{Width: 64, Stride: 2, Act: ActReLU6, Depths: []int{2, 3, 4}},
			{Width: 96, Stride: 1, Act: ActReLU6, Depths: []int{1, 2, 3}},
			{Width: 160, Stride: 2, Act: ActReLU6, Depths: []int{1, 2, 3}},
			{Width: 320, Stride: 1, Act: ActReLU6, Depths: []int{1}},
		},
		FinalExpand: &Pointwise{Out: 1280, BN: true, Act: ActReLU6},
	}
}

// Builtin returns the named built-in spec family with the given number of classes.
func Builtin(name string, classes int) (*Spec, error) {
	for _, s := range builtins(classes) {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unknown spec %q (built in: %v)", name, BuiltinNames())
}

// BuiltinNames lists the built-in spec names.
func BuiltinNames() []string {
	var n []string
	for _, s := range builtins(1) {
		n = append(n, s.Name)
	}
	return n
}

func builtins(classes int) []*Spec {
	return []*Spec{OFAMobileNetV3(1.0, classes), OFAMobileNetV3(1.2, classes), MobileNetV2Space(classes)}
}

// nearestChoice reports whether v is one of the choices.
func contains(choices []int, v int) bool { return slices.Contains(choices, v) }

// BlockGeom is one elastic block's geometry: the single place that derives widths,
// stride and shortcut from the spec, for extraction, key layout, training, counting and import.
type BlockGeom struct {
	Index                  int // elastic block index (0-based); its keys are blocks.<Index+1>.*
	Stage                  Stage
	In, Mid, MaxMid, Out   int
	Kernel, Expand, Stride int
	Residual               bool
}

func (s *Spec) blockGeom(b, kernel, expand int) BlockGeom {
	st, pos := s.BlockStage(b)
	stage := s.Stages[st]
	in := s.BlockIn(b)
	g := BlockGeom{Index: b, Stage: stage, In: in, Out: stage.Width, Kernel: kernel, Expand: expand, Stride: 1,
		Mid: s.MidWidth(in, expand), MaxMid: s.MidWidth(in, s.Expands[len(s.Expands)-1])}
	if pos == 0 {
		g.Stride = stage.Stride
	}
	g.Residual = g.Stride == 1 && g.In == g.Out
	return g
}

// ActiveBlocks lists the blocks a runs (a must be valid), in order.
func (s *Spec) ActiveBlocks(a Arch) []BlockGeom {
	var out []BlockGeom
	for b := range s.NumBlocks() {
		if s.Active(a, b) {
			out = append(out, s.blockGeom(b, a.KS[b], a.E[b]))
		}
	}
	return out
}

// AllBlocks lists every elastic block at its largest kernel and expand ratio: the tensors
// the supernet stores.
func (s *Spec) AllBlocks() []BlockGeom {
	out := make([]BlockGeom, s.NumBlocks())
	for b := range out {
		out[b] = s.blockGeom(b, s.Kernels[len(s.Kernels)-1], s.Expands[len(s.Expands)-1])
	}
	return out
}
