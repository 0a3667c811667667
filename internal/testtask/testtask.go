// Package testtask makes the small supernets and image folders that tests of the NAT
// pipeline (package nat, the natgw commands) run on: seconds, not hours.
package testtask

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// Checkpoint writes dir/in.safetensors, a random supernet of a tiny space (one stage)
// with the given classes and resolutions, and returns its path.
func Checkpoint(t testing.TB, dir string, classes int, resolutions []int) string {
	t.Helper()
	spec := &supernet.Spec{
		Name: "tiny", Classes: classes, Resolutions: resolutions, Kernels: []int{3, 5}, Expands: []int{2, 3}, Divisor: 8,
		SEReduction: 4, Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:   supernet.Conv{Out: 8, Kernel: 3, Stride: 2, Act: supernet.ActHSwish},
		First:  supernet.FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{{Width: 16, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2}}},
	}
	sn, err := supernet.Random(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "in.safetensors")
	if err := sn.Save(ckpt, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return ckpt
}

// Data writes dir/data, an image folder of three classes (a, b, c) with n solid 20-px
// images each in every split, and returns its path.
func Data(t testing.TB, dir string, n int, splits ...string) string {
	t.Helper()
	data := filepath.Join(dir, "data")
	for _, split := range splits {
		for c, class := range []string{"a", "b", "c"} {
			if err := os.MkdirAll(filepath.Join(data, split, class), 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				name := filepath.Join(data, split, class, string(rune('p'+i))+".png")
				if err := os.WriteFile(name, SolidPNG(t, uint8(30+90*c+5*i), 20), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return data
}

// SolidPNG is a size×size PNG of grey level v.
func SolidPNG(t testing.TB, v uint8, size int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = v
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
