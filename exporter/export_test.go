package exporter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCases are small random-weight subnets whose export hashes are pinned in
// testdata/export.sha256; a change there means the file format changed.
func goldenCases(t testing.TB) []struct {
	name string
	sub  *supernet.Subnet
	opt  Options
} {
	ofa := supernet.OFAMobileNetV3(1.0, 10)
	mbv2 := supernet.MobileNetV2Space(10)
	mixed := ofa.Uniform(5, 4, 3, 160)
	mixed.KS[0], mixed.E[0], mixed.KS[4], mixed.E[4] = 7, 6, 3, 3
	pp := preprocess.DefaultSpec(160)
	pp.CropFraction = 0.875
	return []struct {
		name string
		sub  *supernet.Subnet
		opt  Options
	}{
		{"ofa_mbv3_smallest_seed1", randomSubnet(t, ofa, 1, nil), Options{}},
		{"ofa_mbv3_mixed_seed2", randomSubnet(t, ofa, 2, &mixed), Options{
			Task: "flowers", Labels: DefaultLabels(10), Preprocess: &pp,
			SupernetID: "random-2", SupernetVersion: "v1", ProducerVersion: "1.2.3",
		}},
		{"mbv2_smallest_seed3", randomSubnet(t, mbv2, 3, nil), Options{Task: "tf"}},
	}
}

// TestGolden pins the SHA-256 of each golden export (go test -update rewrites them).
func TestGolden(t *testing.T) {
	var lines []string
	for _, c := range goldenCases(t) {
		data, err := Export(c.sub, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		lines = append(lines, fmt.Sprintf("%s  %s  %d", hex.EncodeToString(sum[:]), c.name, len(data)))
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "export.sha256")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("export bytes changed (go test -update if intended):\ngot:\n%swant:\n%s", got, want)
	}
}

// TestDeterministic exports the same subnet twice, and the same arch from a freshly built
// supernet, and wants identical bytes.
func TestDeterministic(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	a := spec.Uniform(7, 6, 4, 224)
	opt := Options{Task: "t", Labels: DefaultLabels(10), SupernetID: "x"}
	first, err := Export(randomSubnet(t, spec, 9, &a), opt)
	if err != nil {
		t.Fatal(err)
	}
	sub := randomSubnet(t, spec, 9, &a)
	for i := range 2 {
		again, err := Export(sub, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("export %d differs from the first (%d vs %d bytes)", i, len(again), len(first))
		}
	}
	other, err := Export(randomSubnet(t, spec, 10, &a), opt)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, other) {
		t.Fatal("different weights gave identical files")
	}
}

// TestGraphLayout checks the structure the package doc promises.
func TestGraphLayout(t *testing.T) {
	tests := []struct {
		name    string
		spec    *supernet.Spec
		ops     map[string]int
		noClip  bool
		hasSame bool
	}{
		// OFA smallest: 1 + 1 + 10 blocks; first block has no expand; SE in stages 2, 4, 5.
		{"ofa", supernet.OFAMobileNetV3(1.0, 10), map[string]int{
			"Conv": 1 + 2 + 10*3 + 6*2 + 2, "GlobalAveragePool": 6 + 1, "HardSigmoid": 6, "Mul": 6,
			"Flatten": 1, "Gemm": 1, "Clip": 0, "BatchNormalization": 0,
		}, true, false},
		{"mbv2", supernet.MobileNetV2Space(10), map[string]int{
			"HardSwish": 0, "HardSigmoid": 0, "GlobalAveragePool": 1, "Gemm": 1, "BatchNormalization": 0,
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := randomSubnet(t, tt.spec, 1, nil)
			data, err := Export(sub, Options{ProducerVersion: "9.9"})
			if err != nil {
				t.Fatal(err)
			}
			var m onnx.ModelProto
			if err := proto.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if m.IrVersion != IRVersion || len(m.OpsetImport) != 1 || m.OpsetImport[0].Version != Opset ||
				m.OpsetImport[0].Domain != "" || m.ProducerName != "natgw" || m.ProducerVersion != "9.9" {
				t.Errorf("header: ir %d opset %v producer %q %q", m.IrVersion, m.OpsetImport, m.ProducerName, m.ProducerVersion)
			}
			g := m.Graph
			r := int64(sub.Resolution)
			checkValue(t, g.Input, InputName, "batch", 3, r, r)
			checkValue(t, g.Output, OutputName, "batch", 10)
			ops := map[string]int{}
			names := map[string]bool{}
			for _, n := range g.Node {
				ops[n.OpType]++
				if names[n.Name] || n.Name == "" {
					t.Errorf("node name %q empty or repeated", n.Name)
				}
				names[n.Name] = true
			}
			for op, want := range tt.ops {
				if ops[op] != want {
					t.Errorf("%d %s nodes, want %d (all: %v)", ops[op], op, want, ops)
				}
			}
			if (ops["Clip"] == 0) != tt.noClip {
				t.Errorf("Clip count %d", ops["Clip"])
			}
			if (asymmetricConvs(t, data) > 0) != tt.hasSame {
				t.Errorf("asymmetric pads present = %v, want %v", !tt.hasSame, tt.hasSame)
			}
			inits := map[string]bool{}
			for _, in := range g.Initializer {
				if inits[in.Name] {
					t.Errorf("initializer %q repeated", in.Name)
				}
				inits[in.Name] = true
				if in.DataType != int32(onnx.TensorProto_FLOAT) || in.DocString != "" {
					t.Errorf("initializer %q: type %d doc %q", in.Name, in.DataType, in.DocString)
				}
				n := int64(1)
				for _, d := range in.Dims {
					n *= d
				}
				if int64(len(in.RawData)) != 4*n {
					t.Errorf("initializer %q: %d bytes for dims %v", in.Name, len(in.RawData), in.Dims)
				}
			}
			for _, want := range []string{"first_conv.weight", "first_conv.bias", "blocks.0.dw.weight", "blocks.1.expand.weight", "classifier.weight"} {
				if !inits[want] {
					t.Errorf("initializer %q missing", want)
				}
			}
			keys := make([]string, len(m.MetadataProps))
			for i, p := range m.MetadataProps {
				keys[i] = p.Key
			}
			if !slices.IsSorted(keys) || len(keys) != 12 {
				t.Errorf("metadata keys not sorted or not 12: %v", keys)
			}
		})
	}
}

func checkValue(t *testing.T, vs []*onnx.ValueInfoProto, name, batch string, dims ...int64) {
	t.Helper()
	if len(vs) != 1 || vs[0].Name != name {
		t.Fatalf("want one value %q, got %v", name, vs)
	}
	tt := vs[0].GetType().GetTensorType()
	if tt.GetElemType() != int32(onnx.TensorProto_FLOAT) {
		t.Errorf("%s: element type %d", name, tt.GetElemType())
	}
	d := tt.GetShape().GetDim()
	if len(d) != len(dims)+1 || d[0].GetDimParam() != batch {
		t.Fatalf("%s: shape %v", name, d)
	}
	for i, v := range dims {
		if d[i+1].GetDimValue() != v {
			t.Errorf("%s: dim %d is %v, want %d", name, i+1, d[i+1], v)
		}
	}
}

func TestExportErrors(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 3)
	pp96 := preprocess.DefaultSpec(96)
	badPP := preprocess.DefaultSpec(128)
	badPP.Std[1] = 0
	tests := []struct {
		name   string
		mutate func(*supernet.Subnet)
		opt    Options
		want   string
	}{
		{"labels count", nil, Options{Labels: []string{"a", "b"}}, "2 labels for 3 classes"},
		{"empty label", nil, Options{Labels: []string{"a", "", "c"}}, "label 1"},
		{"label with newline", nil, Options{Labels: []string{"a", "b\nc", "d"}}, "label 1"},
		{"label not utf8", nil, Options{Labels: []string{"a", "\xff", "d"}}, "label 1"},
		{"preprocess resolution", nil, Options{Preprocess: &pp96}, "preprocess resolution 96"},
		{"preprocess invalid", nil, Options{Preprocess: &badPP}, "std[1]"},
		{"task control char", nil, Options{Task: "a\tb"}, "task"},
		{"padding", func(s *supernet.Subnet) { s.Padding = "valid" }, Options{}, `padding "valid"`},
		{"activation", func(s *supernet.Subnet) { s.Blocks[1].Depthwise.Act = "gelu" }, Options{}, `activation "gelu"`},
		{"truncated weight", func(s *supernet.Subnet) { s.Blocks[2].Project.Weight = s.Blocks[2].Project.Weight[1:] }, Options{}, "blocks.2.project"},
		{"bn width", func(s *supernet.Subnet) { s.Stem.BN.Var = s.Stem.BN.Var[:3] }, Options{}, "first_conv: BatchNorm"},
		{"classifier", func(s *supernet.Subnet) { s.Classifier.In++ }, Options{}, "classifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := randomSubnet(t, spec, 1, nil)
			if tt.mutate != nil {
				tt.mutate(sub)
			}
			_, err := Export(sub, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Export(nil, Options{}); err == nil {
		t.Fatal("nil subnet exported")
	}
}

// TestCheckerGolden runs onnx.checker on the golden exports (parity tests check theirs).
func TestCheckerGolden(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, c := range goldenCases(t) {
		data, err := Export(c.sub, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	checkONNX(t, paths...)
}
