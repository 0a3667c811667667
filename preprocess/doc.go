// Package preprocess decodes uploaded images and turns them into model input
// tensors. The same code serves the HTTP server, the CLI and the data sets, so
// a model sees identical input everywhere.
//
// # Decoding
//
// [Decode] accepts JPEG and PNG only (sniffed from the magic bytes, not from
// the global image format registry, so formats registered elsewhere in the
// binary are never accepted by accident). The byte size is limited first, then
// the header is read with jpeg.DecodeConfig / png.DecodeConfig and
// width×height is checked against [Limits.MaxPixels] before any pixel memory
// is allocated. Failures wrap [ErrTooLarge] (map to HTTP 413) or [ErrFormat]
// (map to HTTP 400).
//
// Every decoded image becomes an 8-bit [RGB]:
//   - greyscale: the grey value is copied to R, G and B;
//   - YCbCr JPEG: as libjpeg(-turbo) decodes by default, the decoder of browsers,
//     Android, PIL and OpenCV, so a model sees what its clients see: 4:2:0 and
//     4:2:2 chroma upsampled with libjpeg's triangle filter (jdsample.c, its
//     rounding biases, edges replicated), other ratios replicated, and libjpeg's
//     fixed-point YCbCr→RGB (jdcolor.c). Only the inverse DCTs differ (Go's and
//     libjpeg's islow round differently): at most 3 levels, about 0.05 on average
//     (TestDecodeMatchesLibjpeg). A [Spec] whose JPEGChroma is ChromaReplicated
//     (specs recorded before the field existed: the shipped tasks) decodes as
//     Go's image/jpeg does instead, chroma samples copied and Go's colour
//     conversion; at colour edges that is tens of levels away from libjpeg, and
//     on a 150-image test set it moved a subnet's top-1 by 3 points. Decode and
//     FromImage use libjpeg's way; Spec.Decode the spec's;
//   - CMYK / YCCK JPEG: Go's decoder undoes the Adobe inversion and YCCK, then
//     R = (255−C)(255−K)/255 etc. (color.CMYKToRGB);
//   - 16-bit samples: v8 = round(v16/257);
//   - alpha (RGBA PNG, grey+alpha, paletted with tRNS): composited onto WHITE,
//     out = round((c·a + 255·(255−a)) / 255) with non-premultiplied c, a in 0..255
//     (16-bit images use the same formula at 16 bits, then round(v/257)).
//
// # Eval preprocessing (the exact formula)
//
// [Spec.Tensor] produces a CHW float32 tensor of size 3×R×R. A browser client
// must reproduce these steps exactly.
//
// 1. Geometry ([Spec.Geometry]) for a W×H source image:
//   - CropFraction f = 1: the whole image is resized to R×R (aspect ratio not kept);
//     sW = sH = R, left = top = 0.
//   - f < 1: S = roundHalfEven(R/f). The shorter side becomes S and the longer
//     side floor(S·long/short) (integer arithmetic, as torchvision's Resize(int)).
//     Then a centre crop: left = roundHalfEven((sW−R)/2), top = roundHalfEven((sH−R)/2)
//     (Python's round, as torchvision's CenterCrop).
//
// 2. Bilinear resize with PyTorch F.interpolate(mode="bilinear",
// align_corners=False, antialias=False) semantics, per axis, on float values
// 0..255 (no antialiasing on downscale). For output index d in 0..sOut−1 of an
// axis with input length n:
//
//	scale = n / sOut
//	src   = max(scale·(d + 0.5) − 0.5, 0)
//	i0    = min(floor(src), n−1)
//	i1    = i0 + 1 if i0 < n−1 else i0      (edge clamp)
//	l1    = min(max(src − i0, 0), 1);  l0 = 1 − l1
//
// and each output pixel of the crop window (x, y) uses d = x+left along x and
// d = y+top along y:
//
//	v = ly0·(lx0·P[iy0][ix0] + lx1·P[iy0][ix1]) + ly1·(lx0·P[iy1][ix0] + lx1·P[iy1][ix1])
//
// Weights are computed in float64 (like JavaScript numbers), the blend in float32.
//
// 3. Normalisation per channel c (R, G, B order, planar CHW):
//
//	out = (v/255 − Mean[c]) / Std[c]
//
// The training-time augmentation in package dataset uses [ResizeRegion] (the
// same resampler on a sub-rectangle) and [Spec.Normalize].
package preprocess
