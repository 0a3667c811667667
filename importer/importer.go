package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/tflite"
)

// Options configures Import.
type Options struct {
	// Spec is the target space; nil means supernet.MobileNetV2Space with the model's class
	// count (1001, or 1000 with DropBackground).
	Spec *supernet.Spec
	// DropBackground removes logit 0 ("background" in TensorFlow's 1001-way heads), leaving
	// the 1000 ILSVRC classes.
	DropBackground bool
	// Calib yields calibration batches ([n,3,h,w], preprocessed with Preprocess) for the
	// BatchNorm statistics; required.
	Calib supernet.Batches
	// Meta is copied into the supernet's metadata.
	Meta map[string]string
}

// Report describes what Import matched and measured.
type Report struct {
	Convs        int `json:"convs"`        // convolution operators mapped (incl. the logits)
	Blocks       int `json:"blocks"`       // inverted-residual blocks after the first one
	Residuals    int `json:"residuals"`    // residual ADDs checked
	Kernel       int `json:"kernel"`       // the TensorFlow depthwise kernel size of the blocks
	Classes      int `json:"classes"`      // classifier outputs kept
	CalibImages  int `json:"calib_images"` // images the statistics were measured on
	CalibHeight  int `json:"calib_height"`
	CalibWidth   int `json:"calib_width"`
	DeadChannels int `json:"dead_channels"` // conv outputs with zero variance on the calibration set
	// Permuted counts the blocks whose middle channels changed order.
	Permuted int `json:"permuted"`
}

// conv is one convolution of the TensorFlow graph mapped onto a supernet layer.
type conv struct {
	op         int
	prefix     string // supernet key prefix of the conv ("" for the classifier)
	bn         string // supernet BatchNorm prefix
	depthwise  bool
	in, out    int
	kernel     int
	stride     int
	act        tflite.Activation
	w, b       []float32 // OIHW weight and bias, dequantized
	mean, var_ []float64
}

// SourceArch is the arch that reproduces the imported network with its own kernel size k:
// every block at kernel k and the largest expand ratio, full depth, resolution r.
func SourceArch(s *supernet.Spec, k, r int) supernet.Arch {
	return s.Uniform(k, s.Expands[len(s.Expands)-1], 1<<30, r)
}

// Import maps the model's main graph onto the spec's largest subnet and returns the
// supernet. The graph must be MobileNetV2 as TensorFlow exports it: stem conv, a depthwise
// + project first block, expand/depthwise/project blocks (ADD where stride 1 keeps the
// width), a 1×1 conv, global average pooling and a 1×1 logits conv, all with SAME padding.
func Import(ctx context.Context, m *tflite.Model, opt Options) (*supernet.Supernet, *Report, error) {
	if opt.Calib == nil {
		return nil, nil, errors.New("import: no calibration images (Options.Calib)")
	}
	sg, err := m.Main()
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	logits, err := logitsClasses(sg)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	classes := logits
	if opt.DropBackground {
		classes--
	}
	spec := opt.Spec
	if spec == nil {
		spec = supernet.MobileNetV2Space(classes)
	}
	if err := spec.Validate(); err != nil {
		return nil, nil, fmt.Errorf("import: spec: %w", err)
	}
	if spec.Classes != classes {
		return nil, nil, fmt.Errorf("import: spec %s has %d classes, the model %d", spec.Name, spec.Classes, classes)
	}
	rep := &Report{Classes: classes}
	convs, err := mapGraph(sg, spec, logits, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	for _, c := range convs {
		if err := c.load(sg); err != nil {
			return nil, nil, fmt.Errorf("import: op %d (%s): %w", c.op, c.prefix, err)
		}
	}
	if err := calibrate(ctx, m, convs, opt.Calib, rep); err != nil {
		return nil, nil, fmt.Errorf("import: calibrate: %w", err)
	}
	rep.Permuted = sortMiddle(convs)
	params, err := buildParams(spec, convs, opt.DropBackground, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	meta := map[string]string{"source": "tflite", "import": reportJSON(rep)}
	for k, v := range opt.Meta {
		meta[k] = v
	}
	sn, err := supernet.New(spec, params, meta)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	return sn, rep, nil
}

func reportJSON(r *Report) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// logitsClasses is the output width of the last convolution.
func logitsClasses(sg *tflite.Subgraph) (int, error) {
	for i := len(sg.Operators) - 1; i >= 0; i-- {
		op := sg.Operators[i]
		if op.Opcode == tflite.OpConv2D && len(op.Inputs) > 1 {
			sh := sg.Tensors[op.Inputs[1]].Shape
			if len(sh) != 4 || sh[0] < 2 {
				return 0, fmt.Errorf("logits filter shape %v", sh)
			}
			return sh[0], nil
		}
	}
	return 0, errors.New("graph has no CONV_2D")
}

// mapGraph lists the graph's convolutions against the spec's layers, checking shapes,
// strides, activations, padding and the connections between them.
func mapGraph(sg *tflite.Subgraph, spec *supernet.Spec, logits int, rep *Report) ([]*conv, error) {
	var ops []int
	producer := map[int]int{}
	for i, op := range sg.Operators {
		for _, t := range op.Outputs {
			producer[t] = i
		}
		if op.Opcode == tflite.OpConv2D || op.Opcode == tflite.OpDepthwiseConv2D {
			ops = append(ops, i)
		}
	}
	if spec.FeatureMix != nil || spec.FinalExpand == nil || !spec.FinalExpand.BN {
		return nil, fmt.Errorf("spec %s: need a final expand with BatchNorm and no feature mix", spec.Name)
	}
	for _, st := range spec.Stages {
		if st.SE {
			return nil, fmt.Errorf("spec %s: squeeze-and-excitation has no TensorFlow counterpart here", spec.Name)
		}
	}
	want := 3 + 3*spec.NumBlocks() + 2
	if len(ops) != want {
		return nil, fmt.Errorf("graph has %d convolutions, spec %s needs %d", len(ops), spec.Name, want)
	}
	relu6 := func(a supernet.Act) (tflite.Activation, error) {
		switch a {
		case supernet.ActReLU6:
			return tflite.ActReLU6, nil
		case supernet.ActReLU:
			return tflite.ActReLU, nil
		case supernet.ActNone:
			return tflite.ActNone, nil
		}
		return 0, fmt.Errorf("activation %s has no TFLite fused counterpart", a)
	}
	var convs []*conv
	var errs []error
	add := func(prefix, bn string, dw bool, in, out, k, stride int, a supernet.Act) *conv {
		ta, err := relu6(a)
		errs = append(errs, err)
		c := &conv{op: ops[len(convs)], prefix: prefix, bn: bn, depthwise: dw, in: in, out: out, kernel: k, stride: stride, act: ta}
		convs = append(convs, c)
		return c
	}
	add("first_conv.conv", "first_conv.bn", false, 3, spec.Stem.Out, spec.Stem.Kernel, spec.Stem.Stride, spec.Stem.Act)
	c0 := spec.Stem.Out
	add("blocks.0.conv.depth_conv.conv", "blocks.0.conv.depth_conv.bn", true, c0, c0, spec.First.Kernel, spec.First.Stride, spec.First.Act)
	add("blocks.0.conv.point_linear.conv", "blocks.0.conv.point_linear.bn", false, c0, spec.First.Out, 1, 1, supernet.ActNone)
	// The blocks' TensorFlow kernel is read from the graph and must be one of the spec's.
	k := 0
	if op := sg.Operators[ops[4]]; len(op.Inputs) > 1 {
		if sh := sg.Tensors[op.Inputs[1]].Shape; len(sh) == 4 {
			k = sh[1]
		}
	}
	if !slices.Contains(spec.Kernels, k) {
		return nil, fmt.Errorf("block depthwise kernel %d not among the spec's %v", k, spec.Kernels)
	}
	rep.Kernel = k
	for _, g := range spec.AllBlocks() {
		b, stage, in, out, mid, stride := g.Index, g.Stage, g.In, g.Out, g.Mid, g.Stride
		p := fmt.Sprintf("blocks.%d.conv", b+1)
		add(p+".inverted_bottleneck.conv.conv", p+".inverted_bottleneck.bn.bn", false, in, mid, 1, 1, stage.Act)
		add(p+".depth_conv.conv.conv", p+".depth_conv.bn.bn", true, mid, mid, k, stride, stage.Act)
		add(p+".point_linear.conv.conv", p+".point_linear.bn.bn", false, mid, out, 1, 1, supernet.ActNone)
	}
	fe := spec.FinalExpand
	add("final_expand_layer.conv", "final_expand_layer.bn", false, spec.FeatureWidth(), fe.Out, 1, 1, fe.Act)
	add("", "", false, fe.Out, logits, 1, 1, supernet.ActNone)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	for i, c := range convs {
		op := sg.Operators[c.op]
		if err := c.check(sg, op); err != nil {
			return nil, fmt.Errorf("op %d (%s): %w", c.op, c.name(), err)
		}
		if i == 0 {
			if len(sg.Inputs) != 1 || op.Inputs[0] != sg.Inputs[0] {
				return nil, fmt.Errorf("op %d: the stem does not read the graph input", c.op)
			}
			continue
		}
		prevOut := sg.Operators[convs[i-1].op].Outputs[0]
		src, ok := producer[op.Inputs[0]]
		if !ok {
			return nil, fmt.Errorf("op %d (%s): input is not computed by the graph", c.op, c.name())
		}
		switch {
		case i == len(convs)-1: // logits after global average pooling
			pool := sg.Operators[src]
			if pool.Opcode != tflite.OpAveragePool2D || pool.Inputs[0] != prevOut {
				return nil, fmt.Errorf("op %d (logits): input is not the average pool of the last conv", c.op)
			}
		case src == convs[i-1].op:
		case sg.Operators[src].Opcode == tflite.OpAdd && slices.Contains(sg.Operators[src].Inputs, prevOut):
			// A residual ADD: it must close a block whose input and output widths agree at stride 1.
			blockStart := convs[i-3]
			if !isResidualBlock(spec, i-3, convs) || !slices.Contains(sg.Operators[src].Inputs, sg.Operators[blockStart.op].Inputs[0]) {
				return nil, fmt.Errorf("op %d (%s): unexpected ADD before it", c.op, c.name())
			}
			if a := sg.Operators[src].Options.Activation; a != tflite.ActNone {
				return nil, fmt.Errorf("op %d: residual ADD with activation %v", src, a)
			}
			rep.Residuals++
		default:
			return nil, fmt.Errorf("op %d (%s): input comes from op %d (%v), not from the previous conv", c.op, c.name(), src, sg.Operators[src].Opcode)
		}
		// A residual block must be followed by its ADD.
		if i >= 6 && (i-3)%3 == 0 && i < len(convs)-1 && isResidualBlock(spec, i-3, convs) && src == convs[i-1].op {
			return nil, fmt.Errorf("op %d (%s): block ending at op %d has no residual ADD", c.op, c.name(), convs[i-1].op)
		}
	}
	rep.Convs, rep.Blocks = len(convs), spec.NumBlocks()
	return convs, nil
}

// isResidualBlock reports whether the elastic block whose expand conv is convs[i] has a
// residual connection in the spec (stride 1, same width in and out).
func isResidualBlock(spec *supernet.Spec, i int, convs []*conv) bool {
	if i < 3 || (i-3)%3 != 0 || i+2 >= len(convs)-2 {
		return false
	}
	return convs[i+1].stride == 1 && convs[i].in == convs[i+2].out
}

func (c *conv) name() string {
	if c.prefix == "" {
		return "classifier"
	}
	return c.prefix
}

// check compares the operator with the expected layer.
func (c *conv) check(sg *tflite.Subgraph, op tflite.Operator) error {
	wantOp := tflite.OpConv2D
	if c.depthwise {
		wantOp = tflite.OpDepthwiseConv2D
	}
	if op.Opcode != wantOp || len(op.Inputs) < 3 || op.Inputs[2] < 0 || len(op.Outputs) != 1 {
		return fmt.Errorf("%v with %d inputs, want %v with weights and bias", op.Opcode, len(op.Inputs), wantOp)
	}
	o := op.Options
	if o.Padding != tflite.PaddingSame {
		return fmt.Errorf("padding %v, want SAME", o.Padding)
	}
	if o.StrideW != c.stride || o.StrideH != c.stride || max(o.DilationW, 1) != 1 || max(o.DilationH, 1) != 1 {
		return fmt.Errorf("stride %d×%d dilation %d×%d, want stride %d", o.StrideW, o.StrideH, o.DilationW, o.DilationH, c.stride)
	}
	if o.Activation != c.act {
		return fmt.Errorf("activation %v, want %v", o.Activation, c.act)
	}
	sh := sg.Tensors[op.Inputs[1]].Shape
	want := []int{c.out, c.kernel, c.kernel, c.in}
	if c.depthwise {
		want = []int{1, c.kernel, c.kernel, c.out}
		if max(o.DepthMultiplier, 1) != 1 {
			return fmt.Errorf("depth multiplier %d", o.DepthMultiplier)
		}
	}
	if !slices.Equal(sh, want) {
		return fmt.Errorf("filter shape %v, want %v", sh, want)
	}
	if bs := sg.Tensors[op.Inputs[2]].Shape; !slices.Equal(bs, []int{c.out}) {
		return fmt.Errorf("bias shape %v, want [%d]", bs, c.out)
	}
	return nil
}

// load dequantizes the weights into OIHW and the bias.
func (c *conv) load(sg *tflite.Subgraph) error {
	op := sg.Operators[c.op]
	ft := &sg.Tensors[op.Inputs[1]]
	w, err := ft.Dequantize()
	if err != nil {
		return err
	}
	if c.w, _, err = tflite.FilterOIHW(w, ft.Shape, c.depthwise); err != nil {
		return err
	}
	c.b, err = sg.Tensors[op.Inputs[2]].Dequantize()
	return err
}

// calibrate runs the float graph on the calibration batches and records, per conv output
// channel, the mean and the (biased) variance of the bias-free output over every pixel of
// every image.
func calibrate(ctx context.Context, m *tflite.Model, convs []*conv, batches supernet.Batches, rep *Report) error {
	run, err := tflite.NewRunner(m)
	if err != nil {
		return err
	}
	byOp := map[int]*conv{}
	count := map[int]float64{}
	for _, c := range convs[:len(convs)-1] { // the classifier has no BatchNorm
		byOp[c.op] = c
		c.mean, c.var_ = make([]float64, c.out), make([]float64, c.out) // var_ holds M2 until the end
	}
	obs := func(op int, y []float32, n, ch, h, w int) {
		c, ok := byOp[op]
		if !ok {
			return
		}
		hw := h * w
		nb := float64(n * hw)
		na := count[op]
		for k := range ch {
			mb, vb := supernet.ChannelMoments(y, n, ch, hw, k)
			m2 := vb * nb
			// Chan et al.'s pairwise update keeps the variance exact across batches.
			delta := mb - c.mean[k]
			tot := na + nb
			c.mean[k] += delta * nb / tot
			c.var_[k] += m2 + delta*delta*na*nb/tot
		}
		count[op] = na + nb
	}
	err = batches(ctx, func(x []float32, n, h, w int) error {
		if rep.CalibImages == 0 {
			rep.CalibHeight, rep.CalibWidth = h, w
		}
		if _, err := run.Run(ctx, x, n, h, w, nil, obs); err != nil {
			return err
		}
		rep.CalibImages += n
		return nil
	})
	if err != nil {
		return err
	}
	if rep.CalibImages == 0 {
		return errors.New("no calibration images")
	}
	for _, c := range byOp {
		for k := range c.var_ {
			c.var_[k] /= count[c.op]
			if c.var_[k] == 0 {
				rep.DeadChannels++
			}
		}
	}
	return nil
}

// sortMiddle orders each block's middle channels by the L1 norm of the project conv's
// input columns, largest first, as OFA's re_organize_middle_weights does, so that smaller
// expand ratios keep the most important channels. The full network computes the same
// function. It returns how many blocks changed order.
func sortMiddle(convs []*conv) int {
	changed := 0
	for i := 3; i+2 < len(convs)-2; i += 3 {
		exp, dw, proj := convs[i], convs[i+1], convs[i+2]
		mid := exp.out
		imp := make([]float64, mid)
		for o := range proj.out {
			for j := range mid {
				imp[j] += math.Abs(float64(proj.w[o*mid+j]))
			}
		}
		order := make([]int, mid)
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case imp[a] > imp[b]:
				return -1
			case imp[a] < imp[b]:
				return 1
			}
			return 0
		})
		identity := true
		for j, o := range order {
			identity = identity && j == o
		}
		if identity {
			continue
		}
		changed++
		exp.permuteOut(order)
		dw.permuteOut(order)
		cols := make([]float32, len(proj.w))
		for o := range proj.out {
			for j, src := range order {
				cols[o*mid+j] = proj.w[o*mid+src]
			}
		}
		proj.w = cols
	}
	return changed
}

// permuteOut reorders output channels (rows of the weight, bias and statistics).
func (c *conv) permuteOut(order []int) {
	per := len(c.w) / c.out
	w := make([]float32, len(c.w))
	b := make([]float32, c.out)
	mean, vr := make([]float64, c.out), make([]float64, c.out)
	for j, src := range order {
		copy(w[j*per:(j+1)*per], c.w[src*per:(src+1)*per])
		b[j], mean[j], vr[j] = c.b[src], c.mean[src], c.var_[src]
	}
	c.w, c.b, c.mean, c.var_ = w, b, mean, vr
}

// buildParams lays the converted layers out under the spec's keys.
func buildParams(spec *supernet.Spec, convs []*conv, dropBackground bool, rep *Report) ([]supernet.Param, error) {
	shapes := map[string][]int{}
	for _, k := range spec.Keys() {
		shapes[k.Name] = k.Shape
	}
	var params []supernet.Param
	put := func(name string, data []float32) error {
		shape, ok := shapes[name]
		if !ok {
			return fmt.Errorf("key %s not in spec %s", name, spec.Name)
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if n != len(data) {
			return fmt.Errorf("key %s: %d values for shape %v", name, len(data), shape)
		}
		params = append(params, supernet.Param{Name: name, Shape: shape, Data: data})
		delete(shapes, name)
		return nil
	}
	var errs []error
	eps := spec.BNEps
	kmax := spec.Kernels[len(spec.Kernels)-1]
	for _, c := range convs[:len(convs)-1] {
		w := c.w
		if c.depthwise && c.prefix != "blocks.0.conv.depth_conv.conv" && c.kernel != kmax {
			w = centre(c.w, c.out, c.kernel, kmax)
		}
		errs = append(errs, put(c.prefix+".weight", w))
		// BN(Wx) = γ(Wx − μ)/√(σ²+ε) + β equals the folded Wx + b for γ = √(σ²+ε), β = b + μ.
		g, beta, mean, vr := make([]float32, c.out), make([]float32, c.out), make([]float32, c.out), make([]float32, c.out)
		for k := range c.out {
			g[k] = float32(math.Sqrt(c.var_[k] + eps))
			beta[k] = float32(float64(c.b[k]) + c.mean[k])
			mean[k], vr[k] = float32(c.mean[k]), float32(c.var_[k])
		}
		errs = append(errs, put(c.bn+".weight", g), put(c.bn+".bias", beta), put(c.bn+".running_mean", mean), put(c.bn+".running_var", vr))
	}
	logits := convs[len(convs)-1]
	w, b := logits.w, logits.b
	if dropBackground {
		w, b = w[logits.in:], b[1:]
	}
	errs = append(errs, put("classifier.linear.weight", w), put("classifier.linear.bias", b))
	// Kernel-transform matrices are identity, so a centred kernel stays exact at every size.
	for name, shape := range shapes {
		if len(shape) == 2 && shape[0] == shape[1] && hasSuffix(name, "_matrix") {
			id := make([]float32, shape[0]*shape[1])
			for i := range shape[0] {
				id[i*shape[0]+i] = 1
			}
			errs = append(errs, put(name, id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(shapes) > 0 {
		var missing []string
		for k := range shapes {
			missing = append(missing, k)
		}
		slices.Sort(missing)
		return nil, fmt.Errorf("spec %s keys left without weights: %v", spec.Name, missing)
	}
	return params, nil
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// centre places each channel's k×k kernel in the middle of a zero kmax×kmax kernel.
func centre(w []float32, ch, k, kmax int) []float32 {
	off := (kmax - k) / 2
	out := make([]float32, ch*kmax*kmax)
	for c := range ch {
		for y := range k {
			copy(out[(c*kmax+y+off)*kmax+off:], w[(c*k+y)*k:(c*k+y+1)*k])
		}
	}
	return out
}
