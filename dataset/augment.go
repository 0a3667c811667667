package dataset

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
)

// Augment configures training-time augmentation. Zero scale or ratio bounds
// mean torchvision's defaults (0.08–1 and 3/4–4/3).
type Augment struct {
	RandomResizedCrop  bool
	ScaleMin, ScaleMax float64 // fraction of the image area
	RatioMin, RatioMax float64 // width/height, sampled log-uniformly
	HFlip              bool    // horizontal flip with p = 0.5
	ColorJitter        float64 // brightness/contrast/saturation factors in [1-j, 1+j]; 0 = off
}

func (a Augment) withDefaults() Augment {
	if a.ScaleMin == 0 && a.ScaleMax == 0 {
		a.ScaleMin, a.ScaleMax = 0.08, 1
	}
	if a.RatioMin == 0 && a.RatioMax == 0 {
		a.RatioMin, a.RatioMax = 3.0/4, 4.0/3
	}
	return a
}

func (a Augment) validate() error {
	ok := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !ok(a.ScaleMin) || !ok(a.ScaleMax) || a.ScaleMin <= 0 || a.ScaleMax > 1 || a.ScaleMin > a.ScaleMax:
		return fmt.Errorf("scale range [%v, %v] must satisfy 0 < min ≤ max ≤ 1", a.ScaleMin, a.ScaleMax)
	case !ok(a.RatioMin) || !ok(a.RatioMax) || a.RatioMin <= 0 || a.RatioMin > a.RatioMax:
		return fmt.Errorf("ratio range [%v, %v] must satisfy 0 < min ≤ max", a.RatioMin, a.RatioMax)
	case !ok(a.ColorJitter) || a.ColorJitter < 0 || a.ColorJitter >= 1:
		return fmt.Errorf("color jitter %v must be in [0, 1)", a.ColorJitter)
	}
	return nil
}

// cropBox is torchvision's RandomResizedCrop.get_params: up to 10 tries at a
// random area fraction and log-uniform aspect ratio, then a centre crop with
// the ratio clamped to the allowed range.
func (a Augment) cropBox(r *rand.Rand, width, height int) image.Rectangle {
	area := float64(width * height)
	logLo, logHi := math.Log(a.RatioMin), math.Log(a.RatioMax)
	for range 10 {
		target := area * (a.ScaleMin + r.Float64()*(a.ScaleMax-a.ScaleMin))
		ratio := math.Exp(logLo + r.Float64()*(logHi-logLo))
		w := int(math.RoundToEven(math.Sqrt(target * ratio)))
		h := int(math.RoundToEven(math.Sqrt(target / ratio)))
		if w > 0 && w <= width && h > 0 && h <= height {
			i := r.IntN(height - h + 1)
			j := r.IntN(width - w + 1)
			return image.Rect(j, i, j+w, i+h)
		}
	}
	inRatio := float64(width) / float64(height)
	w, h := width, height
	if inRatio < a.RatioMin {
		h = int(math.RoundToEven(float64(w) / a.RatioMin))
	} else if inRatio > a.RatioMax {
		w = int(math.RoundToEven(float64(h) * a.RatioMax))
	}
	w, h = max(1, min(w, width)), max(1, min(h, height))
	i, j := (height-h)/2, (width-w)/2
	return image.Rect(j, i, j+w, i+h)
}

// flipH mirrors a planar CHW buffer of r×r pixels left to right.
func flipH(chw []float32, r int) {
	for row := 0; row < len(chw); row += r {
		p := chw[row : row+r]
		for i, j := 0, r-1; i < j; i, j = i+1, j-1 {
			p[i], p[j] = p[j], p[i]
		}
	}
}

// jitter applies brightness, contrast and saturation (in random order, as
// torchvision's ColorJitter) to planar CHW values in 0..255, clamping each
// step to 0..255.
func jitter(r *rand.Rand, chw []float32, j float64) {
	plane := len(chw) / 3
	factor := func() float32 { return float32(1 - j + 2*j*r.Float64()) }
	fb, fc, fs := factor(), factor(), factor()
	clamp := func(v float32) float32 { return min(max(v, 0), 255) }
	gray := func(i int) float32 { // ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
		return 0.2989*chw[i] + 0.587*chw[plane+i] + 0.114*chw[2*plane+i]
	}
	for _, op := range r.Perm(3) {
		switch op {
		case 0: // brightness: blend with black
			for i, v := range chw {
				chw[i] = clamp(fb * v)
			}
		case 1: // contrast: blend with the mean grey level
			var sum float64
			for i := range plane {
				sum += float64(gray(i))
			}
			m := float32(sum / float64(plane))
			for i, v := range chw {
				chw[i] = clamp(fc*v + (1-fc)*m)
			}
		case 2: // saturation: blend with the pixel's grey
			for i := range plane {
				g := (1 - fs) * gray(i)
				for c := range 3 {
					chw[c*plane+i] = clamp(fs*chw[c*plane+i] + g)
				}
			}
		}
	}
}
