// Unit tests of the page's budget parsing: the golden cases are the Go parser's answers
// (package specializer), written by `go test ./web -run Golden -update`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseCount, parseLatency, parseBudget, BudgetError, formatCount, formatBudget, checkRange,
  sliderToValue, valueToSlider, goTrimSpace,
} from '../static/budget.js';

const golden = JSON.parse(readFileSync(new URL('../testdata/budget.golden.json', import.meta.url), 'utf8'));

function category(err) {
  assert.ok(err instanceof BudgetError, `want a BudgetError, got ${err}`);
  if (err.message.includes('out of range')) return 'range';
  if (err.message.includes('not a whole number')) return 'fraction';
  return 'syntax';
}

test('the golden file has cases of both kinds', () => {
  assert.ok(golden.filter((c) => c.kind === 'count' && c.ok).length > 20);
  assert.ok(golden.filter((c) => c.kind === 'count' && !c.ok).length > 20);
  assert.ok(golden.filter((c) => c.kind === 'latency' && c.ok).length > 10);
});

test('parseCount and parseLatency agree with the Go parser on every golden case', () => {
  const failures = [];
  for (const c of golden) {
    const parse = c.kind === 'count' ? parseCount : parseLatency;
    let got;
    try {
      got = { ok: true, value: parse(c.input) };
    } catch (err) {
      got = { ok: false, error: c.kind === 'count' ? category(err) : 'syntax' };
    }
    const want = c.ok ? { ok: true, value: c.value } : { ok: false, error: c.error };
    try {
      assert.deepEqual(got, want);
    } catch {
      failures.push(`${c.kind} ${JSON.stringify(c.input)}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('the forms the API documents', () => {
  for (const s of ['300M', '300m', '0.3G', '300e6', '300000000']) assert.equal(parseCount(s), 300_000_000, s);
  assert.equal(parseLatency('12.5ms'), 12.5);
  assert.equal(parseBudget('madds', '1.5k'), 1500);
  assert.equal(parseBudget('latency_ms', '7'), 7);
  assert.throws(() => parseBudget('watts', '7'), BudgetError);
  assert.throws(() => parseCount('0.5'), /out of range/);
  assert.throws(() => parseCount('1.5'), /not a whole number/);
  assert.throws(() => parseCount('abc'), /want e.g. 300M/);
});

test('goTrimSpace trims what Go trims', () => {
  const cases = [
    ['\u0085 x \u3000', 'x'], // U+0085 is space to Go, not to JavaScript's trim
    ['\ufeffx', '\ufeffx'], // U+FEFF is not space to Go
    ['\t\n\v\f\r x', 'x'],
  ];
  for (const [in_, want] of cases) assert.equal(goTrimSpace(in_), want, JSON.stringify(in_));
});

test('formatCount writes compact counts that parse back', () => {
  const cases = [
    [999, '999'],
    [1000, '1k'],
    [1500, '1.5k'],
    [219_000_000, '219M'],
    [1_234_567, '1.23M'],
    [2_500_000_000, '2.5G'],
  ];
  for (const [n, want] of cases) {
    assert.equal(formatCount(n), want);
    assert.ok(Math.abs(parseCount(formatCount(n)) - n) <= n * 5e-3, want);
  }
  assert.equal(formatCount(1_234_567, 4), '1.235M');
  assert.equal(formatBudget('madds', 300e6), '300M MAdds');
  assert.equal(formatBudget('latency_ms', 12.5), '12.5 ms');
});

test('checkRange rejects budgets below the feasible range only', () => {
  const range = [50e6, 600e6];
  assert.match(checkRange('madds', 10e6, range, 'task t'), /^budget below range: 10M MAdds .* \(50M MAdds\)/);
  assert.equal(checkRange('madds', 50e6, range), '');
  assert.equal(checkRange('madds', 5e9, range), '');
  assert.match(checkRange('latency_ms', 3, [0, 0], 'task t'), /no latency/);
});

test('the slider covers the feasible range on a log scale and inverts', () => {
  const range = [1e6, 1e8];
  assert.equal(sliderToValue('madds', 0, range), 1e6);
  assert.equal(sliderToValue('madds', 1000, range), 1e8);
  assert.equal(sliderToValue('madds', 500, range), 1e7);
  for (const pos of [0, 1, 250, 500, 999, 1000]) {
    assert.equal(valueToSlider(sliderToValue('madds', pos, range), range), pos);
  }
  assert.equal(valueToSlider(1, range), 0);
  assert.equal(valueToSlider(1e12, range), 1000);
  const lat = sliderToValue('latency_ms', 500, [2, 8]);
  assert.equal(lat, 4);
  // A degenerate range (one model) always answers that model.
  assert.equal(sliderToValue('madds', 10, [5e6, 5e6]), 5e6);
});
