// Eval preprocessing, a port of the gateway's package preprocess (see its doc.go for the
// formula): geometry with round-half-even, PyTorch bilinear resize (align_corners=False,
// no antialias) with float64 weights and a float32 blend, then (v/255 − mean)/std in
// float32. web/testdata/preprocess.golden.json holds the Go package's tensors; web/test
// checks that this code reproduces them bit for bit.

const f32 = Math.fround;

/** roundHalfEven rounds to the nearest integer, ties to even (Go's math.RoundToEven). */
export function roundHalfEven(x) {
  const r = Math.round(x); // ties toward +Infinity
  if (r - x === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/**
 * geometry returns the size [sw, sh] the whole w×h image is resized to and the top-left
 * corner [left, top] of the R×R crop window (spec.resolution, spec.crop_fraction).
 */
export function geometry(spec, w, h) {
  const r = spec.resolution;
  if (!(spec.crop_fraction < 1)) return { sw: r, sh: r, left: 0, top: 0 };
  const short = roundHalfEven(r / spec.crop_fraction);
  let sw;
  let sh;
  // Integer arithmetic as in Go (values stay far below 2^53).
  if (w <= h) {
    sw = short;
    sh = Math.floor((short * h) / w);
  } else {
    sw = Math.floor((short * w) / h);
    sh = short;
  }
  return { sw, sh, left: roundHalfEven((sw - r) / 2), top: roundHalfEven((sh - r) / 2) };
}

/**
 * axisMap maps output indices off..off+n−1 of an axis resized from `len` to `scaled`
 * samples to two source indices and their float32 weights.
 */
export function axisMap(len, scaled, off, n) {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const l0 = new Float32Array(n);
  const l1 = new Float32Array(n);
  const scale = len / scaled;
  for (let k = 0; k < n; k++) {
    let src = scale * (k + off + 0.5) - 0.5;
    if (src < 0) src = 0;
    let a = Math.floor(src);
    if (a > len - 1) a = len - 1;
    const b = a < len - 1 ? a + 1 : a;
    const w1 = Math.min(Math.max(src - a, 0), 1);
    i0[k] = a;
    i1[k] = b;
    l0[k] = 1 - w1; // Float32Array stores round to float32, as Go's float32(1-l1)
    l1[k] = w1;
  }
  return { i0, i1, l0, l1 };
}

/**
 * specAt is a task's preprocessing for a model at resolution r (the gateway's
 * task.Manifest.At): the template with that resolution and, where the task names one, that
 * resolution's own centre crop (crop_by_resolution, keyed by pixels).
 */
export function specAt(task, r) {
  const spec = { ...task.preprocess, resolution: r };
  const crop = task.crop_by_resolution?.[r];
  if (crop !== undefined) spec.crop_fraction = crop;
  return spec;
}

/** checkSpec throws an Error naming the first field the page cannot honour. */
export function checkSpec(spec) {
  const r = spec.resolution;
  if (!Number.isInteger(r) || r < 1 || r > 4096) throw new Error(`preprocess: resolution ${r} not in [1, 4096]`);
  if (!(spec.crop_fraction >= 0.05 && spec.crop_fraction <= 1)) {
    throw new Error(`preprocess: crop_fraction ${spec.crop_fraction} not in [0.05, 1]`);
  }
  if ((spec.interpolation ?? 'bilinear') !== 'bilinear') throw new Error(`preprocess: interpolation ${spec.interpolation} not supported`);
  if ((spec.channel_order ?? 'RGB') !== 'RGB') throw new Error(`preprocess: channel order ${spec.channel_order} not supported`);
  if ((spec.layout ?? 'NCHW') !== 'NCHW') throw new Error(`preprocess: layout ${spec.layout} not supported`);
  for (let c = 0; c < 3; c++) {
    if (!Number.isFinite(spec.mean?.[c]) || !(spec.std?.[c] > 0) || !Number.isFinite(spec.std[c])) {
      throw new Error(`preprocess: mean/std[${c}] missing or invalid`);
    }
  }
}

/**
 * resample resizes and crops an RGB image ({width, height, data: 3 bytes per pixel,
 * row-major}) to a planar CHW Float32Array of 0..255 values, length 3·R·R.
 */
export function resample(spec, img) {
  checkSpec(spec);
  const { width: w, height: h, data: pix } = img;
  if (!(w >= 1 && h >= 1) || pix.length !== 3 * w * h) throw new Error(`preprocess: image ${w}x${h} has ${pix.length} bytes`);
  const r = spec.resolution;
  const { sw, sh, left, top } = geometry(spec, w, h);
  const ax = axisMap(w, sw, left, r);
  const ay = axisMap(h, sh, top, r);
  const plane = r * r;
  const dst = new Float32Array(3 * plane);
  const stride = 3 * w;
  for (let y = 0; y < r; y++) {
    const r0 = ay.i0[y] * stride;
    const r1 = ay.i1[y] * stride;
    const wy0 = ay.l0[y];
    const wy1 = ay.l1[y];
    const o = y * r;
    for (let x = 0; x < r; x++) {
      const c0 = 3 * ax.i0[x];
      const c1 = 3 * ax.i1[x];
      const wx0 = ax.l0[x];
      const wx1 = ax.l1[x];
      for (let c = 0; c < 3; c++) {
        // Every product and sum rounded to float32, in Go's order: exact emulation of the
        // float32 blend (double-then-round is correctly rounded for + and ×).
        const top2 = f32(f32(wx0 * pix[r0 + c0 + c]) + f32(wx1 * pix[r0 + c1 + c]));
        const bot2 = f32(f32(wx0 * pix[r1 + c0 + c]) + f32(wx1 * pix[r1 + c1 + c]));
        dst[c * plane + o + x] = f32(f32(wy0 * top2) + f32(wy1 * bot2));
      }
    }
  }
  return dst;
}

/** normalize applies (v/255 − mean[c])/std[c] in float32, in place, to a CHW buffer. */
export function normalize(spec, chw) {
  const plane = chw.length / 3;
  for (let c = 0; c < 3; c++) {
    const m = f32(spec.mean[c]);
    const sd = f32(spec.std[c]);
    for (let i = c * plane; i < (c + 1) * plane; i++) {
      chw[i] = f32(f32(chw[i] / 255) - m) / sd;
    }
  }
  return chw;
}

/** tensor is resample then normalize: the model's input, CHW float32 of length 3·R·R. */
export function tensor(spec, img) {
  return normalize(spec, resample(spec, img));
}

/**
 * rgbFromRGBA turns non-premultiplied RGBA bytes (canvas ImageData) into RGB, compositing
 * onto white as the gateway's decoder does: round((c·a + 255·(255−a)) / 255).
 */
export function rgbFromRGBA(rgba, width, height) {
  const n = width * height;
  if (rgba.length !== 4 * n) throw new Error(`preprocess: ${rgba.length} RGBA bytes for ${width}x${height}`);
  const data = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3];
    for (let c = 0; c < 3; c++) {
      const v = rgba[4 * i + c];
      // Integer rounding of a non-negative quotient: (x + 127) / 255 floored, as in Go.
      data[3 * i + c] = a === 255 ? v : Math.floor((v * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return { width, height, data };
}
