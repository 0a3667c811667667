package tflite

import (
	"context"
	"fmt"
	"math"

	"github.com/natgw/natgw/internal/cpu"
)

// Observer sees each CONV_2D / DEPTHWISE_CONV_2D output before its bias and activation
// (y is [n, c, h, w]); op is the operator index in the main subgraph. It must not keep y.
type Observer func(op int, y []float32, n, c, h, w int)

// Runner executes a model's main subgraph in float32 on dequantized weights: activations
// are not re-quantized, so it computes the real-valued function the quantized model
// approximates. It supports the operators of MobileNet classifiers: CONV_2D,
// DEPTHWISE_CONV_2D, ADD, global AVERAGE_POOL_2D, RESHAPE of a 1×1 map, SOFTMAX, and
// QUANTIZE/DEQUANTIZE as identities.
type Runner struct {
	sg       *Subgraph
	consts   map[int][]float32 // conv filters in OIHW and biases, by tensor index
	lastUse  []int             // per tensor: the last operator reading it
	inChans  int
	inTensor int
}

// NewRunner checks that every operator is supported and dequantizes the weights once.
func NewRunner(m *Model) (*Runner, error) {
	sg, err := m.Main()
	if err != nil {
		return nil, err
	}
	if len(sg.Inputs) != 1 {
		return nil, fmt.Errorf("tflite: runner: %d graph inputs, want 1", len(sg.Inputs))
	}
	r := &Runner{sg: sg, consts: map[int][]float32{}, lastUse: make([]int, len(sg.Tensors)), inTensor: sg.Inputs[0]}
	in := sg.Tensors[r.inTensor]
	if len(in.Shape) != 4 || in.Shape[3] < 1 {
		return nil, fmt.Errorf("tflite: runner: input shape %v, want NHWC", in.Shape)
	}
	r.inChans = in.Shape[3]
	for i := range r.lastUse {
		r.lastUse[i] = -1
	}
	for i, op := range sg.Operators {
		if err := r.prepare(i, op); err != nil {
			return nil, fmt.Errorf("tflite: runner: operator %d (%v): %w", i, op.Opcode, err)
		}
		for _, t := range op.Inputs {
			if t >= 0 {
				r.lastUse[t] = i
			}
		}
	}
	for _, t := range sg.Outputs {
		r.lastUse[t] = len(sg.Operators)
	}
	return r, nil
}

func (r *Runner) prepare(i int, op Operator) error {
	switch op.Opcode {
	case OpConv2D, OpDepthwiseConv2D:
		if len(op.Inputs) < 2 || len(op.Outputs) != 1 {
			return fmt.Errorf("%d inputs, %d outputs", len(op.Inputs), len(op.Outputs))
		}
		o := op.Options
		if o.StrideW < 1 || o.StrideH < 1 || max(o.DilationW, 1) != 1 || max(o.DilationH, 1) != 1 {
			return fmt.Errorf("strides %d×%d, dilation %d×%d unsupported", o.StrideW, o.StrideH, o.DilationW, o.DilationH)
		}
		ft := &r.sg.Tensors[op.Inputs[1]]
		w, err := ft.Dequantize()
		if err != nil {
			return err
		}
		w, shape, err := FilterOIHW(w, ft.Shape, op.Opcode == OpDepthwiseConv2D)
		if err != nil {
			return err
		}
		if shape[2] != shape[3] || o.StrideW != o.StrideH {
			return fmt.Errorf("non-square kernel %v or stride %d×%d", shape, o.StrideW, o.StrideH)
		}
		r.consts[op.Inputs[1]] = w
		if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
			bt := &r.sg.Tensors[op.Inputs[2]]
			b, err := bt.Dequantize()
			if err != nil {
				return err
			}
			if len(b) != shape[0] {
				return fmt.Errorf("bias has %d values for %d outputs", len(b), shape[0])
			}
			r.consts[op.Inputs[2]] = b
		}
		return checkAct(o.Activation)
	case OpAdd:
		if len(op.Inputs) != 2 || len(op.Outputs) != 1 {
			return fmt.Errorf("%d inputs, %d outputs", len(op.Inputs), len(op.Outputs))
		}
		return checkAct(op.Options.Activation)
	case OpAveragePool2D, OpReshape, OpSoftmax, OpQuantize, OpDequantize:
		if len(op.Inputs) < 1 || op.Inputs[0] < 0 || len(op.Outputs) != 1 {
			return fmt.Errorf("%d inputs, %d outputs", len(op.Inputs), len(op.Outputs))
		}
		return checkAct(op.Options.Activation)
	}
	return fmt.Errorf("operator not supported by the float runner")
}

func checkAct(a Activation) error {
	switch a {
	case ActNone, ActReLU, ActReLU6, ActReLUN1To1, ActTanh:
		return nil
	}
	return fmt.Errorf("activation %v not supported", a)
}

// act is an NCHW activation tensor.
type act struct {
	data       []float32
	n, c, h, w int
}

// Run feeds x ([n, C, h, w] NCHW float32, in real units, i.e. already mapped through the
// input tensor's quantization) and returns the values of the tensors in want, each NCHW
// (a rank-2 [n, c] tensor is [n, c, 1, 1]). obs, if not nil, sees every convolution's
// output before its bias.
func (r *Runner) Run(ctx context.Context, x []float32, n, h, w int, want []int, obs Observer) ([][]float32, error) {
	if n < 1 || h < 1 || w < 1 || len(x) != n*r.inChans*h*w {
		return nil, fmt.Errorf("tflite: run: %d input values for [%d,%d,%d,%d]", len(x), n, r.inChans, h, w)
	}
	for _, t := range want {
		if t < 0 || t >= len(r.sg.Tensors) {
			return nil, fmt.Errorf("tflite: run: tensor %d out of range", t)
		}
	}
	keep := map[int]bool{}
	for _, t := range want {
		keep[t] = true
	}
	vals := map[int]act{r.inTensor: {data: x, n: n, c: r.inChans, h: h, w: w}}
	for i, op := range r.sg.Operators {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, ok := vals[op.Inputs[0]]
		if !ok {
			return nil, fmt.Errorf("tflite: run: operator %d (%v): input tensor %d not computed", i, op.Opcode, op.Inputs[0])
		}
		out, err := r.exec(i, op, in, vals, obs)
		if err != nil {
			return nil, fmt.Errorf("tflite: run: operator %d (%v): %w", i, op.Opcode, err)
		}
		vals[op.Outputs[0]] = out
		for _, t := range op.Inputs {
			if t >= 0 && r.lastUse[t] == i && !keep[t] && t != r.inTensor {
				delete(vals, t) // free activations nobody reads again
			}
		}
	}
	res := make([][]float32, len(want))
	for k, t := range want {
		v, ok := vals[t]
		if !ok {
			return nil, fmt.Errorf("tflite: run: tensor %d (%s) is not an activation", t, r.sg.Tensors[t].Name)
		}
		res[k] = v.data
	}
	return res, nil
}

// samePads is TensorFlow SAME padding: output ceil(in/stride), extra pixel after.
func samePads(in, k, stride int) (before, after int) {
	out := (in + stride - 1) / stride
	total := max((out-1)*stride+k-in, 0)
	return total / 2, total - total/2
}

func (r *Runner) exec(i int, op Operator, in act, vals map[int]act, obs Observer) (act, error) {
	o := op.Options
	switch op.Opcode {
	case OpConv2D, OpDepthwiseConv2D:
		ft := r.sg.Tensors[op.Inputs[1]]
		wt := r.consts[op.Inputs[1]]
		var k, kh, groups int
		if op.Opcode == OpDepthwiseConv2D {
			k, kh, groups = ft.Shape[3], ft.Shape[1], in.c
			if k != in.c*max(o.DepthMultiplier, 1) {
				return act{}, fmt.Errorf("depthwise filter has %d channels for %d inputs × %d", k, in.c, o.DepthMultiplier)
			}
		} else {
			k, kh, groups = ft.Shape[0], ft.Shape[1], 1
			if ft.Shape[3] != in.c {
				return act{}, fmt.Errorf("filter wants %d input channels, got %d", ft.Shape[3], in.c)
			}
		}
		g := cpu.Conv{N: in.n, C: in.c, H: in.h, W: in.w, K: k, KH: kh, KW: kh,
			StrideH: o.StrideH, StrideW: o.StrideW, Groups: groups}
		if o.Padding == PaddingSame {
			g.PadTop, g.PadBottom = samePads(in.h, kh, o.StrideH)
			g.PadLeft, g.PadRight = samePads(in.w, kh, o.StrideW)
		} else if o.Padding != PaddingValid {
			return act{}, fmt.Errorf("padding %v", o.Padding)
		}
		if err := g.Check(); err != nil {
			return act{}, err
		}
		out := act{n: in.n, c: k, h: g.OutH(), w: g.OutW()}
		out.data = make([]float32, out.n*out.c*out.h*out.w)
		var bias []float32
		if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
			bias = r.consts[op.Inputs[2]]
		}
		if obs == nil {
			cpu.ConvForward(g, in.data, wt, bias, cpuAct(o.Activation), out.data)
		} else {
			cpu.ConvForward(g, in.data, wt, nil, cpu.ActNone, out.data)
			obs(i, out.data, out.n, out.c, out.h, out.w)
			if bias != nil {
				ones := make([]float32, k)
				for j := range ones {
					ones[j] = 1
				}
				cpu.ChannelAffine(out.n, out.c, out.h*out.w, out.data, ones, bias)
			}
			cpu.Apply(cpuAct(o.Activation), out.data)
		}
		applyExtraAct(o.Activation, out.data)
		return out, nil
	case OpAdd:
		b, ok := vals[op.Inputs[1]]
		if !ok || b.n != in.n || b.c != in.c || b.h != in.h || b.w != in.w {
			return act{}, fmt.Errorf("operands differ in shape (broadcasting unsupported)")
		}
		out := in
		out.data = make([]float32, len(in.data))
		copy(out.data, in.data)
		cpu.Add(out.data, b.data)
		cpu.Apply(cpuAct(o.Activation), out.data)
		applyExtraAct(o.Activation, out.data)
		return out, nil
	case OpAveragePool2D:
		// A pool covering its whole declared input was global in the exported graph; it stays
		// global when the runner is fed another resolution.
		decl := r.sg.Tensors[op.Inputs[0]].Shape
		declared := len(decl) == 4 && decl[1] == o.FilterH && decl[2] == o.FilterW
		if !declared && (o.FilterH != in.h || o.FilterW != in.w) {
			return act{}, fmt.Errorf("only global pooling is supported: filter %d×%d on a %d×%d map", o.FilterH, o.FilterW, in.h, in.w)
		}
		out := act{n: in.n, c: in.c, h: 1, w: 1, data: make([]float32, in.n*in.c)}
		cpu.GlobalAvgPool(in.n, in.c, in.h*in.w, in.data, out.data)
		cpu.Apply(cpuAct(o.Activation), out.data)
		applyExtraAct(o.Activation, out.data)
		return out, nil
	case OpReshape:
		if in.h*in.w != 1 {
			return act{}, fmt.Errorf("reshape of a %d×%d map is not supported", in.h, in.w)
		}
		return in, nil
	case OpSoftmax:
		if in.h*in.w != 1 {
			return act{}, fmt.Errorf("softmax over a %d×%d map is not supported", in.h, in.w)
		}
		beta := float64(o.Beta)
		if beta == 0 {
			beta = 1
		}
		out := in
		out.data = make([]float32, len(in.data))
		for b := range in.n {
			row, dst := in.data[b*in.c:(b+1)*in.c], out.data[b*in.c:(b+1)*in.c]
			m := math.Inf(-1)
			for _, v := range row {
				m = max(m, float64(v))
			}
			var s float64
			for j, v := range row {
				e := math.Exp(beta * (float64(v) - m))
				dst[j] = float32(e)
				s += e
			}
			for j := range dst {
				dst[j] = float32(float64(dst[j]) / s)
			}
		}
		return out, nil
	case OpQuantize, OpDequantize:
		return in, nil
	}
	return act{}, fmt.Errorf("unsupported")
}

func cpuAct(a Activation) cpu.Act {
	switch a {
	case ActReLU:
		return cpu.ActReLU
	case ActReLU6:
		return cpu.ActReLU6
	}
	return cpu.ActNone
}

// applyExtraAct applies the activations the cpu kernels do not have.
func applyExtraAct(a Activation, x []float32) {
	switch a {
	case ActReLUN1To1:
		for i, v := range x {
			x[i] = min(max(v, -1), 1)
		}
	case ActTanh:
		for i, v := range x {
			x[i] = float32(math.Tanh(float64(v)))
		}
	}
}
