package preprocess

import "image"

// ycbcrToRGB converts a decoded YCbCr JPEG the way libjpeg(-turbo) does by default, which is
// what browsers, Android, PIL and OpenCV use: 4:2:0 and 4:2:2 chroma is upsampled with
// libjpeg's "fancy" triangle filter (h2v2 / h2v1_fancy_upsample: 3/4 of the nearer sample,
// 1/4 of the next, edges replicated, with its rounding biases), other ratios by
// replication, and the colour conversion uses libjpeg's 16-bit fixed-point tables
// (jdcolor.c). What is left between natgw's pixels and libjpeg's comes from the two
// inverse DCTs (Go's and libjpeg's islow), which differ by at most a few levels.
func ycbcrToRGB(m *image.YCbCr, dst *RGB) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	cb, cr, cstride, hs, vs := upsampleChroma(m)
	p := dst.Pix
	for y := range h {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		crow := (y >> vs) * cstride
		for x := range w {
			ci := crow + (x >> hs)
			r, g, bl := libjpegYCbCrToRGB(yrow[x], cb[ci], cr[ci])
			i := 3 * (y*w + x)
			p[i], p[i+1], p[i+2] = r, g, bl
		}
	}
}

// upsampleChroma returns the chroma planes at full resolution (hs = vs = 0) for 4:2:0 and
// 4:2:2, or as they are (with the shifts that index them) for every other ratio.
func upsampleChroma(m *image.YCbCr) (cb, cr []uint8, stride int, hs, vs uint) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422:
		cw := (w + 1) / 2
		ch := h
		v2 := m.SubsampleRatio == image.YCbCrSubsampleRatio420
		if v2 {
			ch = (h + 1) / 2
		}
		off := m.COffset(b.Min.X, b.Min.Y)
		cb = fancyUpsample(m.Cb[off:], m.CStride, cw, ch, v2)
		cr = fancyUpsample(m.Cr[off:], m.CStride, cw, ch, v2)
		return cb, cr, 2 * cw, 0, 0
	}
	// 4:4:4 needs nothing; 4:4:0, 4:1:1 and 4:1:0 (rare) are replicated.
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio440:
		vs = 1
	case image.YCbCrSubsampleRatio411:
		hs = 2
	case image.YCbCrSubsampleRatio410:
		hs, vs = 2, 1
	}
	off := m.COffset(b.Min.X, b.Min.Y)
	return m.Cb[off:], m.Cr[off:], m.CStride, hs, vs
}

// fancyUpsample doubles a cw×ch chroma plane horizontally, and vertically when v2, into a
// (2cw)×(ch or 2ch) plane, as libjpeg's h2v2_fancy_upsample and h2v1_fancy_upsample.
func fancyUpsample(p []uint8, stride, cw, ch int, v2 bool) []uint8 {
	rows := ch
	if v2 {
		rows = 2 * ch
	}
	ow := 2 * cw
	out := make([]uint8, ow*rows)
	if !v2 {
		for r := range ch {
			in := p[r*stride:]
			o := out[r*ow:]
			if cw == 1 {
				o[0], o[1] = in[0], in[0]
				continue
			}
			// h2v1: 3/4 nearer + 1/4 further, biases 1 and 2 as libjpeg.
			o[0] = in[0]
			o[1] = uint8((int32(in[0])*3 + int32(in[1]) + 2) >> 2)
			for c := 1; c < cw-1; c++ {
				v := int32(in[c]) * 3
				o[2*c] = uint8((v + int32(in[c-1]) + 1) >> 2)
				o[2*c+1] = uint8((v + int32(in[c+1]) + 2) >> 2)
			}
			o[2*cw-2] = uint8((int32(in[cw-1])*3 + int32(in[cw-2]) + 1) >> 2)
			o[2*cw-1] = in[cw-1]
		}
		return out
	}
	for r := range ch {
		for v := range 2 {
			// The nearer row is r; the next nearer is the one above for the upper output
			// row and the one below for the lower, replicated at the plane's edges.
			r1 := r - 1 + 2*v
			r1 = max(0, min(r1, ch-1))
			in0, in1 := p[r*stride:], p[r1*stride:]
			o := out[(2*r+v)*ow:]
			sum := func(c int) int32 { return int32(in0[c])*3 + int32(in1[c]) }
			this := sum(0)
			if cw == 1 {
				o[0] = uint8((this*4 + 8) >> 4)
				o[1] = uint8((this*4 + 7) >> 4)
				continue
			}
			next := sum(1)
			o[0] = uint8((this*4 + 8) >> 4)
			o[1] = uint8((this*3 + next + 7) >> 4)
			last := this
			this = next
			for c := 2; c < cw; c++ {
				next = sum(c)
				o[2*c-2] = uint8((this*3 + last + 8) >> 4)
				o[2*c-1] = uint8((this*3 + next + 7) >> 4)
				last, this = this, next
			}
			o[2*cw-2] = uint8((this*3 + last + 8) >> 4)
			o[2*cw-1] = uint8((this*4 + 7) >> 4)
		}
	}
	return out
}

// libjpeg's jdcolor.c tables, computed per sample: SCALEBITS 16, FIX(x) = x·2¹⁶ rounded,
// arithmetic right shifts, results clamped to 0..255.
const (
	ycbcrScale       = 16
	ycbcrHalf        = 1 << (ycbcrScale - 1)
	fixCrR     int32 = 91881  // FIX(1.40200)
	fixCbB     int32 = 116130 // FIX(1.77200)
	fixCrG     int32 = 46802  // FIX(0.71414)
	fixCbG     int32 = 22554  // FIX(0.34414)
)

func libjpegYCbCrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	xb, xr := int32(cb)-128, int32(cr)-128
	r := yy + (fixCrR*xr+ycbcrHalf)>>ycbcrScale
	g := yy + (-fixCbG*xb+ycbcrHalf-fixCrG*xr)>>ycbcrScale
	bl := yy + (fixCbB*xb+ycbcrHalf)>>ycbcrScale
	return clamp8(r), clamp8(g), clamp8(bl)
}

func clamp8(v int32) uint8 { return uint8(max(0, min(v, 255))) }
