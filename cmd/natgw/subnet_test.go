package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/supernet"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// tinySupernet writes a small random supernet in the native format.
func tinySupernet(t *testing.T) (string, *supernet.Spec) {
	t.Helper()
	spec := supernet.OFAMobileNetV3(1.0, 4)
	sn, err := supernet.Random(spec, 9)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := sn.Save(p, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return p, spec
}

func TestSubnetInfoMatchesOFA(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	var c struct {
		Config     supernet.Arch `json:"config"`
		Resolution int           `json:"resolution"`
		MAdds      int64         `json:"madds_exact"`
		Params     int64         `json:"params"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "A3_random.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c.Config.R = c.Resolution
	archFile := filepath.Join(t.TempDir(), "arch.json")
	os.WriteFile(archFile, c.Config.JSON(), 0o644)
	out, _, err := runCLI(t, "subnet", "info", "--supernet", filepath.Join(dir, "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"), "--arch", "@"+archFile)
	if err != nil {
		t.Fatal(err)
	}
	var info subnetInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if info.MAdds != c.MAdds || info.Params != c.Params || info.Resolution != c.Resolution {
		t.Fatalf("info %+v, OFA madds %d params %d", info, c.MAdds, c.Params)
	}
}

func TestSubnetForwardMatchesOFA(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	var c struct {
		Config     supernet.Arch `json:"config"`
		Resolution int           `json:"resolution"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "A0_smallest.json"))
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c.Config.R = c.Resolution
	out := filepath.Join(t.TempDir(), "logits.bin")
	_, stderr, err := runCLI(t, "subnet", "forward", "--supernet", filepath.Join(dir, "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"),
		"--arch", c.Config.String(), "--input", filepath.Join(dir, "A0_smallest_input.bin"), "--shape", "2,3,128,128", "--output", out)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	got := testutil.ReadF32(t, out)
	want := testutil.ReadF32(t, filepath.Join(dir, "A0_smallest_logits.bin"))
	if len(got) != len(want) {
		t.Fatalf("%d logits, want %d", len(got), len(want))
	}
	if d := testutil.MaxAbsDiff(t, got, want); d > 1e-4 {
		t.Fatalf("logits max abs diff %g", d)
	}
}

func TestCLIErrors(t *testing.T) {
	ckpt, spec := tinySupernet(t)
	dir := t.TempDir()
	arch := spec.Smallest().String()
	in := filepath.Join(dir, "in.bin")
	os.WriteFile(in, make([]byte, 4*3*128*128-4), 0o644) // one value short
	trunc := filepath.Join(dir, "trunc.safetensors")
	full, _ := os.ReadFile(ckpt)
	os.WriteFile(trunc, full[:len(full)/2], 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command", 2},
		{"missing flag", []string{"subnet", "info", "--supernet", ckpt}, "--arch is required", 2},
		{"unknown arch field", []string{"subnet", "info", "--supernet", ckpt, "--arch", `{"ks":[3],"x":1}`}, `unknown field "x"`, 1},
		{"arch outside space", []string{"subnet", "info", "--supernet", ckpt, "--arch", strings.Replace(arch, `"r":128`, `"r":100`, 1)}, "r: 100 not in", 1},
		{"missing checkpoint", []string{"subnet", "info", "--supernet", filepath.Join(dir, "nope"), "--arch", arch}, "no such file", 1},
		{"truncated checkpoint", []string{"subnet", "info", "--supernet", trunc, "--arch", arch}, "trunc.safetensors", 1},
		{"bad shape", []string{"subnet", "forward", "--supernet", ckpt, "--arch", arch, "--input", in, "--shape", "1,4,128,128", "--output", filepath.Join(dir, "o")}, "3 channels", 2},
		{"short input", []string{"subnet", "forward", "--supernet", ckpt, "--arch", arch, "--input", in, "--shape", "1,3,128,128", "--output", filepath.Join(dir, "o")}, "needs 196608", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(oneLine(err), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tc.want)
			}
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit code %d, want %d", got, tc.code)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Fatal("a failed forward left an output file")
	}
}

func TestSupernetConvert(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	out := filepath.Join(t.TempDir(), "ofa.safetensors")
	if _, stderr, err := runCLI(t, "supernet", "convert", "--in", filepath.Join(dir, "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"), "--out", out, "--id", "ofa-fixture", "--version", "1"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	sn, err := supernet.Load(out, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Meta[supernet.MetaID] != "ofa-fixture" || sn.Spec.Classes != 102 {
		t.Fatalf("meta %v classes %d", sn.Meta, sn.Spec.Classes)
	}
	// And back to OFA's torch layout.
	pth := filepath.Join(t.TempDir(), "back.pth")
	if _, stderr, err := runCLI(t, "supernet", "convert", "--in", out, "--out", pth); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	back, err := supernet.Load(pth, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sn.Params() {
		q, _ := back.Param(p.Name)
		if testutil.MaxAbsDiff(t, p.Data, q.Data) != 0 {
			t.Fatalf("%s changed on the way back to .pth", p.Name)
		}
	}
	if _, _, err := runCLI(t, "supernet", "convert", "--in", out, "--out", pth, "--half"); err == nil {
		t.Fatal("--half with a .pth output accepted")
	}
}

func TestSupernetAverage(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for seed := range uint64(2) {
		sn, err := supernet.Random(supernet.MobileNetV2Space(4), seed+1)
		if err != nil {
			t.Fatal(err)
		}
		sn.Meta[supernet.MetaVersion] = fmt.Sprint("v", seed)
		p := filepath.Join(dir, fmt.Sprintf("in%d.safetensors", seed))
		if err := sn.Save(p, supernet.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, half := range []bool{false, true} {
		out := filepath.Join(dir, fmt.Sprintf("avg-%v.safetensors", half))
		if _, stderr, err := runCLI(t, "supernet", "average", "--in", strings.Join(paths, ","), "--out", out, fmt.Sprintf("--half=%v", half)); err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		avg, err := supernet.Load(out, supernet.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := avg.Meta[supernet.MetaVersion]; v != avg.Digest() {
			t.Errorf("half %v: version %q, want the written tensors' %q", half, v, avg.Digest())
		}
		a, _ := supernet.Load(paths[0], supernet.LoadOptions{})
		b, _ := supernet.Load(paths[1], supernet.LoadOptions{})
		tol := 1e-6
		if half {
			tol = 2e-3
		}
		for _, p := range avg.Params() {
			x, y := a.Tensor(p.Name), b.Tensor(p.Name)
			for j, v := range p.Data {
				want := (float64(x[j]) + float64(y[j])) / 2
				if math.Abs(float64(v)-want) > tol*max(1, math.Abs(want)) {
					t.Fatalf("half %v: %s[%d] = %g, want %g", half, p.Name, j, v, want)
				}
			}
		}
	}
	other, err := supernet.Random(supernet.MobileNetV2Space(5), 1)
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(dir, "other.safetensors")
	if err := other.Save(otherPath, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"one input", paths[0], "two or more"},
		{"other spec", paths[0] + "," + otherPath, "spec"},
		{"missing file", paths[0] + "," + filepath.Join(dir, "nope.safetensors"), "nope.safetensors"},
	} {
		out := filepath.Join(dir, "refused.safetensors")
		_, stderr, err := runCLI(t, "supernet", "average", "--in", tc.in, "--out", out)
		if err == nil || !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%s: err %v, stderr %q; want one with %q", tc.name, err, stderr, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: wrote %s", tc.name, out)
		}
	}
}
