// Package testutil holds the helpers natgw's tests share: finding the repository
// root and the read-only shared material, reading raw float32 fixtures, comparing
// float32 outputs, writing PNG images for small data sets, and finding a python3 that can
// serve as a reference tool.
//
// Import it from _test.go files only; it depends on package testing.
//
// Environment:
//   - NATGW_SHARED: the shared material folder (relative paths are taken from the
//     repository root); default <repo>/../shared.
//   - NATGW_REQUIRE_SHARED=1: missing shared material fails the test instead of skipping it.
//   - NATGW_PYTHON: the python3 to try first for reference checks.
package testutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot walks up from the working directory (the package folder under go test)
// to the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Shared returns rel (slash-separated) inside the shared material folder:
// $NATGW_SHARED, or <repo>/../shared when unset. When that path is missing the
// test is skipped, or fails under NATGW_REQUIRE_SHARED=1, so that CI without the
// material stays green while a machine that must have it cannot skip silently.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	root := os.Getenv("NATGW_SHARED")
	switch {
	case root == "":
		root = filepath.Join(RepoRoot(t), "..", "shared")
	case !filepath.IsAbs(root):
		root = filepath.Join(RepoRoot(t), root)
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	_, err := os.Stat(p)
	switch {
	case err == nil:
		return p
	case !errors.Is(err, fs.ErrNotExist):
		// Present but unreadable is a broken setup, not absent material.
		t.Fatalf("shared material %s: %v", p, err)
	}
	msg := fmt.Sprintf("shared material %s not found: set NATGW_SHARED to the shared folder (default <repo>/../shared)", p)
	if os.Getenv("NATGW_REQUIRE_SHARED") == "1" {
		t.Fatal(msg + " [NATGW_REQUIRE_SHARED=1]")
	}
	t.Skip(msg + "; NATGW_REQUIRE_SHARED=1 makes this a failure")
	return ""
}

// ReadF32 reads a raw little-endian float32 file (the format of the parity
// fixtures' .bin tensors). A length that is not a multiple of 4 fails the test.
func ReadF32(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeF32(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func decodeF32(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of float32", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// MaxAbsDiff returns max |a[i]-b[i]|. Different lengths or a NaN on either side
// fail the test: a NaN would otherwise compare false against any tolerance and pass.
func MaxAbsDiff(t testing.TB, a, b []float32) float64 {
	t.Helper()
	d, err := maxAbsDiff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func maxAbsDiff(a, b []float32) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("max abs diff: lengths %d and %d differ", len(a), len(b))
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return 0, fmt.Errorf("max abs diff: NaN at %d (%v vs %v)", i, a[i], b[i])
		}
		m = max(m, d)
	}
	return m, nil
}

// Python returns a python3 that imports all of modules, trying $NATGW_PYTHON (when
// set), then /usr/bin/python3 (Debian's, which carries the python3-* reference
// packages), then python3 on PATH. When none does, the test fails if the env var
// named by env is "1" (e.g. NATGW_REQUIRE_TORCH) and is skipped otherwise; an empty
// env always skips.
func Python(t testing.TB, env string, modules ...string) string {
	t.Helper()
	imports := "import sys"
	if len(modules) > 0 {
		imports = "import " + strings.Join(modules, ", ")
	}
	cands := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("NATGW_PYTHON"); p != "" {
		cands = append([]string{p}, cands...)
	}
	var tried []string
	seen := map[string]bool{}
	for _, c := range cands {
		p, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: not found", c))
			continue
		}
		if seen[p] {
			continue // python3 on PATH is often /usr/bin/python3 itself
		}
		seen[p] = true
		out, err := exec.CommandContext(t.Context(), p, "-c", imports).CombinedOutput()
		if err == nil {
			return p
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", p, err, lastLine(out)))
	}
	msg := fmt.Sprintf("no python3 that can %q (set NATGW_PYTHON); tried %s", imports, strings.Join(tried, "; "))
	if env != "" && os.Getenv(env) == "1" {
		t.Fatalf("%s [%s=1]", msg, env)
	}
	if env != "" {
		msg += "; " + env + "=1 makes this a failure"
	}
	t.Skip(msg)
	return ""
}

// lastLine keeps an interpreter's error short: the last line of a traceback names it.
func lastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// WritePNG encodes img as a PNG file at path, creating its folder: tests build small
// image-folder data sets from it.
func WritePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
