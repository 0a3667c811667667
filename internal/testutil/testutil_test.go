package testutil

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a helper ended: "" (returned), "skip" or "fatal", with the message.
// It embeds the real test for everything else (Helper, Context, TempDir).
type fakeTB struct {
	testing.TB
	kind, msg string
}

func (f *fakeTB) Fatal(args ...any)                 { f.end("fatal", fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.end("fatal", fmt.Sprintf(format, args...)) }
func (f *fakeTB) FailNow()                          { f.end("fatal", "") }
func (f *fakeTB) Skip(args ...any)                  { f.end("skip", fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.end("skip", fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                          { f.end("skip", "") }

// end stops the helper's goroutine the way the real methods do.
func (f *fakeTB) end(kind, msg string) {
	f.kind, f.msg = kind, msg
	runtime.Goexit()
}

// run calls fn with a fakeTB on its own goroutine, as Skip and Fatal end it.
func run(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot %s has no go.mod: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testutil")); err != nil {
		t.Fatalf("RepoRoot %s is not this module's root: %v", root, err)
	}
	t.Chdir(t.TempDir())
	if f := run(t, func(tb testing.TB) { RepoRoot(tb) }); f.kind != "fatal" {
		t.Errorf("outside a module: ended %q, want fatal", f.kind)
	}
}

func TestShared(t *testing.T) {
	root := RepoRoot(t)
	abs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(abs, "fixtures", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A relative NATGW_SHARED is taken from the repo root, not the package folder.
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, shared, require, rel string
		want, kind                 string
	}{
		{"absolute", abs, "", "fixtures/x", filepath.Join(abs, "fixtures", "x"), ""},
		{"relative to repo root", rel, "", "fixtures/x", filepath.Join(abs, "fixtures", "x"), ""},
		{"root itself", abs, "1", "", abs, ""},
		{"missing skips", abs, "", "fixtures/none", "", "skip"},
		{"missing skips unless 0 is 1", abs, "0", "fixtures/none", "", "skip"},
		{"missing fails when required", abs, "1", "fixtures/none", "", "fatal"},
		{"missing root fails when required", filepath.Join(abs, "nope"), "1", "", "", "fatal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NATGW_SHARED", tc.shared)
			t.Setenv("NATGW_REQUIRE_SHARED", tc.require)
			var got string
			f := run(t, func(tb testing.TB) { got = Shared(tb, tc.rel) })
			if f.kind != tc.kind {
				t.Fatalf("ended %q (%s), want %q", f.kind, f.msg, tc.kind)
			}
			if got != tc.want {
				t.Errorf("path %q, want %q", got, tc.want)
			}
			if tc.kind != "" && (!strings.Contains(f.msg, "NATGW_SHARED") || !strings.Contains(f.msg, "NATGW_REQUIRE_SHARED")) {
				t.Errorf("message %q does not name NATGW_SHARED and NATGW_REQUIRE_SHARED", f.msg)
			}
		})
	}
	t.Run("default is repo/../shared", func(t *testing.T) {
		t.Setenv("NATGW_SHARED", "")
		t.Setenv("NATGW_REQUIRE_SHARED", "")
		var got string
		f := run(t, func(tb testing.TB) { got = Shared(tb, "") })
		want := filepath.Join(filepath.Dir(root), "shared")
		switch f.kind {
		case "":
			if got != want {
				t.Errorf("path %q, want %q", got, want)
			}
		case "skip":
			if !strings.Contains(f.msg, want) {
				t.Errorf("skip message %q does not name %s", f.msg, want)
			}
		default:
			t.Errorf("ended %q: %s", f.kind, f.msg)
		}
	})
}

func TestReadF32(t *testing.T) {
	dir := t.TempDir()
	le := func(v ...float32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		want []float32
		kind string
	}{
		{"empty", nil, []float32{}, ""},
		{"values", le(1, -2.5, float32(math.Inf(1)), 3e-38), []float32{1, -2.5, float32(math.Inf(1)), 3e-38}, ""},
		{"little endian", []byte{0, 0, 0x80, 0x3f}, []float32{1}, ""},
		{"ragged", []byte{0, 0, 0x80, 0x3f, 0}, nil, "fatal"},
		{"short", []byte{1, 2, 3}, nil, "fatal"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("%d.bin", i))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var got []float32
			f := run(t, func(tb testing.TB) { got = ReadF32(tb, p) })
			if f.kind != tc.kind {
				t.Fatalf("ended %q (%s), want %q", f.kind, f.msg, tc.kind)
			}
			if tc.kind == "" && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if f := run(t, func(tb testing.TB) { ReadF32(tb, filepath.Join(dir, "missing.bin")) }); f.kind != "fatal" {
		t.Errorf("missing file: ended %q, want fatal", f.kind)
	}
}

func TestMaxAbsDiff(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name string
		a, b []float32
		want float64
		kind string
	}{
		{"empty", nil, []float32{}, 0, ""},
		{"equal", []float32{1, 2}, []float32{1, 2}, 0, ""},
		{"max of several", []float32{1, 2, 3}, []float32{1.5, 0, 3}, 2, ""},
		{"float64 arithmetic", []float32{1e30}, []float32{-1e30}, 2 * float64(float32(1e30)), ""},
		{"length mismatch", []float32{1}, []float32{1, 2}, 0, "fatal"},
		{"NaN left", []float32{nan}, []float32{0}, 0, "fatal"},
		{"NaN right", []float32{0, 1}, []float32{0, nan}, 0, "fatal"},
		{"NaN both", []float32{nan}, []float32{nan}, 0, "fatal"},
		{"Inf minus Inf", []float32{inf}, []float32{inf}, 0, "fatal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got float64
			f := run(t, func(tb testing.TB) { got = MaxAbsDiff(tb, tc.a, tc.b) })
			if f.kind != tc.kind {
				t.Fatalf("ended %q (%s), want %q", f.kind, f.msg, tc.kind)
			}
			if got != tc.want {
				t.Errorf("got %g, want %g", got, tc.want)
			}
		})
	}
}

// writeScript writes an executable shell script that stands in for python3.
func writeScript(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPython(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh for stand-in interpreters")
	}
	ok := writeScript(t, "ok", "exit 0")
	bad := writeScript(t, "bad", `echo "ModuleNotFoundError: No module named 'x'" >&2; exit 1`)
	const missing = "natgw_testutil_no_such_module"
	tests := []struct {
		name, python, require string
		modules               []string
		want, kind            string
	}{
		{"NATGW_PYTHON first", ok, "", []string{missing}, ok, ""},
		{"broken NATGW_PYTHON skips", bad, "", []string{missing}, "", "skip"},
		{"broken NATGW_PYTHON fails when required", bad, "1", []string{missing}, "", "fatal"},
		{"absent NATGW_PYTHON fails when required", filepath.Join(t.TempDir(), "none"), "1", []string{missing}, "", "fatal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NATGW_PYTHON", tc.python)
			t.Setenv("NATGW_TESTUTIL_REQUIRE", tc.require)
			var got string
			f := run(t, func(tb testing.TB) { got = Python(tb, "NATGW_TESTUTIL_REQUIRE", tc.modules...) })
			if f.kind != tc.kind {
				t.Fatalf("ended %q (%s), want %q", f.kind, f.msg, tc.kind)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.kind != "" {
				for _, s := range []string{missing, "NATGW_PYTHON", "NATGW_TESTUTIL_REQUIRE", tc.python} {
					if !strings.Contains(f.msg, s) {
						t.Errorf("message %q does not name %s", f.msg, s)
					}
				}
			}
		})
	}
	t.Run("empty env never fails", func(t *testing.T) {
		t.Setenv("NATGW_PYTHON", bad)
		f := run(t, func(tb testing.TB) { Python(tb, "", missing) })
		if f.kind != "skip" {
			t.Errorf("ended %q (%s), want skip", f.kind, f.msg)
		}
	})
	t.Run("real interpreter", func(t *testing.T) {
		t.Setenv("NATGW_PYTHON", "")
		py := Python(t, "", "json", "struct")
		if !filepath.IsAbs(py) {
			t.Errorf("interpreter %q is not an absolute path", py)
		}
	})
}

// FuzzDecodeF32: any bytes give either an error (ragged length) or one value per
// 4 bytes that round-trips bit for bit.
func FuzzDecodeF32(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x80, 0x3f})
	f.Add([]byte{0, 0, 0xc0, 0x7f, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeF32(b)
		if len(b)%4 != 0 {
			if err == nil {
				t.Fatalf("%d bytes accepted", len(b))
			}
			return
		}
		if err != nil || len(v) != len(b)/4 {
			t.Fatalf("%d bytes: %d values, %v", len(b), len(v), err)
		}
		for i, x := range v {
			if got := binary.LittleEndian.Uint32(b[4*i:]); math.Float32bits(x) != got {
				t.Fatalf("value %d: bits %#x, want %#x", i, math.Float32bits(x), got)
			}
		}
	})
}

func TestWritePNG(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	img.Set(2, 1, color.RGBA{200, 10, 30, 255})
	path := filepath.Join(t.TempDir(), "a", "b", "x.png")
	WritePNG(t, path, img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, a := got.At(2, 1).RGBA()
	if got.Bounds() != img.Bounds() || [4]uint32{r, g, b, a} != [4]uint32{200 * 0x101, 10 * 0x101, 30 * 0x101, 0xffff} {
		t.Fatalf("decoded %v, pixel %v", got.Bounds(), got.At(2, 1))
	}
}
