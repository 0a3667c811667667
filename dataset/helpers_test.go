package dataset

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func noisyImage(w, h int, seed uint64) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255
	}
	return img
}

func pngBytes(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func grayJPEG(t testing.TB, w, h int) []byte {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 7)
	}
	g.SetGray(0, 0, color.Gray{})
	return jpegBytes(t, g)
}

// makeSet writes n images per class (alternating PNG/JPEG, varied sizes)
// under root/split/class.
func makeSet(t testing.TB, root, split string, classes []string, n int) {
	for ci, c := range classes {
		for i := range n {
			w, h := 20+7*i, 16+5*((i+ci)%4)
			img := noisyImage(w, h, uint64(ci*1000+i))
			if i%2 == 0 {
				writeFile(t, filepath.Join(root, split, c, "img"+string(rune('a'+i))+".png"), pngBytes(t, img))
			} else {
				writeFile(t, filepath.Join(root, split, c, "img"+string(rune('a'+i))+".jpg"), jpegBytes(t, img))
			}
		}
	}
}
