// Turning logits into the answers the gateway gives (/v1/classify), and comparing two
// answers. Pure functions: web/test checks them.

/** softmax in float64 with the maximum subtracted first, as the gateway computes it. */
export function softmax(logits) {
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - m);
    sum += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** topK returns the k most probable classes, ties in index order (a stable sort). */
export function topK(probs, labels, k = 5) {
  const idx = Array.from(probs, (_, i) => i);
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, Math.min(k, idx.length)).map((i) => ({
    index: i,
    label: labels?.[i] ?? '',
    probability: probs[i],
  }));
}

/**
 * compare describes how two top-k answers agree: whether top-1 is the same class and the
 * largest probability difference over the classes both lists contain.
 */
export function compare(a, b) {
  if (!a?.length || !b?.length) return null;
  const pb = new Map(b.map((p) => [p.index, p.probability]));
  let maxDiff = 0;
  let shared = 0;
  for (const p of a) {
    if (pb.has(p.index)) {
      shared++;
      maxDiff = Math.max(maxDiff, Math.abs(p.probability - pb.get(p.index)));
    }
  }
  return { top1Agrees: a[0].index === b[0].index, maxDiff, shared };
}

/** archSummary describes the active blocks of an OFA arch per stage. */
export function archSummary(arch) {
  const d = arch.d ?? [];
  const slots = d.length ? Math.floor((arch.ks?.length ?? 0) / d.length) : 0;
  const stages = d.map((depth, i) => {
    const ks = arch.ks.slice(i * slots, i * slots + depth);
    const e = arch.e.slice(i * slots, i * slots + depth);
    return ks.map((k, j) => `k${k}e${e[j]}`).join(' ');
  });
  const blocks = d.reduce((a, b) => a + b, 0);
  return { text: `${blocks} blocks in ${d.length} stages (depths ${d.join('-')})`, stages };
}
