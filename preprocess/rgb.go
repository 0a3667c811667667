package preprocess

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// RGB is an 8-bit interleaved RGB image (3 bytes per pixel, no padding).
// It is smaller than image.RGBA, which matters when data sets cache decoded
// images. It implements image.Image.
type RGB struct {
	Pix  []uint8 // R,G,B of pixel (x, y) at 3·(y·W + x)
	W, H int
}

// NewRGB allocates a black w×h image.
func NewRGB(w, h int) *RGB { return &RGB{Pix: make([]uint8, 3*w*h), W: w, H: h} }

func (m *RGB) ColorModel() color.Model { return color.RGBAModel }
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }
func (m *RGB) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	i := 3 * (y*m.W + x)
	return color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff}
}

func checkImage(img *RGB) error {
	if img == nil {
		return errors.New("preprocess: nil image")
	}
	if img.W < 1 || img.H < 1 || len(img.Pix) != 3*img.W*img.H {
		return fmt.Errorf("preprocess: malformed RGB image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
	}
	return nil
}

// FromImage converts any image to RGB: grey is replicated, 16-bit samples are
// rounded to 8 bits, alpha is composited onto white, and YCbCr chroma is
// upsampled as libjpeg does (see the package doc).
func FromImage(src image.Image) *RGB { return fromImage(src, ChromaFancy) }

func fromImage(src image.Image, chroma string) *RGB {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := NewRGB(w, h)
	p := dst.Pix
	switch s := src.(type) {
	case *image.YCbCr:
		if chroma == ChromaFancy {
			ycbcrToRGB(s, dst)
			break
		}
		for y := range h {
			for x := range w {
				yi := s.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				i := 3 * (y*w + x)
				p[i], p[i+1], p[i+2] = r, g, bl
			}
		}
	case *image.Gray:
		for y := range h {
			start := s.PixOffset(b.Min.X, b.Min.Y+y)
			row := s.Pix[start : start+w]
			for x, v := range row {
				i := 3 * (y*w + x)
				p[i], p[i+1], p[i+2] = v, v, v
			}
		}
	case *image.CMYK:
		for y := range h {
			for x := range w {
				j := s.PixOffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.CMYKToRGB(s.Pix[j], s.Pix[j+1], s.Pix[j+2], s.Pix[j+3])
				i := 3 * (y*w + x)
				p[i], p[i+1], p[i+2] = r, g, bl
			}
		}
	case *image.NRGBA:
		for y := range h {
			for x := range w {
				j := s.PixOffset(b.Min.X+x, b.Min.Y+y)
				a := uint32(s.Pix[j+3])
				i := 3 * (y*w + x)
				for c := range 3 {
					p[i+c] = over8(uint32(s.Pix[j+c]), a)
				}
			}
		}
	default:
		// Generic path: 16-bit, paletted, premultiplied RGBA, grey+alpha...
		for y := range h {
			for x := range w {
				c := color.NRGBA64Model.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				a := uint64(c.A)
				i := 3 * (y*w + x)
				p[i], p[i+1], p[i+2] = over16(uint64(c.R), a), over16(uint64(c.G), a), over16(uint64(c.B), a)
			}
		}
	}
	return dst
}

// over8 composites a non-premultiplied 8-bit sample onto white, rounded.
func over8(c, a uint32) uint8 {
	return uint8((c*a + 255*(255-a) + 127) / 255)
}

// over16 composites a non-premultiplied 16-bit sample onto white, then rounds
// to 8 bits (v/257). For 8-bit inputs it equals over8.
func over16(c, a uint64) uint8 {
	v := (c*a + 0xffff*(0xffff-a) + 0x7fff) / 0xffff
	return uint8((v*255 + 0x7fff) / 0xffff)
}
