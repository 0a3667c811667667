package onnxrt

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/internal/testutil"
)

// requireLibrary returns the library path the way Config{} would resolve it, or skips
// (fails with NATGW_REQUIRE_ORT=1) with instructions.
func requireLibrary(t testing.TB) string {
	t.Helper()
	path, err := ResolveLibraryPath(Config{})
	if err != nil {
		msg := "onnxruntime library missing: run scripts/install-onnxruntime.sh (or set ONNXRUNTIME_LIB): " + err.Error()
		if os.Getenv("NATGW_REQUIRE_ORT") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// newTestEnv returns an Env with the given thread count and checks, at cleanup,
// that the test leaked no sessions.
func newTestEnv(t testing.TB, intra int) *Env {
	t.Helper()
	requireLibrary(t)
	env, err := NewEnv(Config{IntraOpThreads: intra, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("env close: %v", err)
		}
	})
	return env
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type fixture struct {
	model  []byte
	input  []float32 // [2,3,128,128]
	logits []float32 // [2,102]
}

// loadA0 reads the A0_smallest parity fixture (model 9 MB, input [2,3,128,128], logits [2,102]).
func loadA0(t testing.TB) fixture {
	t.Helper()
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	f := fixture{
		model:  readFile(t, filepath.Join(dir, "A0_smallest.onnx")),
		input:  testutil.ReadF32(t, filepath.Join(dir, "A0_smallest_input.bin")),
		logits: testutil.ReadF32(t, filepath.Join(dir, "A0_smallest_logits.bin")),
	}
	if len(f.input) != 2*3*128*128 || len(f.logits) != 2*102 {
		t.Fatalf("A0 fixture sizes: input %d, logits %d", len(f.input), len(f.logits))
	}
	return f
}

// tinyModel builds y = x * scale for x of shape [batch, 4] (batch symbolic), with
// metadata_props {"scale": ...}. Different scales give different model bytes.
func tinyModel(t testing.TB, scale float32, meta map[string]string) []byte {
	t.Helper()
	return tinyModelOf(t, scale, meta, "batch", 4)
}

// tinyModelShape is tinyModel's scale 3 with the input and output dims given (a string
// is symbolic); the last must take a length of 4 at run time.
func tinyModelShape(t testing.TB, dims ...any) []byte {
	t.Helper()
	return tinyModelOf(t, 3, nil, dims...)
}

func tinyModelOf(t testing.TB, scale float32, meta map[string]string, dims ...any) []byte {
	t.Helper()
	floatT := func(dims ...any) *onnx.TypeProto {
		shape := &onnx.TensorShapeProto{}
		for _, d := range dims {
			switch d := d.(type) {
			case string:
				shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}})
			case int:
				shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
			}
		}
		return &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(onnx.TensorProto_FLOAT), Shape: shape}}}
	}
	m := &onnx.ModelProto{
		IrVersion:    8,
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: "", Version: 13}},
		ProducerName: "onnxrt-test",
		Graph: &onnx.GraphProto{
			Name: "scale",
			Node: []*onnx.NodeProto{{OpType: "Mul", Input: []string{"x", "w"}, Output: []string{"y"}, Name: "mul"}},
			Initializer: []*onnx.TensorProto{{
				Name: "w", Dims: []int64{4}, DataType: int32(onnx.TensorProto_FLOAT),
				FloatData: []float32{scale, scale, scale, scale},
			}},
			Input:  []*onnx.ValueInfoProto{{Name: "x", Type: floatT(dims...)}},
			Output: []*onnx.ValueInfoProto{{Name: "y", Type: floatT(dims...)}},
		},
	}
	for k, v := range meta {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: k, Value: v})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
