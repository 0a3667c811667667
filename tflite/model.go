package tflite

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Model is a decoded TFLite model.
type Model struct {
	Version     uint32
	Description string
	Subgraphs   []Subgraph
	// Buffers are the raw constant buffers; they alias the bytes given to Parse.
	Buffers [][]byte
}

// Subgraph is one graph of tensors and operators (the first is the main graph).
type Subgraph struct {
	Name      string
	Tensors   []Tensor
	Operators []Operator
	Inputs    []int // tensor indices
	Outputs   []int
}

// Tensor is a tensor's description and, when it is constant, its raw little-endian data.
type Tensor struct {
	Name   string
	Shape  []int
	Type   TensorType
	Buffer int    // index into Model.Buffers
	Data   []byte // Model.Buffers[Buffer]; empty for activations
	Quant  *Quantization
}

// Quantization holds a tensor's affine quantization: real = Scale·(q − ZeroPoint), per
// tensor (one scale) or per slice along Dim.
type Quantization struct {
	Min, Max  []float32
	Scale     []float32
	ZeroPoint []int64
	Dim       int // quantized_dimension for per-axis quantization
}

// Operator is one node of the graph.
type Operator struct {
	Opcode      Opcode
	CustomCode  string // for OpCustom
	Inputs      []int  // tensor indices; −1 marks an omitted optional input
	Outputs     []int
	OptionsType OptionsType
	Options     Options
}

// Options are the decoded builtin options of the operator types this package knows; other
// types leave them zero (OptionsType still says which table was present).
type Options struct {
	Padding              Padding
	StrideW, StrideH     int
	DilationW, DilationH int
	DepthMultiplier      int
	FilterW, FilterH     int
	Activation           Activation
	Beta                 float32 // softmax
	NewShape             []int   // reshape
	KeepNumDims          bool    // fully connected
	WeightsFormat        int8    // fully connected weights_format
}

// Main is the first subgraph, which TFLite runs.
func (m *Model) Main() (*Subgraph, error) {
	if len(m.Subgraphs) == 0 {
		return nil, errors.New("tflite: model has no subgraph")
	}
	return &m.Subgraphs[0], nil
}

// maxFile bounds the model size Parse accepts: flatbuffer offsets are 32-bit.
const maxFile = math.MaxInt32

// Parse decodes a TFLite flatbuffer. Corrupt or truncated input gives an error; the
// returned model's buffers alias data.
func Parse(data []byte) (*Model, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("tflite: %d bytes, too short for a flatbuffer", len(data))
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("tflite: %d bytes, more than %d", len(data), maxFile)
	}
	if id := string(data[4:8]); id != FileIdentifier {
		return nil, fmt.Errorf("tflite: file identifier %q, want %q (not a TFLite model)", strings.ToValidUTF8(id, "?"), FileIdentifier)
	}
	r := newReader(data)
	m, err := r.model()
	if err != nil {
		return nil, fmt.Errorf("tflite: %w", err)
	}
	return m, nil
}

// Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers.
func (r *reader) model() (*Model, error) {
	root, err := r.tableAt(uint64(uint32(data32(r.buf))), "model")
	if err != nil {
		return nil, err
	}
	m := &Model{}
	if m.Version, err = root.uint32(0, 0); err != nil {
		return nil, fmt.Errorf("model version: %w", err)
	}
	if m.Description, err = root.str(3, "model description"); err != nil {
		return nil, err
	}
	bufs, err := root.vec(4, 4, "buffers")
	if err != nil {
		return nil, err
	}
	m.Buffers = make([][]byte, bufs.n)
	for i := range bufs.n {
		if m.Buffers[i], err = r.buffer(bufs, i); err != nil {
			return nil, fmt.Errorf("buffer %d: %w", i, err)
		}
	}
	codesV, err := root.vec(1, 4, "operator codes")
	if err != nil {
		return nil, err
	}
	type code struct {
		op     Opcode
		custom string
	}
	codes := make([]code, codesV.n)
	for i := range codesV.n {
		t, err := codesV.table(i, "operator code")
		if err != nil {
			return nil, fmt.Errorf("operator code %d: %w", i, err)
		}
		// OperatorCode: 0 deprecated_builtin_code (int8), 1 custom_code, 2 version, 3 builtin_code.
		// Writers fill one or both; TFLite itself takes the larger.
		dep, err := t.int8(0, 0)
		if err != nil {
			return nil, fmt.Errorf("operator code %d: %w", i, err)
		}
		bc, err := t.int32(3, 0)
		if err != nil {
			return nil, fmt.Errorf("operator code %d: %w", i, err)
		}
		codes[i].op = Opcode(max(bc, int32(dep)))
		if codes[i].custom, err = t.str(1, "custom code"); err != nil {
			return nil, fmt.Errorf("operator code %d: %w", i, err)
		}
	}
	sgs, err := root.vec(2, 4, "subgraphs")
	if err != nil {
		return nil, err
	}
	for i := range sgs.n {
		t, err := sgs.table(i, "subgraph")
		if err != nil {
			return nil, fmt.Errorf("subgraph %d: %w", i, err)
		}
		sg, err := r.subgraph(t, m.Buffers, func(idx uint32) (Opcode, string, error) {
			if int64(idx) >= int64(len(codes)) {
				return 0, "", fmt.Errorf("opcode index %d, model has %d operator codes", idx, len(codes))
			}
			return codes[idx].op, codes[idx].custom, nil
		})
		if err != nil {
			return nil, fmt.Errorf("subgraph %d: %w", i, err)
		}
		m.Subgraphs = append(m.Subgraphs, sg)
	}
	return m, nil
}

func data32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// Buffer: 0 data [ubyte], 1 offset (uint64), 2 size (uint64) for data stored after the flatbuffer.
func (r *reader) buffer(v vector, i int) ([]byte, error) {
	t, err := v.table(i, "buffer")
	if err != nil {
		return nil, err
	}
	d, err := t.vec(0, 1, "buffer data")
	if err != nil {
		return nil, err
	}
	if d.n > 0 {
		return d.bytes(), nil
	}
	off, err := t.uint64(1, 0)
	if err != nil {
		return nil, err
	}
	size, err := t.uint64(2, 0)
	if err != nil {
		return nil, err
	}
	if off <= 1 || size == 0 { // offset 1 is the writer's "none" sentinel
		return nil, nil
	}
	if !r.in(off, size) {
		return nil, fmt.Errorf("external data [%d, +%d): %w", off, size, errBounds)
	}
	return r.buf[off : off+size], nil
}

// SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name.
func (r *reader) subgraph(t table, buffers [][]byte, opcode func(uint32) (Opcode, string, error)) (Subgraph, error) {
	var sg Subgraph
	var err error
	if sg.Name, err = t.str(4, "subgraph name"); err != nil {
		return sg, err
	}
	tv, err := t.vec(0, 4, "tensors")
	if err != nil {
		return sg, err
	}
	sg.Tensors = make([]Tensor, tv.n)
	for i := range tv.n {
		tt, err := tv.table(i, "tensor")
		if err != nil {
			return sg, fmt.Errorf("tensor %d: %w", i, err)
		}
		if sg.Tensors[i], err = r.tensor(tt, buffers); err != nil {
			return sg, fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	checkIdx := func(what string, idx []int, optional bool) error {
		for _, x := range idx {
			if (x < 0 && !(optional && x == -1)) || x >= len(sg.Tensors) {
				return fmt.Errorf("%s: tensor index %d, subgraph has %d tensors", what, x, len(sg.Tensors))
			}
		}
		return nil
	}
	for slot, dst := range []*[]int{1: &sg.Inputs, 2: &sg.Outputs} {
		if dst == nil {
			continue
		}
		v, err := t.vec(slot, 4, "subgraph inputs/outputs")
		if err != nil {
			return sg, err
		}
		*dst = v.ints()
		if err := checkIdx("subgraph inputs/outputs", *dst, false); err != nil {
			return sg, err
		}
	}
	ov, err := t.vec(3, 4, "operators")
	if err != nil {
		return sg, err
	}
	sg.Operators = make([]Operator, ov.n)
	for i := range ov.n {
		ot, err := ov.table(i, "operator")
		if err != nil {
			return sg, fmt.Errorf("operator %d: %w", i, err)
		}
		op, err := r.operator(ot, opcode)
		if err == nil {
			err = checkIdx("inputs", op.Inputs, true)
		}
		if err == nil {
			err = checkIdx("outputs", op.Outputs, false)
		}
		if err != nil {
			return sg, fmt.Errorf("operator %d: %w", i, err)
		}
		sg.Operators[i] = op
	}
	return sg, nil
}

// Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization.
func (r *reader) tensor(t table, buffers [][]byte) (Tensor, error) {
	var ts Tensor
	sv, err := t.vec(0, 4, "shape")
	if err != nil {
		return ts, err
	}
	ts.Shape = sv.ints()
	for _, d := range ts.Shape {
		if d < -1 { // −1 marks a dynamic dimension
			return ts, fmt.Errorf("shape %v: negative dimension", ts.Shape)
		}
	}
	ty, err := t.int8(1, 0)
	if err != nil {
		return ts, err
	}
	ts.Type = TensorType(ty)
	b, err := t.uint32(2, 0)
	if err != nil {
		return ts, err
	}
	if int64(b) >= int64(len(buffers)) && b != 0 {
		return ts, fmt.Errorf("buffer %d, model has %d", b, len(buffers))
	}
	ts.Buffer = int(b)
	if int(b) < len(buffers) {
		ts.Data = buffers[b]
	}
	if ts.Name, err = t.str(3, "tensor name"); err != nil {
		return ts, err
	}
	q, ok, err := t.sub(4, "quantization")
	if err != nil {
		return ts, err
	}
	if ok {
		if ts.Quant, err = quantization(q); err != nil {
			return ts, fmt.Errorf("%s: quantization: %w", ts.Name, err)
		}
	}
	return ts, nil
}

// QuantizationParameters: 0 min, 1 max, 2 scale, 3 zero_point (int64), 6 quantized_dimension.
func quantization(t table) (*Quantization, error) {
	var q Quantization
	for slot, dst := range []*[]float32{&q.Min, &q.Max, &q.Scale} {
		v, err := t.vec(slot, 4, "quantization values")
		if err != nil {
			return nil, err
		}
		*dst = v.float32s()
	}
	zp, err := t.vec(3, 8, "zero points")
	if err != nil {
		return nil, err
	}
	q.ZeroPoint = zp.int64s()
	d, err := t.int32(6, 0)
	if err != nil {
		return nil, err
	}
	q.Dim = int(d)
	if len(q.Scale) == 0 && len(q.ZeroPoint) == 0 && len(q.Min) == 0 && len(q.Max) == 0 {
		return nil, nil // an empty table means "not quantized"
	}
	return &q, nil
}

// Operator: 0 opcode_index, 1 inputs, 2 outputs, 3 builtin_options_type, 4 builtin_options.
func (r *reader) operator(t table, opcode func(uint32) (Opcode, string, error)) (Operator, error) {
	var op Operator
	idx, err := t.uint32(0, 0)
	if err != nil {
		return op, err
	}
	if op.Opcode, op.CustomCode, err = opcode(idx); err != nil {
		return op, err
	}
	in, err := t.vec(1, 4, "inputs")
	if err != nil {
		return op, err
	}
	op.Inputs = in.ints()
	out, err := t.vec(2, 4, "outputs")
	if err != nil {
		return op, err
	}
	op.Outputs = out.ints()
	ot, err := t.uint8(3, 0)
	if err != nil {
		return op, err
	}
	op.OptionsType = OptionsType(ot)
	opts, ok, err := t.sub(4, "builtin options")
	if err != nil || !ok {
		return op, err
	}
	op.Options, err = options(op.OptionsType, opts)
	return op, err
}

// options decodes the builtin options tables listed next to each case.
func options(typ OptionsType, t table) (Options, error) {
	var o Options
	var errs []error
	i8 := func(slot int) int8 { v, err := t.int8(slot, 0); errs = append(errs, err); return v }
	i32 := func(slot int, def int32) int { v, err := t.int32(slot, def); errs = append(errs, err); return int(v) }
	switch typ {
	case OptConv2D: // 0 padding, 1 stride_w, 2 stride_h, 3 activation, 4 dilation_w, 5 dilation_h
		o.Padding, o.StrideW, o.StrideH = Padding(i8(0)), i32(1, 0), i32(2, 0)
		o.Activation, o.DilationW, o.DilationH = Activation(i8(3)), i32(4, 1), i32(5, 1)
	case OptDepthwiseConv: // 0 padding, 1 stride_w, 2 stride_h, 3 depth_multiplier, 4 activation, 5/6 dilation
		o.Padding, o.StrideW, o.StrideH, o.DepthMultiplier = Padding(i8(0)), i32(1, 0), i32(2, 0), i32(3, 0)
		o.Activation, o.DilationW, o.DilationH = Activation(i8(4)), i32(5, 1), i32(6, 1)
	case OptPool2D: // 0 padding, 1 stride_w, 2 stride_h, 3 filter_width, 4 filter_height, 5 activation
		o.Padding, o.StrideW, o.StrideH = Padding(i8(0)), i32(1, 0), i32(2, 0)
		o.FilterW, o.FilterH, o.Activation = i32(3, 0), i32(4, 0), Activation(i8(5))
	case OptFullyConnected: // 0 activation, 1 weights_format, 2 keep_num_dims
		o.Activation, o.WeightsFormat, o.KeepNumDims = Activation(i8(0)), i8(1), i8(2) != 0
	case OptSoftmax: // 0 beta
		v, err := t.float32(0, 0)
		o.Beta = v
		errs = append(errs, err)
	case OptAdd: // 0 activation
		o.Activation = Activation(i8(0))
	case OptReshape: // 0 new_shape
		v, err := t.vec(0, 4, "new shape")
		errs = append(errs, err)
		if err == nil {
			o.NewShape = v.ints()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("options: %w", err)
	}
	return o, nil
}
