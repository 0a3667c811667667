// Unit tests of the page's preprocessing against tensors computed by the gateway's Go
// package preprocess (testdata/preprocess.golden.json, `go test ./web -run Golden -update`).
// The comparison is bit-exact: the page must feed a model exactly what the gateway does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { geometry, tensor, resample, normalize, rgbFromRGBA, roundHalfEven, checkSpec, specAt } from '../static/preprocess.js';

const golden = JSON.parse(readFileSync(new URL('../testdata/preprocess.golden.json', import.meta.url), 'utf8'));
const bytes = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));
const floats = (b64) => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};
const images = golden.images.map((im) => ({ width: im.w, height: im.h, data: bytes(im.rgb) }));

test('roundHalfEven rounds ties to even like Go math.RoundToEven', () => {
  const cases = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [2.4999, 2], [2.5001, 3], [7, 7], [182.85714285714286, 183]];
  for (const [x, want] of cases) assert.equal(roundHalfEven(x), want, String(x));
});

test('geometry matches Go on every golden size', () => {
  assert.ok(golden.geometries.length > 100);
  for (const g of golden.geometries) {
    const { sw, sh, left, top } = geometry({ resolution: g.resolution, crop_fraction: g.crop_fraction }, g.w, g.h);
    assert.deepEqual([sw, sh, left, top], g.geometry, JSON.stringify(g));
  }
});

test('tensor is bit-identical to Go Spec.Tensor', () => {
  assert.ok(golden.tensors.length >= 20);
  for (const c of golden.tensors) {
    const img = images[c.image];
    const want = floats(c.tensor);
    const { sw, sh, left, top } = geometry(c.spec, img.width, img.height);
    assert.deepEqual([sw, sh, left, top], c.geometry);
    const got = tensor(c.spec, img);
    assert.equal(got.length, want.length);
    let bad = -1;
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], want[i])) {
        bad = i;
        break;
      }
    }
    assert.equal(bad, -1, `${img.width}x${img.height} R=${c.spec.resolution} f=${c.spec.crop_fraction}: value ${bad} is ${got[bad]}, Go has ${want[bad]}`);
  }
});

test('tensor is resample then normalize', () => {
  const c = golden.tensors[0];
  const img = images[c.image];
  const x = resample(c.spec, img);
  assert.ok(x.every((v) => v >= 0 && v <= 255));
  assert.deepEqual(normalize(c.spec, x), tensor(c.spec, img));
});

test('alpha is composited onto white as the Go decoder does', () => {
  const a = golden.alpha;
  const got = rgbFromRGBA(bytes(a.rgba), a.w, a.h);
  assert.deepEqual(got.data, bytes(a.rgb));
});

test('invalid specs and images are refused with an error', () => {
  const ok = { resolution: 8, crop_fraction: 1, mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] };
  assert.doesNotThrow(() => checkSpec(ok));
  assert.throws(() => checkSpec({ ...ok, resolution: 0 }), /resolution/);
  assert.throws(() => checkSpec({ ...ok, crop_fraction: 0 }), /crop_fraction/);
  assert.throws(() => checkSpec({ ...ok, std: [0, 1, 1] }), /std/);
  assert.throws(() => checkSpec({ ...ok, interpolation: 'bicubic' }), /interpolation/);
  assert.throws(() => resample(ok, { width: 2, height: 2, data: new Uint8Array(5) }), /bytes/);
  assert.throws(() => rgbFromRGBA(new Uint8Array(3), 1, 1), /RGBA/);
});

test('specAt takes the crop of the model\'s resolution where the task names one', () => {
  const task = { preprocess: { resolution: 128, crop_fraction: 1, mean: [0.5, 0.5, 0.5] }, crop_by_resolution: { 96: 0.875 } };
  assert.deepEqual(specAt(task, 96), { resolution: 96, crop_fraction: 0.875, mean: [0.5, 0.5, 0.5] });
  assert.deepEqual(specAt(task, 160), { resolution: 160, crop_fraction: 1, mean: [0.5, 0.5, 0.5] });
  assert.deepEqual(specAt({ preprocess: { crop_fraction: 0.9 } }, 64), { resolution: 64, crop_fraction: 0.9 });
  assert.equal(task.preprocess.resolution, 128, 'the task is not changed');
});
