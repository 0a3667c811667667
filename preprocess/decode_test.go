package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngHeader crafts a PNG signature plus a valid IHDR chunk (and nothing else).
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.Write(magicPNG)
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit truecolour
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func px(img *RGB, x, y int) [3]uint8 {
	i := 3 * (y*img.W + x)
	return [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

func near(a, b [3]uint8, tol int) bool {
	for c := range 3 {
		d := int(a[c]) - int(b[c])
		if d < -tol || d > tol {
			return false
		}
	}
	return true
}

func TestDecodeKinds(t *testing.T) {
	// Greyscale JPEG: Go's encoder writes a 1-component JPEG for *image.Gray.
	gray := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range gray.Pix {
		gray.Pix[i] = 200
	}
	// Paletted PNG with a half-transparent entry.
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{
		color.NRGBA{255, 0, 0, 255}, color.NRGBA{0, 0, 255, 128},
	})
	pal.SetColorIndex(1, 0, 1)
	// 16-bit RGB PNG (opaque): 0x1280/257 = 18.4 → 18.
	rgb16 := image.NewRGBA64(image.Rect(0, 0, 4, 4))
	for y := range 4 {
		for x := range 4 {
			rgb16.SetRGBA64(x, y, color.RGBA64{0x1280, 0x8000, 0xffff, 0xffff})
		}
	}
	gray16 := image.NewGray16(image.Rect(0, 0, 3, 2))
	gray16.SetGray16(0, 0, color.Gray16{0xff7f}) // 65407/257 = 254.5 → 254 or 255; check tolerance 1
	// Alpha PNG: red at alpha 0, 128, 255 and grey at 64.
	alpha := image.NewNRGBA(image.Rect(0, 0, 4, 1))
	alpha.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 0})
	alpha.SetNRGBA(1, 0, color.NRGBA{255, 0, 0, 128})
	alpha.SetNRGBA(2, 0, color.NRGBA{255, 0, 0, 255})
	alpha.SetNRGBA(3, 0, color.NRGBA{100, 100, 100, 64})
	// 16-bit with alpha goes through the generic path; must match the 8-bit rule.
	alpha16 := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
	alpha16.SetNRGBA64(0, 0, color.NRGBA64{0xffff, 0, 0, 128 * 257})

	cmyk, err := os.ReadFile(filepath.Join("testdata", "cmyk.jpg"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		data  []byte
		w, h  int
		check map[[2]int][3]uint8
		tol   int
	}{
		{"grey jpeg", encodeJPEG(t, gray), 8, 8, map[[2]int][3]uint8{{3, 3}: {200, 200, 200}}, 1},
		// Made by testdata/gen_cmyk.py (Pillow, Adobe APP14 marker): red, green / blue, white quadrants.
		{"cmyk jpeg", cmyk, 16, 16, map[[2]int][3]uint8{
			{2, 2}: {255, 0, 0}, {13, 2}: {0, 255, 0}, {2, 13}: {0, 0, 255}, {13, 13}: {255, 255, 255},
		}, 6},
		{"paletted png", encodePNG(t, pal), 4, 4, map[[2]int][3]uint8{
			{0, 0}: {255, 0, 0},
			{1, 0}: {over8(0, 128), over8(0, 128), over8(255, 128)}, // blue at 50% over white = (127,127,255)
		}, 0},
		{"16-bit png", encodePNG(t, rgb16), 4, 4, map[[2]int][3]uint8{{1, 1}: {18, 128, 255}}, 0},
		{"16-bit grey png", encodePNG(t, gray16), 3, 2, map[[2]int][3]uint8{{0, 0}: {254, 254, 254}, {1, 0}: {0, 0, 0}}, 1},
		{"alpha png", encodePNG(t, alpha), 4, 1, map[[2]int][3]uint8{
			{0, 0}: {255, 255, 255}, // fully transparent → white
			{1, 0}: {255, 127, 127}, // (0·128 + 255·127)/255 = 127
			{2, 0}: {255, 0, 0},
			{3, 0}: {216, 216, 216}, // (100·64 + 255·191 + 127)/255 = 216
		}, 0},
		{"alpha 16-bit png", encodePNG(t, alpha16), 1, 1, map[[2]int][3]uint8{{0, 0}: {255, 127, 127}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(tc.data), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if img.W != tc.w || img.H != tc.h || len(img.Pix) != 3*tc.w*tc.h {
				t.Fatalf("size %dx%d (%d bytes), want %dx%d", img.W, img.H, len(img.Pix), tc.w, tc.h)
			}
			for xy, want := range tc.check {
				if got := px(img, xy[0], xy[1]); !near(got, want, tc.tol) {
					t.Errorf("pixel %v = %v, want %v ±%d", xy, got, want, tc.tol)
				}
			}
		})
	}
}

func TestDecodeColourJPEG(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := 0; i < len(src.Pix); i += 4 {
		src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = 30, 140, 220, 255
	}
	img, err := Decode(bytes.NewReader(encodeJPEG(t, src)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := px(img, 7, 7); !near(got, [3]uint8{30, 140, 220}, 3) {
		t.Fatalf("pixel = %v", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	small := encodePNG(t, image.NewGray(image.Rect(0, 0, 10, 10)))
	var gif bytes.Buffer
	gif.WriteString("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	tests := []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		{"empty", nil, Limits{}, ErrFormat},
		{"gif", gif.Bytes(), Limits{}, ErrFormat},
		{"text", []byte("hello, world"), Limits{}, ErrFormat},
		{"truncated png", small[:len(small)/2], Limits{}, ErrFormat},
		{"png header only", pngHeader(4, 4), Limits{}, ErrFormat},
		{"zero width", pngHeader(0, 4), Limits{}, ErrFormat},
		{"jpeg magic only", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0}, Limits{}, ErrFormat},
		{"pixels over limit", small, Limits{MaxPixels: 99}, ErrTooLarge},
		{"pixels at limit", small, Limits{MaxPixels: 100}, nil},
		{"bytes over limit", small, Limits{MaxBytes: int64(len(small)) - 1}, ErrTooLarge},
		{"bytes at limit", small, Limits{MaxBytes: int64(len(small))}, nil},
		{"20000x20000 header", pngHeader(20000, 20000), Limits{MaxPixels: 50_000_000}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(tc.data), tc.lim)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// A 20000×20000 RGB image would need 1.2 GB; refusing it must cost almost nothing.
func TestDecodeRefusesHugeHeaderWithoutAllocating(t *testing.T) {
	hdr := pngHeader(20000, 20000)
	// Followed by plenty of junk, as an attacker would send.
	data := append(hdr, bytes.Repeat([]byte{0}, 1<<16)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Decode(bytes.NewReader(data), Limits{MaxPixels: 40_000_000})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "20000x20000") {
		t.Errorf("error %q should name the size", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("allocated %d bytes refusing the header", alloc)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDecodeReadError(t *testing.T) {
	_, err := Decode(failReader{}, Limits{})
	if err == nil || errors.Is(err, ErrFormat) || errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodePNG(f, image.NewGray(image.Rect(0, 0, 5, 3))))
	f.Add(encodePNG(f, image.NewNRGBA64(image.Rect(0, 0, 2, 2))))
	f.Add(encodeJPEG(f, image.NewRGBA(image.Rect(0, 0, 9, 7))))
	f.Add(encodeJPEG(f, image.NewGray(image.Rect(0, 0, 8, 8))))
	f.Add(pngHeader(20000, 20000))
	f.Add(pngHeader(3, 3))
	if cmyk, err := os.ReadFile(filepath.Join("testdata", "cmyk.jpg")); err == nil {
		f.Add(cmyk)
	}
	f.Add([]byte{0xff, 0xd8, 0xff})
	lim := Limits{MaxPixels: 1 << 16, MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(bytes.NewReader(data), lim)
		if err != nil {
			if img != nil {
				t.Fatal("image returned with error")
			}
			return
		}
		if img.W < 1 || img.H < 1 || int64(img.W)*int64(img.H) > lim.MaxPixels || len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("bad image %dx%d (%d bytes)", img.W, img.H, len(img.Pix))
		}
		// Decoded images must be usable by the tensor path.
		dst := make([]float32, DefaultSpec(8).TensorLen())
		if err := DefaultSpec(8).Tensor(img, dst); err != nil {
			t.Fatal(err)
		}
	})
}
