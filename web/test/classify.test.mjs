// Unit tests of the page's answer handling: softmax/top-k as the gateway computes them,
// the browser/gateway comparison, and the model card's arch summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softmax, topK, compare, archSummary } from '../static/classify.js';

test('softmax sums to one and is shift-invariant', () => {
  const p = softmax(new Float32Array([1, 2, 3]));
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const q = softmax(new Float32Array([1001, 1002, 1003]));
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(p[i] - q[i]) < 1e-12);
  assert.ok(Math.abs(p[2] - Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3))) < 1e-12);
});

test('topK orders by probability, ties by index, and labels classes', () => {
  const got = topK([0.1, 0.4, 0.1, 0.4], ['a', 'b', 'c', 'd'], 3);
  assert.deepEqual(got.map((p) => p.index), [1, 3, 0]);
  assert.deepEqual(got.map((p) => p.label), ['b', 'd', 'a']);
  assert.equal(topK([0.5, 0.5], null, 5).length, 2);
});

test('compare reports top-1 agreement and the largest shared difference', () => {
  const a = [{ index: 2, probability: 0.6 }, { index: 1, probability: 0.3 }, { index: 7, probability: 0.1 }];
  const b = [{ index: 2, probability: 0.5995 }, { index: 1, probability: 0.3004 }, { index: 5, probability: 0.1 }];
  const c = compare(a, b);
  assert.equal(c.top1Agrees, true);
  assert.equal(c.shared, 2);
  assert.ok(Math.abs(c.maxDiff - 0.0005) < 1e-12);
  assert.equal(compare(a, [{ index: 1, probability: 1 }]).top1Agrees, false);
  assert.equal(compare([], b), null);
});

test('archSummary lists the active blocks of each stage', () => {
  const arch = { ks: [3, 5, 7, 3, 5, 5, 3, 3], e: [4, 6, 3, 3, 3, 4, 3, 3], d: [2, 3], r: 160 };
  const s = archSummary(arch);
  assert.equal(s.text, '5 blocks in 2 stages (depths 2-3)');
  assert.deepEqual(s.stages, ['k3e4 k5e6', 'k5e3 k5e4 k3e3']);
});
