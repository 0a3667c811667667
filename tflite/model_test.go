package tflite

import (
	"bytes"
	"errors"
	"math"
	"os"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	want := tinyModel(1, 8, 5, 9)
	got, err := Parse(want.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got.Subgraphs[0].Operators, want.Subgraphs[0].Operators)
	}
}

func TestParseSharedModels(t *testing.T) {
	tests := []struct {
		file              string
		tensors, ops      int
		histogram         map[Opcode]int
		inShape, outShape []int
	}{
		{"mobilenet_v2_1.0_224_quant.tflite", 174, 66,
			map[Opcode]int{OpConv2D: 36, OpDepthwiseConv2D: 17, OpAdd: 10, OpAveragePool2D: 1, OpReshape: 1, OpSoftmax: 1},
			[]int{1, 224, 224, 3}, []int{1, 1001}},
		{"mobilenet_v1_0.25_128_quant.tflite", 89, 31,
			map[Opcode]int{OpConv2D: 15, OpDepthwiseConv2D: 13, OpAveragePool2D: 1, OpReshape: 1, OpSoftmax: 1},
			[]int{1, 128, 128, 3}, []int{1, 1001}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(sharedModel(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			sg, err := m.Main()
			if err != nil {
				t.Fatal(err)
			}
			if m.Version != 3 || len(sg.Tensors) != tc.tensors || len(sg.Operators) != tc.ops {
				t.Fatalf("version %d, %d tensors, %d ops; want 3, %d, %d", m.Version, len(sg.Tensors), len(sg.Operators), tc.tensors, tc.ops)
			}
			hist := map[Opcode]int{}
			for _, op := range sg.Operators {
				hist[op.Opcode]++
			}
			if !reflect.DeepEqual(hist, tc.histogram) {
				t.Errorf("opcodes %v, want %v", hist, tc.histogram)
			}
			in, out := sg.Tensors[sg.Inputs[0]], sg.Tensors[sg.Outputs[0]]
			if !reflect.DeepEqual(in.Shape, tc.inShape) || in.Type != Uint8 || in.Quant == nil ||
				in.Quant.Scale[0] != 0.0078125 || in.Quant.ZeroPoint[0] != 128 {
				t.Errorf("input %s %v %v %+v", in.Name, in.Shape, in.Type, in.Quant)
			}
			if !reflect.DeepEqual(out.Shape, tc.outShape) || out.Type != Uint8 {
				t.Errorf("output %s %v %v", out.Name, out.Shape, out.Type)
			}
			// Every conv has SAME padding, square strides and dequantizable weights and bias.
			for i, op := range sg.Operators {
				if op.Opcode != OpConv2D && op.Opcode != OpDepthwiseConv2D {
					continue
				}
				o := op.Options
				if o.Padding != PaddingSame || o.StrideW != o.StrideH || o.StrideW < 1 || o.StrideW > 2 {
					t.Errorf("op %d: options %+v", i, o)
				}
				for _, ti := range op.Inputs[1:] {
					if _, err := sg.Tensors[ti].Dequantize(); err != nil {
						t.Errorf("op %d: %v", i, err)
					}
				}
			}
			// Re-encoding what we read gives the same model back.
			again, err := Parse(m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, m) {
				t.Error("Parse(Marshal(m)) differs from m")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good := tinyModel(2, 4, 3, 5).Marshal()
	flip := func(at int, v byte) []byte {
		b := bytes.Clone(good)
		b[at] = v
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("TFL3")},
		{"wrong identifier", append([]byte{8, 0, 0, 0}, []byte("ONNX....")...)},
		{"root offset past end", append([]byte{0xff, 0xff, 0xff, 0x7f}, good[4:]...)},
		{"truncated", good[:len(good)/2]},
		{"root to identifier", flip(0, 4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.data); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestDequantize(t *testing.T) {
	tests := []struct {
		name    string
		t       Tensor
		want    []float32
		wantErr bool
	}{
		{"uint8 per tensor", Tensor{Shape: []int{3}, Type: Uint8, Data: []byte{0, 128, 255},
			Quant: &Quantization{Scale: []float32{0.5}, ZeroPoint: []int64{128}}}, []float32{-64, 0, 63.5}, false},
		{"int8 per axis", Tensor{Shape: []int{2, 2}, Type: Int8, Data: []byte{1, 0xff, 2, 0xfe},
			Quant: &Quantization{Scale: []float32{1, 10}, ZeroPoint: []int64{0, 1}, Dim: 0}}, []float32{1, -1, 10, -30}, false},
		{"int8 per axis last dim", Tensor{Shape: []int{2, 2}, Type: Int8, Data: []byte{1, 1, 2, 2},
			Quant: &Quantization{Scale: []float32{1, 10}, Dim: 1}}, []float32{1, 10, 2, 20}, false},
		{"int32 bias", Tensor{Shape: []int{2}, Type: Int32, Data: int32Bytes([]int32{-3, 1 << 20}),
			Quant: &Quantization{Scale: []float32{0.25}, ZeroPoint: []int64{0}}}, []float32{-0.75, 262144}, false},
		{"float32", Tensor{Shape: []int{2}, Type: Float32, Data: float32Bytes([]float32{1.5, -2})}, []float32{1.5, -2}, false},
		{"no data", Tensor{Shape: []int{2}, Type: Uint8, Quant: &Quantization{Scale: []float32{1}}}, nil, true},
		{"size mismatch", Tensor{Shape: []int{3}, Type: Uint8, Data: []byte{1, 2}, Quant: &Quantization{Scale: []float32{1}}}, nil, true},
		{"no quantization", Tensor{Shape: []int{1}, Type: Uint8, Data: []byte{1}}, nil, true},
		{"bad axis", Tensor{Shape: []int{2}, Type: Uint8, Data: []byte{1, 2},
			Quant: &Quantization{Scale: []float32{1, 2, 3}, Dim: 0}}, nil, true},
		{"dynamic shape", Tensor{Shape: []int{-1}, Type: Uint8, Data: []byte{1}, Quant: &Quantization{Scale: []float32{1}}}, nil, true},
		{"huge shape", Tensor{Shape: []int{1 << 20, 1 << 20}, Type: Uint8, Data: []byte{1}, Quant: &Quantization{Scale: []float32{1}}}, nil, true},
		{"string", Tensor{Shape: []int{1}, Type: String, Data: []byte{1}}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.t.Dequantize()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterOIHW(t *testing.T) {
	// conv [out=2, kh=1, kw=2, in=3]: value = 100·o + 10·x + i.
	var w []float32
	for o := range 2 {
		for x := range 2 {
			for i := range 3 {
				w = append(w, float32(100*o+10*x+i))
			}
		}
	}
	got, shape, err := FilterOIHW(w, []int{2, 1, 2, 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shape, []int{2, 3, 1, 2}) {
		t.Fatalf("shape %v", shape)
	}
	for o := range 2 {
		for i := range 3 {
			for x := range 2 {
				if v := got[(o*3+i)*2+x]; v != float32(100*o+10*x+i) {
					t.Fatalf("[%d,%d,0,%d] = %v", o, i, x, v)
				}
			}
		}
	}
	// depthwise [1, kh=2, kw=1, c=3]: value = 10·y + c.
	dw := []float32{0, 1, 2, 10, 11, 12}
	got, shape, err = FilterOIHW(dw, []int{1, 2, 1, 3}, true)
	if err != nil || !reflect.DeepEqual(shape, []int{3, 1, 2, 1}) || !reflect.DeepEqual(got, []float32{0, 10, 1, 11, 2, 12}) {
		t.Fatalf("depthwise: %v %v %v", got, shape, err)
	}
	if _, _, err := FilterOIHW(dw, []int{2, 1, 1, 3}, true); !errors.Is(err, ErrLayout) {
		t.Fatalf("bad depthwise shape: %v", err)
	}
	if _, _, err := FilterOIHW(dw, []int{1, 1, 1, 3}, false); !errors.Is(err, ErrLayout) {
		t.Fatalf("length mismatch: %v", err)
	}
}

func TestNumElementsOverflow(t *testing.T) {
	ts := Tensor{Shape: []int{math.MaxInt32, 2}}
	if _, err := ts.NumElements(); err == nil {
		t.Fatal("no error")
	}
}
