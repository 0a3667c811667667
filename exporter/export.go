package exporter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// Format constants of the exported files.
const (
	// IRVersion is the ONNX IR version written (IR 8 = ONNX 1.10+).
	IRVersion = 8
	// Opset is the default-domain operator set; HardSwish needs ≥ 14.
	Opset = 17
	// ProducerName is the model's producer_name.
	ProducerName = "natgw"
	// InputName and OutputName are the graph's single input and output.
	InputName  = "input"
	OutputName = "logits"
	// BatchDim is the symbolic batch dimension's dim_param.
	BatchDim = "batch"
	// DefaultTask is the task recorded when Options.Task is empty.
	DefaultTask = "default"
	// DefaultProducerVersion is recorded when Options.ProducerVersion is empty.
	DefaultProducerVersion = "devel"
)

// Options carries what the subnet itself does not know: the task, labels,
// preprocessing and provenance recorded in the metadata.
type Options struct {
	Task            string           // empty: DefaultTask
	Labels          []string         // one per class; nil: "class_0", "class_1", ...
	Preprocess      *preprocess.Spec // nil: preprocess.DefaultSpec(resolution)
	SupernetID      string           // the supernet's id (supernet.MetaID)
	SupernetVersion string           // the supernet's version (supernet.MetaVersion)
	ProducerVersion string           // natgw's version; empty: DefaultProducerVersion
}

// DefaultLabels returns "class_0" ... "class_{n-1}".
func DefaultLabels(n int) []string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("class_%d", i)
	}
	return l
}

// Export converts a subnet into a serialized ONNX ModelProto (see the package doc for the
// graph layout). The same subnet and options always give the same bytes.
func Export(sub *supernet.Subnet, opt Options) ([]byte, error) {
	m, err := BuildModel(sub, opt)
	if err != nil {
		return nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("export: marshal: %w", err)
	}
	return data, nil
}

// BuildModel is Export without the serialization.
func BuildModel(sub *supernet.Subnet, opt Options) (*onnx.ModelProto, error) {
	if sub == nil {
		return nil, errors.New("export: nil subnet")
	}
	md, err := metadataFor(sub, opt)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	g, err := buildGraph(sub)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return &onnx.ModelProto{
		IrVersion:       IRVersion,
		OpsetImport:     []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName:    ProducerName,
		ProducerVersion: md.producerVersion,
		Graph:           g,
		MetadataProps:   md.Props(),
	}, nil
}

// exportMeta is the metadata plus the bare producer version for producer_version.
type exportMeta struct {
	Metadata
	producerVersion string
}

func metadataFor(sub *supernet.Subnet, opt Options) (exportMeta, error) {
	classes := sub.Classifier.Out
	labels := opt.Labels
	if labels == nil {
		labels = DefaultLabels(classes)
	}
	if len(labels) != classes {
		return exportMeta{}, fmt.Errorf("%d labels for %d classes", len(labels), classes)
	}
	pp := preprocess.DefaultSpec(sub.Resolution)
	if opt.Preprocess != nil {
		pp = *opt.Preprocess
	}
	task := opt.Task
	if task == "" {
		task = DefaultTask
	}
	pv := opt.ProducerVersion
	if pv == "" {
		pv = DefaultProducerVersion
	}
	c := sub.Count()
	m := Metadata{
		Task: task, Arch: sub.Arch, Resolution: sub.Resolution, MAdds: c.MAdds, Params: c.Params,
		SupernetID: opt.SupernetID, SupernetVersion: opt.SupernetVersion, Spec: sub.SpecName,
		Labels: append([]string(nil), labels...), Preprocess: pp, Producer: ProducerName + " " + pv,
	}
	if err := m.Validate(); err != nil {
		return exportMeta{}, err
	}
	if !validText(pv) {
		return exportMeta{}, fmt.Errorf("producer version %q: empty or has control characters", pv)
	}
	return exportMeta{Metadata: m, producerVersion: pv}, nil
}

// graphBuilder appends nodes and initializers in forward order, so names and order depend
// only on the subnet.
type graphBuilder struct {
	g       *onnx.GraphProto
	padding string
	h, w    int // spatial size of the current feature map
	clip    bool
}

func buildGraph(sub *supernet.Subnet) (*onnx.GraphProto, error) {
	if sub.Padding != supernet.PadSymmetric && sub.Padding != supernet.PadSame {
		return nil, fmt.Errorf("padding %q not supported", sub.Padding)
	}
	if sub.Resolution < 1 {
		return nil, fmt.Errorf("resolution %d", sub.Resolution)
	}
	r := int64(sub.Resolution)
	b := &graphBuilder{
		g: &onnx.GraphProto{
			Name:   sub.SpecName,
			Input:  []*onnx.ValueInfoProto{floatValue(InputName, dimParam(BatchDim), dimValue(3), dimValue(r), dimValue(r))},
			Output: []*onnx.ValueInfoProto{floatValue(OutputName, dimParam(BatchDim), dimValue(int64(sub.Classifier.Out)))},
		},
		padding: sub.Padding,
		h:       sub.Resolution, w: sub.Resolution,
	}
	x, c, err := b.conv("first_conv", InputName, 3, &sub.Stem)
	if err != nil {
		return nil, err
	}
	for i := range sub.Blocks {
		if x, c, err = b.block(&sub.Blocks[i], x, c); err != nil {
			return nil, err
		}
	}
	if sub.FinalExpand != nil {
		if x, c, err = b.conv("final_expand", x, c, sub.FinalExpand); err != nil {
			return nil, err
		}
	}
	x = b.node("GlobalAveragePool", "pool", []string{x})
	b.h, b.w = 1, 1
	if sub.FeatureMix != nil {
		if x, c, err = b.conv("feature_mix", x, c, sub.FeatureMix); err != nil {
			return nil, err
		}
	}
	x = b.node("Flatten", "flatten", []string{x}, attrInt("axis", 1))
	cl := &sub.Classifier
	if cl.In != c || len(cl.Weight) != cl.Out*cl.In || len(cl.Bias) != cl.Out || cl.Out < 1 {
		return nil, fmt.Errorf("classifier: %d→%d with %d weights and %d biases, input has %d channels",
			cl.In, cl.Out, len(cl.Weight), len(cl.Bias), c)
	}
	b.initializer("classifier.weight", cl.Weight, int64(cl.Out), int64(cl.In))
	b.initializer("classifier.bias", cl.Bias, int64(cl.Out))
	b.g.Node = append(b.g.Node, &onnx.NodeProto{
		Name: "classifier", OpType: "Gemm",
		Input:     []string{x, "classifier.weight", "classifier.bias"},
		Output:    []string{OutputName},
		Attribute: []*onnx.AttributeProto{attrInt("transB", 1)},
	})
	return b.g, nil
}

// block emits one inverted-residual block; names use the supernet block index.
func (b *graphBuilder) block(blk *supernet.Block, x string, c int) (string, int, error) {
	p := fmt.Sprintf("blocks.%d", blk.Index)
	in := x
	y, yc := x, c
	var err error
	if blk.Expand != nil {
		if y, yc, err = b.conv(p+".expand", y, yc, blk.Expand); err != nil {
			return "", 0, err
		}
	}
	if y, yc, err = b.conv(p+".dw", y, yc, &blk.Depthwise); err != nil {
		return "", 0, err
	}
	if blk.SE != nil {
		if y, err = b.se(p+".se", y, yc, blk.SE); err != nil {
			return "", 0, err
		}
	}
	if y, yc, err = b.conv(p+".project", y, yc, &blk.Project); err != nil {
		return "", 0, err
	}
	if blk.Residual {
		if yc != c {
			return "", 0, fmt.Errorf("%s: residual from %d to %d channels", p, c, yc)
		}
		y = b.node("Add", p+".add", []string{y, in})
	}
	return y, yc, nil
}

// se emits squeeze-and-excitation: pool, 1×1 reduce + Relu, 1×1 expand + HardSigmoid, Mul.
func (b *graphBuilder) se(p, x string, c int, se *supernet.SE) (string, error) {
	if se.Channels != c || se.Hidden < 1 ||
		len(se.ReduceWeight) != se.Hidden*c || len(se.ReduceBias) != se.Hidden ||
		len(se.ExpandWeight) != c*se.Hidden || len(se.ExpandBias) != c {
		return "", fmt.Errorf("%s: inconsistent SE (%d channels, hidden %d) on %d channels", p, se.Channels, se.Hidden, c)
	}
	pooled := b.node("GlobalAveragePool", p+".pool", []string{x})
	h := b.conv1x1(p+".reduce", pooled, se.ReduceWeight, se.ReduceBias, se.Hidden, c)
	h = b.node("Relu", p+".reduce.act", []string{h})
	gate := b.conv1x1(p+".expand", h, se.ExpandWeight, se.ExpandBias, c, se.Hidden)
	gate = b.node("HardSigmoid", p+".expand.act", []string{gate},
		attrFloat("alpha", float32(1.0/6)), attrFloat("beta", 0.5))
	return b.node("Mul", p+".mul", []string{x, gate}), nil
}

// conv1x1 emits a stride-1 1×1 convolution with bias on the current map (SE layers).
func (b *graphBuilder) conv1x1(name, x string, w, bias []float32, out, in int) string {
	b.initializer(name+".weight", w, int64(out), int64(in), 1, 1)
	b.initializer(name+".bias", bias, int64(out))
	return b.nodeOut("Conv", name, []string{x, name + ".weight", name + ".bias"},
		attrInts("kernel_shape", 1, 1), attrInts("strides", 1, 1), attrInts("pads", 0, 0, 0, 0),
		attrInt("group", 1))
}

// conv emits a convolution with its BatchNorm folded in, then its activation.
func (b *graphBuilder) conv(name, x string, c int, l *supernet.ConvLayer) (string, int, error) {
	if l.In != c || l.Out < 1 || l.Kernel < 1 || l.Stride < 1 || l.Groups < 1 ||
		l.In%l.Groups != 0 || l.Out%l.Groups != 0 {
		return "", 0, fmt.Errorf("%s: bad conv %d→%d k%d s%d g%d on %d channels", name, l.In, l.Out, l.Kernel, l.Stride, l.Groups, c)
	}
	k := l.Kernel
	if len(l.Weight) != l.Out*(l.In/l.Groups)*k*k || (l.Bias != nil && len(l.Bias) != l.Out) {
		return "", 0, fmt.Errorf("%s: %d weights and %d biases for %d→%d k%d g%d", name, len(l.Weight), len(l.Bias), l.In, l.Out, k, l.Groups)
	}
	// Copies: the model must not alias the subnet, whose weights the caller may change.
	w, bias := append([]float32(nil), l.Weight...), l.Bias
	if bias != nil {
		bias = append([]float32(nil), bias...)
	}
	if bn := l.BN; bn != nil {
		if len(bn.Weight) != l.Out || len(bn.Bias) != l.Out || len(bn.Mean) != l.Out || len(bn.Var) != l.Out {
			return "", 0, fmt.Errorf("%s: BatchNorm has %d channels, conv %d", name, len(bn.Weight), l.Out)
		}
		w, bias = supernet.FoldBN(l.Weight, l.Bias, bn)
	}
	pt, pb := supernet.Pads(b.padding, b.h, k, l.Stride)
	pl, pr := supernet.Pads(b.padding, b.w, k, l.Stride)
	oh := (b.h+pt+pb-k)/l.Stride + 1
	ow := (b.w+pl+pr-k)/l.Stride + 1
	if oh < 1 || ow < 1 {
		return "", 0, fmt.Errorf("%s: %dx%d input too small for kernel %d", name, b.h, b.w, k)
	}
	b.h, b.w = oh, ow
	b.initializerOwned(name+".weight", w, int64(l.Out), int64(l.In/l.Groups), int64(k), int64(k))
	in := []string{x, name + ".weight"}
	if bias != nil {
		b.initializerOwned(name+".bias", bias, int64(l.Out))
		in = append(in, name+".bias")
	}
	y := b.nodeOut("Conv", name, in,
		attrInts("kernel_shape", int64(k), int64(k)),
		attrInts("strides", int64(l.Stride), int64(l.Stride)),
		attrInts("pads", int64(pt), int64(pl), int64(pb), int64(pr)),
		attrInt("group", int64(l.Groups)))
	y, err := b.act(name+".act", y, l.Act)
	return y, l.Out, err
}

// act emits the activation; ActNone emits nothing.
func (b *graphBuilder) act(name, x string, a supernet.Act) (string, error) {
	switch a {
	case supernet.ActNone, "":
		return x, nil
	case supernet.ActReLU:
		return b.node("Relu", name, []string{x}), nil
	case supernet.ActReLU6:
		// Clip takes its bounds as inputs since opset 11; two shared scalar initializers.
		if !b.clip {
			b.initializer("const.clip_min", []float32{0})
			b.initializer("const.clip_max", []float32{6})
			b.clip = true
		}
		return b.node("Clip", name, []string{x, "const.clip_min", "const.clip_max"}), nil
	case supernet.ActHSwish:
		return b.node("HardSwish", name, []string{x}), nil
	}
	return "", fmt.Errorf("%s: activation %q not supported", name, a)
}

// node appends a node whose single output value carries the node's name.
func (b *graphBuilder) node(op, name string, in []string, attrs ...*onnx.AttributeProto) string {
	return b.nodeOut(op, name, in, attrs...)
}

func (b *graphBuilder) nodeOut(op, name string, in []string, attrs ...*onnx.AttributeProto) string {
	b.g.Node = append(b.g.Node, &onnx.NodeProto{Name: name, OpType: op, Input: in, Output: []string{name}, Attribute: attrs})
	return name
}

// initializer adds a float32 tensor stored as little-endian raw_data; it copies v.
func (b *graphBuilder) initializer(name string, v []float32, dims ...int64) {
	b.initializerOwned(name, append([]float32(nil), v...), dims...)
}

// initializerOwned is initializer for a slice the model may keep (freshly folded weights),
// which saves copying tens of megabytes for a large subnet.
func (b *graphBuilder) initializerOwned(name string, v []float32, dims ...int64) {
	b.g.Initializer = append(b.g.Initializer, &onnx.TensorProto{
		Name: name, Dims: dims, DataType: int32(onnx.TensorProto_FLOAT), RawData: float32Bytes(v),
	})
}

// float32Bytes is v as little-endian bytes: v's own memory on little-endian machines (no
// per-value encoding: this is most of an export's work otherwise), a converted copy elsewhere.
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return raw
}

func attrInt(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

func attrInts(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

func attrFloat(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOAT, F: v}
}

func dimParam(p string) *onnx.TensorShapeProto_Dimension {
	return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: p}}
}

func dimValue(v int64) *onnx.TensorShapeProto_Dimension {
	return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func floatValue(name string, dims ...*onnx.TensorShapeProto_Dimension) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_FLOAT), Shape: &onnx.TensorShapeProto{Dim: dims}},
	}}}
}
