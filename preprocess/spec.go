package preprocess

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Spec is how a model wants its input. It is stored as JSON in every exported
// ONNX file's metadata, so the JSON field names are part of the file format:
// keep them stable and lower_snake_case.
type Spec struct {
	Resolution    int        `json:"resolution"`    // output is Resolution×Resolution
	CropFraction  float64    `json:"crop_fraction"` // 1 = resize whole image to R×R; f<1 = shorter side to round(R/f), centre-crop R×R
	Interpolation string     `json:"interpolation"` // "bilinear" (the only one for now)
	Mean          [3]float32 `json:"mean"`          // applied to pixel/255
	Std           [3]float32 `json:"std"`
	ChannelOrder  string     `json:"channel_order"` // "RGB"
	Layout        string     `json:"layout"`        // "NCHW"
	// JPEGChroma is how a JPEG's subsampled chroma reaches full resolution before the RGB
	// conversion: "fancy" is libjpeg's default (what browsers, Android, PIL and OpenCV
	// decode); absent (ChromaReplicated) copies each chroma sample, as Go's image/jpeg
	// does, with Go's colour conversion (a level apart from libjpeg's at times), and is
	// what tasks made before natgw recorded this were trained and measured with. PNG
	// decodes the same either way.
	JPEGChroma string `json:"jpeg_chroma,omitempty"`
}

// Accepted values and bounds of a Spec.
const (
	InterpolationBilinear = "bilinear"
	ChannelOrderRGB       = "RGB"
	LayoutNCHW            = "NCHW"
	ChromaFancy           = "fancy"
	ChromaReplicated      = "" // the zero value: specs written before JPEGChroma existed

	MaxResolution   = 4096
	MinCropFraction = 0.05 // below this the intermediate image is absurdly large
)

// ErrSpec is wrapped by every Spec validation error.
var ErrSpec = errors.New("invalid preprocess spec")

// DefaultSpec is the ImageNet eval setting: whole image resized to R×R,
// bilinear, ImageNet mean/std, RGB, NCHW, JPEG chroma upsampled as libjpeg does.
func DefaultSpec(resolution int) Spec {
	return Spec{
		Resolution:    resolution,
		CropFraction:  1,
		Interpolation: InterpolationBilinear,
		Mean:          [3]float32{0.485, 0.456, 0.406},
		Std:           [3]float32{0.229, 0.224, 0.225},
		ChannelOrder:  ChannelOrderRGB,
		Layout:        LayoutNCHW,
		JPEGChroma:    ChromaFancy,
	}
}

// Validate reports the first problem with s, wrapping ErrSpec.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, a...))
	}
	if s.Resolution < 1 || s.Resolution > MaxResolution {
		return bad("resolution %d not in [1, %d]", s.Resolution, MaxResolution)
	}
	// The negated comparison also rejects NaN.
	if !(s.CropFraction >= MinCropFraction && s.CropFraction <= 1) {
		return bad("crop_fraction %v not in [%v, 1]", s.CropFraction, MinCropFraction)
	}
	if s.Interpolation != InterpolationBilinear {
		return bad("interpolation %q not supported (want %q)", s.Interpolation, InterpolationBilinear)
	}
	for c := range 3 {
		m, sd := float64(s.Mean[c]), float64(s.Std[c])
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return bad("mean[%d] = %v is not finite", c, m)
		}
		if !(sd > 0) || math.IsInf(sd, 0) {
			return bad("std[%d] = %v must be finite and > 0", c, sd)
		}
	}
	if s.ChannelOrder != ChannelOrderRGB {
		return bad("channel_order %q not supported (want %q)", s.ChannelOrder, ChannelOrderRGB)
	}
	if s.Layout != LayoutNCHW {
		return bad("layout %q not supported (want %q)", s.Layout, LayoutNCHW)
	}
	if s.JPEGChroma != ChromaFancy && s.JPEGChroma != ChromaReplicated {
		return bad("jpeg_chroma %q not supported (want %q, or none for replicated)", s.JPEGChroma, ChromaFancy)
	}
	return nil
}

// TensorLen is the number of float32 values Tensor writes: 3·R·R.
func (s Spec) TensorLen() int { return 3 * s.Resolution * s.Resolution }

// Geometry returns the size (sw, sh) the whole w×h image is resized to and the
// top-left corner of the R×R crop window inside it (see the package doc).
func (s Spec) Geometry(w, h int) (sw, sh, left, top int) {
	r := s.Resolution
	if s.CropFraction >= 1 {
		return r, r, 0, 0
	}
	short := int(math.RoundToEven(float64(r) / s.CropFraction))
	if w <= h {
		sw, sh = short, int(int64(short)*int64(h)/int64(w))
	} else {
		sw, sh = int(int64(short)*int64(w)/int64(h)), short
	}
	left = int(math.RoundToEven(float64(sw-r) / 2))
	top = int(math.RoundToEven(float64(sh-r) / 2))
	return sw, sh, left, top
}

// Resample writes the resized and cropped image (float values 0..255, planar
// CHW, len 3·R·R) into dst, without normalisation.
func (s Spec) Resample(img *RGB, dst []float32) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := checkImage(img); err != nil {
		return err
	}
	if len(dst) != s.TensorLen() {
		return fmt.Errorf("preprocess: dst has %d values, want %d", len(dst), s.TensorLen())
	}
	sw, sh, left, top := s.Geometry(img.W, img.H)
	r := s.Resolution
	resample(img, 0, 0, img.W, img.H, sw, sh, left, top, r, r, dst)
	return nil
}

// Normalize applies (v/255 − mean)/std per channel in place to a planar CHW
// buffer of 0..255 values.
func (s Spec) Normalize(chw []float32) {
	plane := len(chw) / 3
	for c := range 3 {
		// Same two-step arithmetic as the documented formula, so a JS port
		// computing v/255 - mean then / std agrees to float rounding.
		m, sd := s.Mean[c], s.Std[c]
		p := chw[c*plane : (c+1)*plane]
		for i, v := range p {
			p[i] = (v/255 - m) / sd
		}
	}
}

// Tensor writes the eval-preprocessed image into dst (len 3·R·R, CHW):
// Resample, then Normalize.
func (s Spec) Tensor(img *RGB, dst []float32) error {
	if err := s.Resample(img, dst); err != nil {
		return err
	}
	s.Normalize(dst)
	return nil
}

// MetaKey is the checkpoint metadata key under which a supernet records the eval
// preprocessing it was trained with (JSON of Spec).
const MetaKey = "preprocess"

// FromMeta returns the preprocessing recorded in a checkpoint's metadata at resolution r,
// or def when there is none. An imported or adapted network wants its own normalisation,
// not the ImageNet default.
func FromMeta(meta map[string]string, r int, def Spec) (Spec, error) {
	raw, ok := meta[MetaKey]
	if !ok {
		def.Resolution = r
		return def, nil
	}
	var s Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return s, fmt.Errorf("metadata %q: %w", MetaKey, err)
	}
	s.Resolution = r
	check := s
	check.Resolution = max(r, 1) // 0: each subnet's resolution is filled in later
	if err := check.Validate(); err != nil {
		return s, fmt.Errorf("metadata %q: %w", MetaKey, err)
	}
	return s, nil
}
