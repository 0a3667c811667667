package tflite

import (
	flatbuffers "github.com/google/flatbuffers/go"
)

// Marshal encodes the model as a TFLite flatbuffer with the fields this package reads
// (tests and tools build small models with it; Parse(m.Marshal()) gives m back).
// Tensor.Data is ignored: tensors refer to Model.Buffers by index.
func (m *Model) Marshal() []byte {
	b := flatbuffers.NewBuilder(1 << 16)
	ints := func(v []int) flatbuffers.UOffsetT {
		b.StartVector(4, len(v), 4)
		for i := len(v) - 1; i >= 0; i-- {
			b.PrependInt32(int32(v[i]))
		}
		return b.EndVector(len(v))
	}
	floats := func(v []float32) flatbuffers.UOffsetT {
		b.StartVector(4, len(v), 4)
		for i := len(v) - 1; i >= 0; i-- {
			b.PrependFloat32(v[i])
		}
		return b.EndVector(len(v))
	}
	tables := func(v []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
		b.StartVector(4, len(v), 4)
		for i := len(v) - 1; i >= 0; i-- {
			b.PrependUOffsetT(v[i])
		}
		return b.EndVector(len(v))
	}

	bufs := make([]flatbuffers.UOffsetT, len(m.Buffers))
	for i, d := range m.Buffers {
		var data flatbuffers.UOffsetT
		if len(d) > 0 {
			data = b.CreateByteVector(d)
		}
		b.StartObject(3)
		if len(d) > 0 {
			b.PrependUOffsetTSlot(0, data, 0)
		}
		bufs[i] = b.EndObject()
	}

	// Operator codes: one per distinct (opcode, custom code) pair, in first-use order.
	type key struct {
		op     Opcode
		custom string
	}
	codeIdx := map[key]int{}
	var codes []key
	for _, sg := range m.Subgraphs {
		for _, op := range sg.Operators {
			k := key{op.Opcode, op.CustomCode}
			if _, ok := codeIdx[k]; !ok {
				codeIdx[k] = len(codes)
				codes = append(codes, k)
			}
		}
	}
	codeOff := make([]flatbuffers.UOffsetT, len(codes))
	for i, c := range codes {
		var custom flatbuffers.UOffsetT
		if c.custom != "" {
			custom = b.CreateString(c.custom)
		}
		b.StartObject(4)
		b.PrependInt8Slot(0, int8(min(c.op, 127)), 0)
		if c.custom != "" {
			b.PrependUOffsetTSlot(1, custom, 0)
		}
		b.PrependInt32Slot(2, 1, 0)
		b.PrependInt32Slot(3, int32(c.op), 0)
		codeOff[i] = b.EndObject()
	}

	sgOff := make([]flatbuffers.UOffsetT, len(m.Subgraphs))
	for si, sg := range m.Subgraphs {
		tens := make([]flatbuffers.UOffsetT, len(sg.Tensors))
		for ti, t := range sg.Tensors {
			shape := ints(t.Shape)
			name := b.CreateString(t.Name)
			var quant flatbuffers.UOffsetT
			if q := t.Quant; q != nil {
				mn, mx, sc := floats(q.Min), floats(q.Max), floats(q.Scale)
				b.StartVector(8, len(q.ZeroPoint), 8)
				for i := len(q.ZeroPoint) - 1; i >= 0; i-- {
					b.PrependInt64(q.ZeroPoint[i])
				}
				zp := b.EndVector(len(q.ZeroPoint))
				b.StartObject(7)
				b.PrependUOffsetTSlot(0, mn, 0)
				b.PrependUOffsetTSlot(1, mx, 0)
				b.PrependUOffsetTSlot(2, sc, 0)
				b.PrependUOffsetTSlot(3, zp, 0)
				b.PrependInt32Slot(6, int32(q.Dim), 0)
				quant = b.EndObject()
			}
			b.StartObject(5)
			b.PrependUOffsetTSlot(0, shape, 0)
			b.PrependInt8Slot(1, int8(t.Type), 0)
			b.PrependUint32Slot(2, uint32(t.Buffer), 0)
			b.PrependUOffsetTSlot(3, name, 0)
			if quant != 0 {
				b.PrependUOffsetTSlot(4, quant, 0)
			}
			tens[ti] = b.EndObject()
		}
		ops := make([]flatbuffers.UOffsetT, len(sg.Operators))
		for oi, op := range sg.Operators {
			in, out := ints(op.Inputs), ints(op.Outputs)
			opts := writeOptions(b, op.OptionsType, op.Options, ints)
			b.StartObject(5)
			b.PrependUint32Slot(0, uint32(codeIdx[key{op.Opcode, op.CustomCode}]), 0)
			b.PrependUOffsetTSlot(1, in, 0)
			b.PrependUOffsetTSlot(2, out, 0)
			if opts != 0 {
				b.PrependUint8Slot(3, uint8(op.OptionsType), 0)
				b.PrependUOffsetTSlot(4, opts, 0)
			}
			ops[oi] = b.EndObject()
		}
		tv, iv, ov, opv := tables(tens), ints(sg.Inputs), ints(sg.Outputs), tables(ops)
		name := b.CreateString(sg.Name)
		b.StartObject(5)
		b.PrependUOffsetTSlot(0, tv, 0)
		b.PrependUOffsetTSlot(1, iv, 0)
		b.PrependUOffsetTSlot(2, ov, 0)
		b.PrependUOffsetTSlot(3, opv, 0)
		b.PrependUOffsetTSlot(4, name, 0)
		sgOff[si] = b.EndObject()
	}
	codesV, sgV, bufV := tables(codeOff), tables(sgOff), tables(bufs)
	desc := b.CreateString(m.Description)
	b.StartObject(5)
	b.PrependUint32Slot(0, m.Version, 0)
	b.PrependUOffsetTSlot(1, codesV, 0)
	b.PrependUOffsetTSlot(2, sgV, 0)
	b.PrependUOffsetTSlot(3, desc, 0)
	b.PrependUOffsetTSlot(4, bufV, 0)
	b.FinishWithFileIdentifier(b.EndObject(), []byte(FileIdentifier))
	return b.FinishedBytes()
}

// writeOptions writes the options table of the types Parse decodes; 0 when there is none.
func writeOptions(b *flatbuffers.Builder, typ OptionsType, o Options, ints func([]int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	switch typ {
	case OptConv2D:
		b.StartObject(6)
		b.PrependInt8Slot(0, int8(o.Padding), 0)
		b.PrependInt32Slot(1, int32(o.StrideW), 0)
		b.PrependInt32Slot(2, int32(o.StrideH), 0)
		b.PrependInt8Slot(3, int8(o.Activation), 0)
		b.PrependInt32Slot(4, int32(o.DilationW), 1)
		b.PrependInt32Slot(5, int32(o.DilationH), 1)
	case OptDepthwiseConv:
		b.StartObject(7)
		b.PrependInt8Slot(0, int8(o.Padding), 0)
		b.PrependInt32Slot(1, int32(o.StrideW), 0)
		b.PrependInt32Slot(2, int32(o.StrideH), 0)
		b.PrependInt32Slot(3, int32(o.DepthMultiplier), 0)
		b.PrependInt8Slot(4, int8(o.Activation), 0)
		b.PrependInt32Slot(5, int32(o.DilationW), 1)
		b.PrependInt32Slot(6, int32(o.DilationH), 1)
	case OptPool2D:
		b.StartObject(6)
		b.PrependInt8Slot(0, int8(o.Padding), 0)
		b.PrependInt32Slot(1, int32(o.StrideW), 0)
		b.PrependInt32Slot(2, int32(o.StrideH), 0)
		b.PrependInt32Slot(3, int32(o.FilterW), 0)
		b.PrependInt32Slot(4, int32(o.FilterH), 0)
		b.PrependInt8Slot(5, int8(o.Activation), 0)
	case OptFullyConnected:
		b.StartObject(3)
		b.PrependInt8Slot(0, int8(o.Activation), 0)
		b.PrependInt8Slot(1, o.WeightsFormat, 0)
		b.PrependBoolSlot(2, o.KeepNumDims, false)
	case OptSoftmax:
		b.StartObject(1)
		b.PrependFloat32Slot(0, o.Beta, 0)
	case OptAdd:
		b.StartObject(1)
		b.PrependInt8Slot(0, int8(o.Activation), 0)
	case OptReshape:
		ns := ints(o.NewShape)
		b.StartObject(1)
		b.PrependUOffsetTSlot(0, ns, 0)
	default:
		return 0
	}
	return b.EndObject()
}
