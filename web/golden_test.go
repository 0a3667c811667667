package web_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
)

// The page reimplements the gateway's preprocessing and budget parsing in JavaScript.
// These tests write what the Go packages answer into testdata/*.golden.json (with
// -update) and fail when the Go answers drift from the files; web/test/*.test.mjs
// (node --test) check the JavaScript against the same files.
var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./web -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the Go packages answer now: run go test ./web -run Golden -update and rerun node --test web/test", path)
	}
}

// f32s encodes float32 values as base64 little-endian bytes: exact and compact.
func f32s(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

type goldenImage struct {
	W   int    `json:"w"`
	H   int    `json:"h"`
	RGB string `json:"rgb"` // base64, 3 bytes per pixel
}

type goldenTensor struct {
	Image  int             `json:"image"`
	Spec   preprocess.Spec `json:"spec"`
	Geom   [4]int          `json:"geometry"` // sw, sh, left, top
	Tensor string          `json:"tensor"`   // f32s of Spec.Tensor
}

type goldenGeometry struct {
	W            int     `json:"w"`
	H            int     `json:"h"`
	Resolution   int     `json:"resolution"`
	CropFraction float64 `json:"crop_fraction"`
	Geom         [4]int  `json:"geometry"`
}

type goldenAlpha struct {
	W    int    `json:"w"`
	H    int    `json:"h"`
	RGBA string `json:"rgba"` // base64 non-premultiplied RGBA, as a canvas returns it
	RGB  string `json:"rgb"`  // base64 of what preprocess.Decode gives for the same PNG
}

type preprocessGolden struct {
	Images     []goldenImage    `json:"images"`
	Tensors    []goldenTensor   `json:"tensors"`
	Geometries []goldenGeometry `json:"geometries"`
	Alpha      goldenAlpha      `json:"alpha"`
}

func randomRGB(seed uint64, w, h int) *preprocess.RGB {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := preprocess.NewRGB(w, h)
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	// A smooth gradient in one channel, so that resampling errors show as more than noise.
	for y := range h {
		for x := range w {
			img.Pix[3*(y*w+x)+1] = uint8((x*255)/max(w-1, 1)/2 + (y*255)/max(h-1, 1)/2)
		}
	}
	return img
}

func TestPreprocessGolden(t *testing.T) {
	sizes := [][2]int{{1, 1}, {7, 5}, {5, 7}, {40, 33}, {33, 40}, {100, 60}, {3, 50}, {64, 64}}
	var g preprocessGolden
	var imgs []*preprocess.RGB
	for i, sz := range sizes {
		img := randomRGB(uint64(i+1), sz[0], sz[1])
		imgs = append(imgs, img)
		g.Images = append(g.Images, goldenImage{W: img.W, H: img.H, RGB: base64.StdEncoding.EncodeToString(img.Pix)})
	}
	custom := preprocess.DefaultSpec(0)
	custom.Mean = [3]float32{0.5, 0.25, 0.75}
	custom.Std = [3]float32{0.3, 0.2, 0.45}
	specs := []struct {
		base preprocess.Spec
		r    int
		f    float64
	}{
		{preprocess.DefaultSpec(0), 8, 1},
		{preprocess.DefaultSpec(0), 13, 0.875},
		{preprocess.DefaultSpec(0), 16, 0.875},
		{preprocess.DefaultSpec(0), 5, 0.4},
		{custom, 24, 0.5},
		{custom, 7, 0.95},
		{custom, 20, 1},
	}
	for si, sp := range specs {
		for ii, img := range imgs {
			// Every spec on a few images (all of them for the first two), to keep the file small.
			if si >= 2 && (ii+si)%3 != 0 {
				continue
			}
			s := sp.base
			s.Resolution, s.CropFraction = sp.r, sp.f
			dst := make([]float32, s.TensorLen())
			if err := s.Tensor(img, dst); err != nil {
				t.Fatal(err)
			}
			sw, sh, left, top := s.Geometry(img.W, img.H)
			g.Tensors = append(g.Tensors, goldenTensor{Image: ii, Spec: s, Geom: [4]int{sw, sh, left, top}, Tensor: f32s(dst)})
		}
	}
	// Geometry alone over many sizes: exercises round-half-even of R/f and of the crop offsets.
	for _, r := range []int{1, 2, 3, 5, 7, 10, 13, 64, 96, 224} {
		for _, f := range []float64{0.4, 0.5, 0.75, 0.875, 0.9, 0.95, 1} {
			for _, wh := range [][2]int{{1, 1}, {3, 2}, {2, 3}, {10, 7}, {500, 375}, {375, 500}, {1000, 999}, {17, 4000}} {
				s := preprocess.DefaultSpec(r)
				s.CropFraction = f
				sw, sh, left, top := s.Geometry(wh[0], wh[1])
				g.Geometries = append(g.Geometries, goldenGeometry{W: wh[0], H: wh[1], Resolution: r, CropFraction: f, Geom: [4]int{sw, sh, left, top}})
			}
		}
	}
	// Alpha compositing onto white, through the real PNG decoder.
	const aw, ah = 16, 16
	nrgba := image.NewNRGBA(image.Rect(0, 0, aw, ah))
	rng := rand.New(rand.NewPCG(99, 1))
	for y := range ah {
		for x := range aw {
			a := uint8(rng.IntN(256))
			if x == 0 {
				a = uint8(y * 17) // the extremes 0 and 255 are always present
			}
			nrgba.SetNRGBA(x, y, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), a})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, nrgba); err != nil {
		t.Fatal(err)
	}
	dec, err := preprocess.DecodeBytes(buf.Bytes(), preprocess.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g.Alpha = goldenAlpha{W: aw, H: ah, RGBA: base64.StdEncoding.EncodeToString(nrgba.Pix), RGB: base64.StdEncoding.EncodeToString(dec.Pix)}
	checkGolden(t, "preprocess.golden.json", g)
}

type budgetCase struct {
	Kind  string  `json:"kind"` // count or latency
	Input string  `json:"input"`
	OK    bool    `json:"ok"`
	Value float64 `json:"value,omitempty"`
	// Error is the kind of failure: syntax, range or fraction (count), syntax (latency).
	Error string `json:"error,omitempty"`
}

func countError(err error) string {
	switch msg := err.Error(); {
	case !errors.Is(err, specializer.ErrBudgetSyntax):
		return "other: " + msg
	case strings.Contains(msg, "out of range"):
		return "range"
	case strings.Contains(msg, "not a whole number"):
		return "fraction"
	default:
		return "syntax"
	}
}

func TestBudgetGolden(t *testing.T) {
	inputs := []string{
		"300M", "300m", "0.3G", "300e6", "300000000", "1.5k", "1.5K", "2B", "2b", " 300M ", "\t42\n",
		"300 M", "300MB", "M", "", " ", "0", "0.5", "1", "-5", "+5", "5.", ".5k", "1e15", "1e15k", "1.0000000001e15",
		"1e-400", "1e400", "0x10", "1_000", "inf", "Inf", "NaN", "infinity", "1.2345678M", "1.23456789k", "0.1234567891G",
		"3e-1k", "12.5", "12.5ms", " 12.5ms", "12.5 ms", "12ms ", "ms", "-1ms", "+3", "1e6", "1e7", "1p3", "1\u00a0", "\u3000300M",
		"\u0085300M", "\ufeff300M", "300\u200bM", "٣٠٠M", "1e+3k", "1E3", "00012", "1..2", "1e", "e5", ".", "-0", "0.0001G",
		"999999999999999", "1000000000000001", "4.5e14",
	}
	rng := rand.New(rand.NewPCG(5, 5))
	const alphabet = "0123456789..eE+-kKmMgGbBsx_ \t"
	for range 400 {
		n := 1 + rng.IntN(8)
		var sb strings.Builder
		for range n {
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		inputs = append(inputs, sb.String())
	}
	var cases []budgetCase
	for _, in := range inputs {
		c := budgetCase{Kind: "count", Input: in}
		if v, err := specializer.ParseCount(in); err == nil {
			c.OK, c.Value = true, float64(v)
		} else {
			c.Error = countError(err)
		}
		cases = append(cases, c)
		l := budgetCase{Kind: "latency", Input: in}
		if v, err := specializer.ParseLatency(in); err == nil {
			l.OK, l.Value = true, v
		} else if errors.Is(err, specializer.ErrBudgetSyntax) {
			l.Error = "syntax"
		} else {
			l.Error = fmt.Sprintf("other: %v", err)
		}
		cases = append(cases, l)
	}
	checkGolden(t, "budget.golden.json", cases)
}
