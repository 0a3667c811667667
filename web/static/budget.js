// Budget parsing and formatting, identical to the gateway's (package specializer:
// ParseCount, ParseLatency) so that the page rejects exactly what the server rejects.
// web/testdata/budget.golden.json holds the Go parser's answers; web/test checks these.

/** The budget kinds, as /v1/models query parameters. */
export const KINDS = {
  madds: { label: 'MAdds', unit: 'MAdds', example: '300M' },
  params: { label: 'Parameters', unit: 'params', example: '5M' },
  latency_ms: { label: 'Latency (ms)', unit: 'ms', example: '12.5' },
};

/** BudgetError is a budget the user typed that cannot be used; its message is for people. */
export class BudgetError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BudgetError';
  }
}

// Go's strings.TrimSpace trims Unicode White_Space (unicode.IsSpace); JavaScript's trim()
// also trims U+FEFF and not U+0085, so the set is spelled out.
const SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'g');

/** goTrimSpace is Go's strings.TrimSpace. */
export function goTrimSpace(s) {
  return s.replace(TRIM, '');
}

// The decimal forms Go's strconv.ParseFloat accepts (hex floats, underscores, Inf and NaN
// are rejected by both parsers anyway).
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function parseGoFloat(s) {
  if (!DECIMAL.test(s)) return NaN;
  return Number(s); // correctly rounded, like ParseFloat; overflow gives ±Infinity
}

const MAX_COUNT = 1e15;
const MULT = { k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9, b: 1e9, B: 1e9 };

/**
 * parseCount parses a MAdds or params budget: 300M, 300m (m is million), 0.3G, 1.5k,
 * 300e6 or 300000000. It returns a positive whole number or throws a BudgetError.
 */
export function parseCount(input) {
  const text = String(input);
  let s = goTrimSpace(text);
  let mult = 1;
  if (s.length > 0 && Object.hasOwn(MULT, s[s.length - 1])) {
    mult = MULT[s[s.length - 1]];
    s = s.slice(0, -1);
  }
  const syntax = () =>
    new BudgetError(`malformed budget: ${JSON.stringify(text)} (want e.g. 300M, 0.3G, 300e6 or 300000000)`);
  if (s === '' || /[xXpP_]/.test(s) || s.startsWith('+')) throw syntax();
  let v = parseGoFloat(s);
  if (!Number.isFinite(v)) throw syntax();
  v *= mult;
  if (!(v >= 1 && v <= MAX_COUNT)) {
    throw new BudgetError(`malformed budget: ${JSON.stringify(text)} is out of range [1, 1e15]`);
  }
  const r = Math.round(v); // v > 0: same as Go's math.Round
  if (Math.abs(v - r) > 1e-9 * v) {
    throw new BudgetError(`malformed budget: ${JSON.stringify(text)} is not a whole number`);
  }
  return r;
}

/** parseLatency parses a latency budget in milliseconds ("12", "12.5", "12ms"). */
export function parseLatency(input) {
  const text = String(input);
  let s = goTrimSpace(text);
  if (s.endsWith('ms')) s = s.slice(0, -2);
  const v = parseGoFloat(s);
  if (!Number.isFinite(v) || v <= 0 || v > 1e6 || /[xXpP_]/.test(s)) {
    throw new BudgetError(`malformed budget: latency ${JSON.stringify(text)} (want milliseconds, e.g. 12.5)`);
  }
  return v;
}

/** parseBudget parses a value of the given kind (madds, params or latency_ms). */
export function parseBudget(kind, input) {
  if (kind === 'latency_ms') return parseLatency(input);
  if (kind === 'madds' || kind === 'params') return parseCount(input);
  throw new BudgetError(`unknown budget kind ${JSON.stringify(kind)}`);
}

/**
 * formatCount writes a count compactly (1234567 → "1.23M") with up to `digits`
 * significant digits; the result parses back with parseCount to about that precision.
 */
export function formatCount(n, digits = 3) {
  const a = Math.abs(n);
  for (const [div, suffix] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= div) return `${trimNumber((n / div).toPrecision(digits))}${suffix}`;
  }
  return String(Math.round(n));
}

/** formatBudget writes a budget value of a kind for the text field and messages. */
export function formatBudget(kind, v) {
  if (kind === 'latency_ms') return `${trimNumber(v.toPrecision(3))} ms`;
  return `${formatCount(v)} ${KINDS[kind].unit}`;
}

function trimNumber(s) {
  // toPrecision may answer in exponent form for large values; Number() normalises it.
  return String(Number(s));
}

/**
 * checkRange reports a budget that no model of the task can satisfy. range is the task's
 * feasible [min, max] for the kind (from /v1/tasks). It returns an error message or "".
 * A budget above the range is fine: the best model overall fits it.
 */
export function checkRange(kind, v, range, task = 'this task') {
  const [lo, hi] = range;
  if (!(hi > 0)) return `${task} has no ${KINDS[kind].label.toLowerCase()} figures: choose another budget kind`;
  if (v < lo) {
    return `budget below range: ${formatBudget(kind, v)} is less than the smallest model of ${task} needs (${formatBudget(kind, lo)})`;
  }
  return '';
}

/**
 * Slider positions map to budgets on a log scale between the feasible bounds, so that
 * small models get as much of the slider as large ones. steps is the slider's max.
 */
export function sliderToValue(kind, pos, range, steps = 1000) {
  const [lo, hi] = range;
  if (!(lo > 0) || !(hi > lo)) return hi > 0 ? hi : lo;
  const t = Math.min(Math.max(pos / steps, 0), 1);
  const v = Math.exp(Math.log(lo) + t * (Math.log(hi) - Math.log(lo)));
  if (kind === 'latency_ms') return Number(v.toPrecision(4));
  // Whole counts; the ends hit the bounds exactly so the smallest model stays reachable.
  if (pos <= 0) return lo;
  if (pos >= steps) return hi;
  return Math.round(v);
}

/** valueToSlider is sliderToValue's inverse, clamped to [0, steps]. */
export function valueToSlider(v, range, steps = 1000) {
  const [lo, hi] = range;
  if (!(lo > 0) || !(hi > lo)) return steps;
  const t = (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
  return Math.round(Math.min(Math.max(t, 0), 1) * steps);
}
