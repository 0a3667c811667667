package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
)

// Errors that callers map to responses: ErrTooLarge → 413, ErrFormat → 400.
var (
	ErrTooLarge = errors.New("image too large")
	ErrFormat   = errors.New("unsupported or corrupt image")
)

// Default limits, used for zero or negative Limits fields.
const (
	DefaultMaxPixels = 40_000_000 // about 160 MB as decoded RGBA; 120 MB as RGB
	DefaultMaxBytes  = 32 << 20
)

// Limits bound what Decode accepts. Zero or negative fields mean the defaults.
type Limits struct {
	MaxPixels int64 // width×height
	MaxBytes  int64 // encoded size
}

func (l Limits) withDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

var (
	magicJPEG = []byte{0xff, 0xd8, 0xff}
	magicPNG  = []byte("\x89PNG\r\n\x1a\n")
)

// Decode reads a JPEG or PNG image and converts it to RGB (see the package doc
// for greyscale, CMYK, 16-bit and alpha handling; alpha is composited onto
// white), JPEG chroma upsampled as libjpeg does (ChromaFancy). The encoded size
// and the header's width×height are checked against lim before the pixels are
// decoded. Errors wrap ErrTooLarge or ErrFormat, except read errors from r,
// which are wrapped as they are.
func Decode(r io.Reader, lim Limits) (*RGB, error) {
	return decode(r, lim, ChromaFancy)
}

// DecodeBytes is Decode for data already in memory.
func DecodeBytes(data []byte, lim Limits) (*RGB, error) {
	return decodeBytes(data, lim, ChromaFancy)
}

// Decode is the package's Decode with the JPEG chroma upsampling s names: the pixels
// a model made with s was trained and measured on.
func (s Spec) Decode(r io.Reader, lim Limits) (*RGB, error) {
	return decode(r, lim, s.JPEGChroma)
}

func decode(r io.Reader, lim Limits, chroma string) (*RGB, error) {
	lim = lim.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("preprocess: read image: %w", err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	return decodeBytes(data, lim, chroma)
}

func decodeBytes(data []byte, lim Limits, chroma string) (*RGB, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	var (
		decodeConfig func(io.Reader) (image.Config, error)
		decode       func(io.Reader) (image.Image, error)
		name         string
	)
	switch {
	case bytes.HasPrefix(data, magicJPEG):
		decodeConfig, decode, name = jpeg.DecodeConfig, jpeg.Decode, "jpeg"
	case bytes.HasPrefix(data, magicPNG):
		decodeConfig, decode, name = png.DecodeConfig, png.Decode, "png"
	default:
		return nil, fmt.Errorf("%w: not a JPEG or PNG file", ErrFormat)
	}
	cfg, err := decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %v", ErrFormat, name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s has size %dx%d", ErrFormat, name, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > lim.MaxPixels {
		return nil, fmt.Errorf("%w: %dx%d = %d pixels, limit %d", ErrTooLarge, cfg.Width, cfg.Height, px, lim.MaxPixels)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		// The limit was checked on the header; refuse anything that disagrees.
		return nil, fmt.Errorf("%w: %s decoded to %dx%d, header said %dx%d", ErrFormat, name, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	return fromImage(img, chroma), nil
}
