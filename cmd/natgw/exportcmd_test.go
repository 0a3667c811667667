package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/internal/testtask"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// exportFixture is a native checkpoint of a seeded random 3-class OFA supernet plus an
// arch and a test image, all in a temporary directory.
type exportFixture struct {
	dir, ckpt, arch, image string
	spec                   *supernet.Spec
}

func newExportFixture(t *testing.T) exportFixture {
	t.Helper()
	dir := t.TempDir()
	spec := supernet.OFAMobileNetV3(1.0, 3)
	sn, err := supernet.Random(spec, 5)
	if err != nil {
		t.Fatal(err)
	}
	sn.Meta[supernet.MetaVersion] = "7"
	arch := spec.Uniform(5, 4, 2, 160)
	img := image.NewRGBA(image.Rect(0, 0, 150, 100))
	for y := range 100 {
		for x := range 150 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(2 * y), uint8(x ^ y), 255})
		}
	}
	// Random weights give logits of ~1e-4 and near-uniform probabilities; scale the
	// classifier so this image's logits reach ±3 and the printed probabilities differ.
	sub, err := sn.Extract(arch)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*160*160)
	if err := preprocess.DefaultSpec(160).Tensor(preprocess.FromImage(img), x); err != nil {
		t.Fatal(err)
	}
	logits, err := sub.Compile().Forward(context.Background(), x, 1, 160, 160)
	if err != nil {
		t.Fatal(err)
	}
	peak := 0.0
	for _, v := range logits {
		peak = math.Max(peak, math.Abs(float64(v)))
	}
	cw := sn.Tensor("classifier.linear.weight")
	for i := range cw {
		cw[i] = float32(float64(cw[i]) * 3 / peak)
	}
	ckpt := filepath.Join(dir, "sn.safetensors")
	if err := sn.Save(ckpt, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	imgPath := filepath.Join(dir, "img.png")
	if err := os.WriteFile(imgPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return exportFixture{dir: dir, ckpt: ckpt, arch: string(arch.JSON()), image: imgPath, spec: spec}
}

func TestExportCommand(t *testing.T) {
	fx := newExportFixture(t)
	labels := filepath.Join(fx.dir, "labels.txt")
	if err := os.WriteFile(labels, []byte("cat\r\ndog\nsea lion\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(fx.dir, "m.onnx")
	_, stderr, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", out,
		"--task", "pets", "--labels", labels, "--preprocess", `{"crop_fraction":0.875}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "wrote "+out) {
		t.Errorf("stderr %q", stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md, err := exporter.ReadMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	pp := preprocess.DefaultSpec(160)
	pp.CropFraction = 0.875
	if md.Task != "pets" || strings.Join(md.Labels, "|") != "cat|dog|sea lion" || md.Preprocess != pp ||
		md.SupernetID != "random-5" || md.SupernetVersion != "7" || md.Resolution != 160 ||
		md.Spec != fx.spec.Name || string(md.Arch.JSON()) != fx.arch {
		t.Fatalf("metadata %+v", md)
	}

	// The same export through the command again gives the same bytes.
	out2 := filepath.Join(fx.dir, "m2.onnx")
	if _, _, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", out2,
		"--task", "pets", "--labels", labels, "--preprocess", `{"crop_fraction":0.875}`); err != nil {
		t.Fatal(err)
	}
	if data2, _ := os.ReadFile(out2); !bytes.Equal(data, data2) {
		t.Fatal("two exports of the same subnet differ")
	}
}

func TestExportCommandErrors(t *testing.T) {
	fx := newExportFixture(t)
	two := filepath.Join(fx.dir, "two.txt")
	blank := filepath.Join(fx.dir, "blank.txt")
	os.WriteFile(two, []byte("a\nb\n"), 0o644)
	os.WriteFile(blank, []byte("a\n\nb\n"), 0o644)
	out := filepath.Join(fx.dir, "x.onnx")
	base := []string{"export", "--supernet", fx.ckpt, "--out", out}
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"unknown arch field", append(base, "--arch", `{"ks":[],"e":[],"d":[],"r":128,"w":2}`), `unknown field "w"`, false},
		{"arch outside space", append(base, "--arch", strings.Replace(fx.arch, `"r":160`, `"r":150`, 1)), "r: 150", false},
		{"missing checkpoint", []string{"export", "--supernet", filepath.Join(fx.dir, "nope.pth"), "--arch", fx.arch, "--out", out}, "no such file", false},
		{"labels count", append(base, "--arch", fx.arch, "--labels", two), "2 labels, but the supernet has 3 classes", false},
		{"blank label", append(base, "--arch", fx.arch, "--labels", blank), "line 2 is empty", false},
		{"missing labels file", append(base, "--arch", fx.arch, "--labels", filepath.Join(fx.dir, "none.txt")), "no such file", false},
		{"preprocess unknown field", append(base, "--arch", fx.arch, "--preprocess", `{"gamma":1}`), `unknown field "gamma"`, false},
		{"preprocess resolution", append(base, "--arch", fx.arch, "--preprocess", `{"resolution":224}`), "preprocess resolution 224", false},
		{"missing out", []string{"export", "--supernet", fx.ckpt, "--arch", fx.arch}, "--out is required", true},
		{"stray argument", append(base, "--arch", fx.arch, "extra"), "unexpected argument", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if (exitCode(err) == 2) != tt.usage {
				t.Fatalf("exit code %d for %v", exitCode(err), err)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Fatal("a failed export left an output file")
			}
		})
	}
}

// requireORTLib skips (or fails with NATGW_REQUIRE_ORT=1) when onnxruntime is not installed.
func requireORTLib(t *testing.T) {
	t.Helper()
	if _, err := onnxrt.ResolveLibraryPath(onnxrt.Config{}); err != nil {
		msg := "onnxruntime library missing: run scripts/install-onnxruntime.sh (or set ONNXRUNTIME_LIB): " + err.Error()
		if os.Getenv("NATGW_REQUIRE_ORT") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func TestInferCommand(t *testing.T) {
	requireORTLib(t)
	fx := newExportFixture(t)
	model := filepath.Join(fx.dir, "m.onnx")
	if _, _, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", model,
		"--preprocess", `{"crop_fraction":0.875}`); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCLI(t, "infer", "--model", model, "--image", fx.image, "--top", "10", "--threads", "1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 { // --top beyond the class count prints every class
		t.Fatalf("output %q", stdout)
	}
	var sum float64
	prev := 2.0
	var labels []string
	for _, l := range lines {
		label, p, ok := strings.Cut(l, "\t")
		prob, err := strconv.ParseFloat(p, 64)
		if !ok || err != nil || prob > prev || prob < 0 {
			t.Fatalf("line %q: want label<TAB>probability in descending order", l)
		}
		prev, sum = prob, sum+prob
		labels = append(labels, label)
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Fatalf("probabilities sum to %v", sum)
	}
	if first, _ := strconv.ParseFloat(strings.Split(lines[0], "\t")[1], 64); first-prev < 0.05 {
		t.Fatalf("probabilities nearly uniform (%q): the comparison below would be weak", stdout)
	}

	// Reference: the Go forward on the image preprocessed as the metadata says.
	sn, err := supernet.Load(fx.ckpt, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := supernet.ParseArch([]byte(fx.arch))
	sub, err := sn.Extract(arch)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(fx.image)
	img, err := preprocess.Decode(f, preprocess.Limits{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pp := preprocess.DefaultSpec(160)
	pp.CropFraction = 0.875
	x := make([]float32, pp.TensorLen())
	if err := pp.Tensor(img, x); err != nil {
		t.Fatal(err)
	}
	logits, err := sub.Compile().Forward(context.Background(), x, 1, 160, 160)
	if err != nil {
		t.Fatal(err)
	}
	probs := scores.Softmax(logits)
	for i, l := range lines {
		label, p, _ := strings.Cut(l, "\t")
		idx := int(label[len(label)-1] - '0') // class_<i>
		got, _ := strconv.ParseFloat(p, 64)
		if math.Abs(got-probs[idx]) > 1e-4 {
			t.Errorf("line %d: %s has probability %v, Go forward gives %v", i, label, got, probs[idx])
		}
	}

	stdout, _, err = runCLI(t, "infer", "--model", model, "--image", fx.image, "--top", "1")
	if err != nil || stdout != lines[0]+"\n" {
		t.Fatalf("--top 1: %q, %v (want %q)", stdout, err, lines[0])
	}
}

func TestInferCommandErrors(t *testing.T) {
	requireORTLib(t)
	fx := newExportFixture(t)
	model := filepath.Join(fx.dir, "m.onnx")
	if _, _, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", model); err != nil {
		t.Fatal(err)
	}
	notImage := filepath.Join(fx.dir, "notes.txt")
	os.WriteFile(notImage, []byte("not an image"), 0o644)
	notModel := filepath.Join(fx.dir, "junk.onnx")
	os.WriteFile(notModel, []byte("\x08\x08junk that is not protobuf"), 0o644)
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"missing model", []string{"infer", "--model", filepath.Join(fx.dir, "none.onnx"), "--image", fx.image}, "no such file", false},
		{"not a model", []string{"infer", "--model", notModel, "--image", fx.image}, "not an ONNX model", false},
		{"checkpoint as model", []string{"infer", "--model", fx.ckpt, "--image", fx.image}, "model", false},
		{"missing image", []string{"infer", "--model", model, "--image", filepath.Join(fx.dir, "none.png")}, "no such file", false},
		{"not an image", []string{"infer", "--model", model, "--image", notImage}, "not a JPEG or PNG", false},
		{"top zero", []string{"infer", "--model", model, "--image", fx.image, "--top", "0"}, "--top 0", true},
		{"no image flag", []string{"infer", "--model", model}, "--image is required", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if (exitCode(err) == 2) != tt.usage {
				t.Fatalf("exit code %d for %v", exitCode(err), err)
			}
			if stdout != "" || strings.Contains(oneLine(err), "\n") {
				t.Fatalf("stdout %q, error %q", stdout, oneLine(err))
			}
		})
	}
}

// TestExportCalib: --calib-data exports the subnet with BatchNorm statistics rebuilt on
// train images preprocessed as exported; onnxruntime on that file agrees with the Go
// forward of the subnet recalibrated on the same images, and not with the plain subnet.
func TestExportCalib(t *testing.T) {
	requireORTLib(t)
	fx := newExportFixture(t)
	data := filepath.Join(fx.dir, "data")
	var calib []string
	for c, class := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(data, "train", class), 0o755)
		for i := range 3 {
			p := filepath.Join(data, "train", class, fmt.Sprintf("%d.png", i))
			os.WriteFile(p, testtask.SolidPNG(t, uint8(20+100*c+30*i), 24), 0o644)
			calib = append(calib, p)
		}
	}
	model := filepath.Join(fx.dir, "calib.onnx")
	_, stderr, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", model, "--calib-data", data)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if !strings.Contains(stderr, "rebuilt on 6 images") {
		t.Errorf("stderr %q", stderr)
	}
	stdout, _, err := runCLI(t, "infer", "--model", model, "--image", fx.image, "--top", "3", "--threads", "1")
	if err != nil {
		t.Fatal(err)
	}

	sn, err := supernet.Load(fx.ckpt, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := supernet.ParseArch([]byte(fx.arch))
	pp := preprocess.DefaultSpec(160)
	tensor := func(path string) []float32 {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := preprocess.Decode(f, preprocess.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, pp.TensorLen())
		if err := pp.Tensor(img, x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	var batch []float32 // one batch of six: the statistics do not depend on the order
	for _, p := range calib {
		batch = append(batch, tensor(p)...)
	}
	x := tensor(fx.image)
	probs := func(recalibrate bool) []float64 {
		sub, err := sn.Extract(arch)
		if err != nil {
			t.Fatal(err)
		}
		if recalibrate {
			err := sub.Recalibrate(context.Background(), func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
				return fn(batch, len(calib), 160, 160)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		logits, err := sub.Compile().Forward(context.Background(), x, 1, 160, 160)
		if err != nil {
			t.Fatal(err)
		}
		return scores.Softmax(logits)
	}
	want, plain := probs(true), probs(false)
	var apart float64
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		label, p, _ := strings.Cut(l, "\t")
		idx := int(label[len(label)-1] - '0') // class_<i>
		got, _ := strconv.ParseFloat(p, 64)
		if math.Abs(got-want[idx]) > 1e-4 {
			t.Errorf("line %d: %s has probability %v, the recalibrated Go forward gives %v", i, label, got, want[idx])
		}
		apart = max(apart, math.Abs(got-plain[idx]))
	}
	if apart < 1e-3 {
		t.Fatalf("the calibrated export matches the plain subnet (within %g): the check above proves nothing", apart)
	}
	if _, _, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", model, "--calib-data", data, "--calib", "0"); err == nil {
		t.Error("--calib 0 accepted")
	}
	if _, _, err := runCLI(t, "export", "--supernet", fx.ckpt, "--arch", fx.arch, "--out", model, "--calib-data", filepath.Join(fx.dir, "none")); err == nil {
		t.Error("a missing --calib-data folder accepted")
	}
}
