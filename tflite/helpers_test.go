package tflite

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

// sharedModel returns a file of the shared pretrained-model folder (testutil.Shared rules).
func sharedModel(t testing.TB, name string) string {
	t.Helper()
	return testutil.Shared(t, filepath.Join("data", "pretrained-mobilenet-tflite", name))
}

func u8Tensor(name string, shape []int, buf int, scale float32, zp int64) Tensor {
	return Tensor{Name: name, Shape: shape, Type: Uint8, Buffer: buf,
		Quant: &Quantization{Scale: []float32{scale}, ZeroPoint: []int64{zp}}}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func int32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// tinyModel is a small quantized graph: conv 3×3/2 (RELU6) → depthwise 3×3 (RELU6) → conv
// 1×1 → add (residual onto the first conv) → global average pool → reshape → softmax.
// Input 3 channels, c channels inside, classes outputs.
func tinyModel(seed uint64, c, classes, size int) *Model {
	r := rand.New(rand.NewPCG(seed, 1))
	bias := func(n int) []byte {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(r.IntN(2001) - 1000)
		}
		return int32Bytes(v)
	}
	m := &Model{Version: 3, Description: "tiny test model"}
	m.Buffers = [][]byte{nil,
		randBytes(r, c*3*3*3), bias(c), // 1, 2: conv
		randBytes(r, 3*3*c), bias(c), // 3, 4: depthwise
		randBytes(r, c*c), bias(c), // 5, 6: 1×1
		randBytes(r, classes*c), bias(classes), // 7, 8: logits
		int32Bytes([]int32{1, int32(classes)}), // 9: reshape shape
	}
	out := (size + 1) / 2
	bq := func(name string, n, buf int, s float32) Tensor {
		return Tensor{Name: name, Shape: []int{n}, Type: Int32, Buffer: buf,
			Quant: &Quantization{Scale: []float32{s}, ZeroPoint: []int64{0}}}
	}
	act := func(name string, shape ...int) Tensor { return u8Tensor(name, shape, 0, 0.05, 0) }
	m.Subgraphs = []Subgraph{{
		Name: "main",
		Tensors: []Tensor{
			u8Tensor("input", []int{1, size, size, 3}, 0, 1.0/128, 128), // 0
			u8Tensor("conv/w", []int{c, 3, 3, 3}, 1, 0.02, 128),         // 1
			bq("conv/b", c, 2, 0.0002),                                  // 2
			act("conv/out", 1, out, out, c),                             // 3
			u8Tensor("dw/w", []int{1, 3, 3, c}, 3, 0.03, 120),           // 4
			bq("dw/b", c, 4, 0.001),                                     // 5
			act("dw/out", 1, out, out, c),                               // 6
			u8Tensor("pw/w", []int{c, 1, 1, c}, 5, 0.01, 130),           // 7
			bq("pw/b", c, 6, 0.0005),                                    // 8
			act("pw/out", 1, out, out, c),                               // 9
			act("add/out", 1, out, out, c),                              // 10
			act("pool/out", 1, 1, 1, c),                                 // 11
			u8Tensor("logits/w", []int{classes, 1, 1, c}, 7, 0.01, 128), // 12
			bq("logits/b", classes, 8, 0.0005),                          // 13
			act("logits/out", 1, 1, 1, classes),                         // 14
			{Name: "shape", Shape: []int{2}, Type: Int32, Buffer: 9},    // 15
			act("logits", 1, classes),                                   // 16
			act("prob", 1, classes),                                     // 17
		},
		Inputs:  []int{0},
		Outputs: []int{17},
		Operators: []Operator{
			{Opcode: OpConv2D, Inputs: []int{0, 1, 2}, Outputs: []int{3}, OptionsType: OptConv2D,
				Options: Options{Padding: PaddingSame, StrideW: 2, StrideH: 2, DilationW: 1, DilationH: 1, Activation: ActReLU6}},
			{Opcode: OpDepthwiseConv2D, Inputs: []int{3, 4, 5}, Outputs: []int{6}, OptionsType: OptDepthwiseConv,
				Options: Options{Padding: PaddingSame, StrideW: 1, StrideH: 1, DepthMultiplier: 1, DilationW: 1, DilationH: 1, Activation: ActReLU6}},
			{Opcode: OpConv2D, Inputs: []int{6, 7, 8}, Outputs: []int{9}, OptionsType: OptConv2D,
				Options: Options{Padding: PaddingSame, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1}},
			{Opcode: OpAdd, Inputs: []int{9, 3}, Outputs: []int{10}, OptionsType: OptAdd},
			{Opcode: OpAveragePool2D, Inputs: []int{10}, Outputs: []int{11}, OptionsType: OptPool2D,
				Options: Options{Padding: PaddingValid, StrideW: 1, StrideH: 1, FilterW: out, FilterH: out}},
			{Opcode: OpConv2D, Inputs: []int{11, 12, 13}, Outputs: []int{14}, OptionsType: OptConv2D,
				Options: Options{Padding: PaddingSame, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1}},
			{Opcode: OpReshape, Inputs: []int{14, 15}, Outputs: []int{16}, OptionsType: OptReshape,
				Options: Options{NewShape: []int{1, classes}}},
			{Opcode: OpSoftmax, Inputs: []int{16}, Outputs: []int{17}, OptionsType: OptSoftmax,
				Options: Options{Beta: 1}},
		},
	}}
	sg := &m.Subgraphs[0]
	for i := range sg.Tensors {
		sg.Tensors[i].Data = m.Buffers[sg.Tensors[i].Buffer]
	}
	return m
}
