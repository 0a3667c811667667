package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/cpu"
	"github.com/natgw/natgw/internal/testtask"
	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/supernet"
)

// TestTrainCommand runs two steps on a tiny generated data set and checks the command's
// contract: the trained supernet is written and the last stdout line is JSON with steps,
// images_per_sec and final_loss.
func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	ckpt := testtask.Checkpoint(t, dir, 2, []int{32})
	data := filepath.Join(dir, "data")
	for _, split := range []string{"train", "val"} {
		for c, class := range []string{"a", "b"} {
			os.MkdirAll(filepath.Join(data, split, class), 0o755)
			for i := range 4 {
				os.WriteFile(filepath.Join(data, split, class, string(rune('p'+i))+".png"), testtask.SolidPNG(t, uint8(60+150*c), 24), 0o644)
			}
		}
	}
	out := filepath.Join(dir, "out.safetensors")
	stdout, stderr, err := runCLI(t, "train", "--supernet", ckpt, "--data", data, "--resolution", "32", "--batch", "4",
		"--epochs", "1", "--max-steps", "2", "--subnets", "1", "--calib", "4", "--workers", "1", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res struct {
		Steps        *int     `json:"steps"`
		ImagesPerSec *float64 `json:"images_per_sec"`
		FinalLoss    *float64 `json:"final_loss"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\n%s", err, stdout)
	}
	if res.Steps == nil || *res.Steps != 2 || res.ImagesPerSec == nil || *res.ImagesPerSec <= 0 || res.FinalLoss == nil || *res.FinalLoss <= 0 {
		t.Fatalf("result %s", lines[len(lines)-1])
	}
	trained, err := supernet.Load(out, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if trained.Spec.Name != "tiny" {
		t.Fatalf("trained spec %s", trained.Spec.Name)
	}
	if got := trained.Meta["train_blas"]; got != cpu.BLAS() {
		t.Fatalf("train_blas %q, want the kernel that trained it, %q", got, cpu.BLAS())
	}
	// A progressive-shrinking phase: kernel only, distilled from a frozen teacher.
	// Also at two input sizes per step, validated at --resolution, the top at both every step.
	stdout, stderr, err = runCLI(t, "train", "--supernet", ckpt, "--data", data, "--resolution", "32", "--batch", "4",
		"--max-steps", "2", "--subnets", "1", "--calib", "4", "--workers", "1", "--elastic", "ks", "--teacher", ckpt,
		"--resolutions", "24,32", "--top-sizes", "24,32", "--out", filepath.Join(dir, "ps.safetensors"))
	if err != nil {
		t.Fatalf("--elastic ks --teacher --resolutions: %v\n%s", err, stderr)
	}
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	var ps struct {
		Config struct {
			Elastic, Teacher string
			Resolutions      []int
			TopSizes         []int `json:"top_sizes"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ps); err != nil || ps.Config.Elastic != "ks" || ps.Config.Teacher != ckpt ||
		len(ps.Config.Resolutions) != 2 || len(ps.Config.TopSizes) != 2 {
		t.Fatalf("phase summary %s (%v)", lines[len(lines)-1], err)
	}
	// The top taught by itself at its largest size: recorded in the summary.
	stdout, stderr, err = runCLI(t, "train", "--supernet", ckpt, "--data", data, "--resolution", "32", "--batch", "4",
		"--max-steps", "1", "--subnets", "0", "--calib", "4", "--workers", "1", "--top-sizes", "24,40", "--top-kd",
		"--top-kd-weight", "2", "--out", filepath.Join(dir, "kd.safetensors"))
	if err != nil {
		t.Fatalf("--top-sizes --top-kd: %v\n%s", err, stderr)
	}
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	var kd struct {
		Config struct {
			TopKD       bool    `json:"top_kd"`
			TopKDWeight float64 `json:"top_kd_weight"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &kd); err != nil || !kd.Config.TopKD || kd.Config.TopKDWeight != 2 {
		t.Fatalf("summary %s (%v): top_kd or top_kd_weight not recorded", lines[len(lines)-1], err)
	}
	for _, bad := range [][]string{
		{"--top-kd"}, // without --top-sizes
		{"--top-kd", "--top-sizes", "32", "--teacher", ckpt},
		{"--top-kd-weight", "2", "--top-sizes", "32"}, // without --top-kd
		{"--top-kd-weight", "-1", "--top-sizes", "32", "--top-kd"},
		{"--elastic", "kernel"},
		{"--resolutions", "32,7"},
		{"--top-sizes", "32,7"},
		{"--top-sizes", "32", "--fixed", `{"ks":[3,3],"e":[2,2],"d":[2],"r":32}`},
		{"--teacher", testtask.Checkpoint(t, t.TempDir(), 3, []int{32})}, // 3 classes, the data has 2
	} {
		args := append([]string{"train", "--supernet", ckpt, "--data", data, "--resolution", "32", "--batch", "4",
			"--max-steps", "1", "--workers", "1", "--out", filepath.Join(dir, "bad.safetensors")}, bad...)
		if _, _, err := runCLI(t, args...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, _, err := runCLI(t, "train", "--supernet", ckpt, "--data", filepath.Join(dir, "nope"), "--resolution", "32",
		"--batch", "4", "--epochs", "1", "--out", out); err == nil {
		t.Fatal("missing data folder accepted")
	}
}

// TestImportTFLiteCommand imports the shared MobileNetV2 with a few calibration images and
// checks the written supernet is the MobileNetV2 space with 1001 classes.
func TestImportTFLiteCommand(t *testing.T) {
	src := testutil.Shared(t, "data/pretrained-mobilenet-tflite")
	calib := testutil.Shared(t, "data/flowers102/train/001")
	out := filepath.Join(t.TempDir(), "mbv2.safetensors")
	_, stderr, err := runCLI(t, "import-tflite", "--model", filepath.Join(src, "mobilenet_v2_1.0_224_quant.tflite"),
		"--labels", filepath.Join(src, "imagenet_labels.txt"), "--calib", calib, "--calib-images", "8", "--resolution", "96",
		"--batch", "8", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	sn, err := supernet.Load(out, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Spec.Name != supernet.MobileNetV2Space(1001).Name || sn.Spec.Classes != 1001 {
		t.Fatalf("imported %s with %d classes", sn.Spec.Name, sn.Spec.Classes)
	}
	if _, _, err := runCLI(t, "import-tflite", "--model", filepath.Join(src, "LICENSE"), "--labels", filepath.Join(src, "imagenet_labels.txt"),
		"--calib", calib, "--out", out); err == nil {
		t.Fatal("a non-TFLite file was accepted")
	}
}
