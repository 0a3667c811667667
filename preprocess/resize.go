package preprocess

import (
	"fmt"
	"image"
)

// axisMap holds, per output index along one axis, the two source indices and
// their weights (PyTorch bilinear, align_corners=False).
type axisMap struct {
	i0, i1 []int
	l0, l1 []float32
}

// newAxisMap maps output indices off..off+n-1 of an axis resized from in to
// scaled samples; origin is added to the source indices (sub-region start).
func newAxisMap(in, scaled, off, n, origin int) axisMap {
	m := axisMap{i0: make([]int, n), i1: make([]int, n), l0: make([]float32, n), l1: make([]float32, n)}
	scale := float64(in) / float64(scaled)
	for k := range n {
		src := scale*(float64(k+off)+0.5) - 0.5
		if src < 0 {
			src = 0
		}
		i0 := int(src) // src >= 0, so truncation is floor
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := min(max(src-float64(i0), 0), 1)
		m.i0[k], m.i1[k] = i0+origin, i1+origin
		m.l0[k], m.l1[k] = float32(1-l1), float32(l1)
	}
	return m
}

// resample resizes the source region (x0,y0,w,h) of img to sw×sh and writes
// the window [left,left+outW)×[top,top+outH) of the result into dst (CHW).
func resample(img *RGB, x0, y0, w, h, sw, sh, left, top, outW, outH int, dst []float32) {
	ax := newAxisMap(w, sw, left, outW, x0)
	ay := newAxisMap(h, sh, top, outH, y0)
	pix, stride := img.Pix, 3*img.W
	plane := outW * outH
	dr, dg, db := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for y := range outH {
		r0, r1 := ay.i0[y]*stride, ay.i1[y]*stride
		wy0, wy1 := ay.l0[y], ay.l1[y]
		o := y * outW
		for x := range outW {
			c0, c1 := 3*ax.i0[x], 3*ax.i1[x]
			wx0, wx1 := ax.l0[x], ax.l1[x]
			p00, p01, p10, p11 := pix[r0+c0:r0+c0+3], pix[r0+c1:r0+c1+3], pix[r1+c0:r1+c0+3], pix[r1+c1:r1+c1+3]
			dr[o+x] = wy0*(wx0*float32(p00[0])+wx1*float32(p01[0])) + wy1*(wx0*float32(p10[0])+wx1*float32(p11[0]))
			dg[o+x] = wy0*(wx0*float32(p00[1])+wx1*float32(p01[1])) + wy1*(wx0*float32(p10[1])+wx1*float32(p11[1]))
			db[o+x] = wy0*(wx0*float32(p00[2])+wx1*float32(p01[2])) + wy1*(wx0*float32(p10[2])+wx1*float32(p11[2]))
		}
	}
}

// ResizeRegion resizes the sub-rectangle src of img to w×h with the package's
// bilinear rule and writes 0..255 values, planar CHW (len 3·w·h), into dst.
// Training augmentation (random-resized crop) uses it.
func ResizeRegion(img *RGB, src image.Rectangle, w, h int, dst []float32) error {
	if err := checkImage(img); err != nil {
		return err
	}
	if src.Empty() || !src.In(image.Rect(0, 0, img.W, img.H)) {
		return fmt.Errorf("preprocess: region %v not inside image %dx%d", src, img.W, img.H)
	}
	if w < 1 || h < 1 || w > MaxResolution || h > MaxResolution {
		return fmt.Errorf("preprocess: output size %dx%d out of range", w, h)
	}
	if len(dst) != 3*w*h {
		return fmt.Errorf("preprocess: dst has %d values, want %d", len(dst), 3*w*h)
	}
	resample(img, src.Min.X, src.Min.Y, src.Dx(), src.Dy(), w, h, 0, 0, w, h, dst)
	return nil
}

// ResizePlanes resizes planes square h×h float planes, stored one after another in src,
// to r×r with the package's bilinear rule (the same source indices and weights as image
// resizing), writing them into dst (len planes·r·r). The trainer uses it to show a batch
// already preprocessed at one size to a subnet at another.
func ResizePlanes(src []float32, planes, h, r int, dst []float32) error {
	if planes < 0 || h < 1 || r < 1 || len(src) != planes*h*h || len(dst) != planes*r*r {
		return fmt.Errorf("preprocess: %d planes of %d×%d into %d×%d: src has %d values, dst %d", planes, h, h, r, r, len(src), len(dst))
	}
	m := newAxisMap(h, r, 0, r, 0)
	for p := range planes {
		in, out := src[p*h*h:(p+1)*h*h], dst[p*r*r:(p+1)*r*r]
		for y := range r {
			row0, row1 := in[m.i0[y]*h:(m.i0[y]+1)*h], in[m.i1[y]*h:(m.i1[y]+1)*h]
			wy0, wy1 := m.l0[y], m.l1[y]
			for x := range r {
				c0, c1 := m.i0[x], m.i1[x]
				out[y*r+x] = wy0*(m.l0[x]*row0[c0]+m.l1[x]*row0[c1]) + wy1*(m.l0[x]*row1[c0]+m.l1[x]*row1[c1])
			}
		}
	}
	return nil
}
