package tflite

import "fmt"

// TensorType is the element type of a tensor (schema enum TensorType).
type TensorType int8

// Tensor types this package knows by name.
const (
	Float32 TensorType = 0
	Float16 TensorType = 1
	Int32   TensorType = 2
	Uint8   TensorType = 3
	Int64   TensorType = 4
	String  TensorType = 5
	Bool    TensorType = 6
	Int16   TensorType = 7
	Int8    TensorType = 9
	Float64 TensorType = 10
)

var typeNames = map[TensorType]string{
	Float32: "FLOAT32", Float16: "FLOAT16", Int32: "INT32", Uint8: "UINT8", Int64: "INT64",
	String: "STRING", Bool: "BOOL", Int16: "INT16", Int8: "INT8", Float64: "FLOAT64",
}

func (t TensorType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("TensorType(%d)", int8(t))
}

// Size is the byte size of one element, 0 for types without a fixed size.
func (t TensorType) Size() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Float16, Int16:
		return 2
	case Float32, Int32:
		return 4
	case Int64, Float64:
		return 8
	}
	return 0
}

// Opcode is a builtin operator (schema enum BuiltinOperator).
type Opcode int32

// Builtin operators this package knows by name.
const (
	OpAdd             Opcode = 0
	OpAveragePool2D   Opcode = 1
	OpConcatenation   Opcode = 2
	OpConv2D          Opcode = 3
	OpDepthwiseConv2D Opcode = 4
	OpDequantize      Opcode = 6
	OpFullyConnected  Opcode = 9
	OpMaxPool2D       Opcode = 17
	OpMul             Opcode = 18
	OpReLU            Opcode = 19
	OpReLU6           Opcode = 21
	OpReshape         Opcode = 22
	OpSoftmax         Opcode = 25
	OpPad             Opcode = 34
	OpMean            Opcode = 40
	OpSqueeze         Opcode = 43
	OpHardSwish       Opcode = 117
	OpQuantize        Opcode = 114
	OpCustom          Opcode = 32
)

var opNames = map[Opcode]string{
	OpAdd: "ADD", OpAveragePool2D: "AVERAGE_POOL_2D", OpConcatenation: "CONCATENATION",
	OpConv2D: "CONV_2D", OpDepthwiseConv2D: "DEPTHWISE_CONV_2D", OpDequantize: "DEQUANTIZE",
	OpFullyConnected: "FULLY_CONNECTED", OpMaxPool2D: "MAX_POOL_2D", OpMul: "MUL", OpReLU: "RELU",
	OpReLU6: "RELU6", OpReshape: "RESHAPE", OpSoftmax: "SOFTMAX", OpPad: "PAD", OpMean: "MEAN",
	OpSqueeze: "SQUEEZE", OpHardSwish: "HARD_SWISH", OpQuantize: "QUANTIZE", OpCustom: "CUSTOM",
}

func (o Opcode) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("BUILTIN_%d", int32(o))
}

// Padding is a convolution or pooling padding rule (schema enum Padding).
type Padding int8

// Padding rules.
const (
	PaddingSame  Padding = 0 // TensorFlow SAME: output ceil(in/stride), extra pixel bottom/right
	PaddingValid Padding = 1
)

func (p Padding) String() string {
	switch p {
	case PaddingSame:
		return "SAME"
	case PaddingValid:
		return "VALID"
	}
	return fmt.Sprintf("Padding(%d)", int8(p))
}

// Activation is a fused activation function (schema enum ActivationFunctionType).
type Activation int8

// Fused activations.
const (
	ActNone      Activation = 0
	ActReLU      Activation = 1
	ActReLUN1To1 Activation = 2
	ActReLU6     Activation = 3
	ActTanh      Activation = 4
	ActSignBit   Activation = 5
)

func (a Activation) String() string {
	switch a {
	case ActNone:
		return "NONE"
	case ActReLU:
		return "RELU"
	case ActReLUN1To1:
		return "RELU_N1_TO_1"
	case ActReLU6:
		return "RELU6"
	case ActTanh:
		return "TANH"
	case ActSignBit:
		return "SIGN_BIT"
	}
	return fmt.Sprintf("Activation(%d)", int8(a))
}

// OptionsType is the tag of an operator's builtin_options union (schema union BuiltinOptions).
type OptionsType uint8

// Options tables this package decodes.
const (
	OptNone           OptionsType = 0
	OptConv2D         OptionsType = 1
	OptDepthwiseConv  OptionsType = 2
	OptPool2D         OptionsType = 5
	OptFullyConnected OptionsType = 8
	OptSoftmax        OptionsType = 9
	OptAdd            OptionsType = 11
	OptReshape        OptionsType = 17
)

// FileIdentifier is the flatbuffer file identifier of TFLite models (bytes 4..8).
const FileIdentifier = "TFL3"
