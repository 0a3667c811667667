// The accuracy-vs-MAdds plot, drawn as inline SVG: every archive entry as a small dot,
// the Pareto front as a line through larger dots, the chosen model ringed and the MAdds
// budget as a dashed vertical line.

import { formatCount } from './budget.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 360;
const M = { left: 56, right: 16, top: 16, bottom: 44 };

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** niceTicks returns about n round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * renderFront draws the plot into container (replacing what was there).
 * opts: {task, archive, front, selected (entry or null), budget (MAdds or 0), onPick(entry)}.
 */
export function renderFront(container, { task, archive, front, selected, budget, onPick }) {
  const pts = archive.length ? archive : front;
  const svg = el('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-labelledby': 'plot-title plot-desc',
    class: 'front-plot',
  });
  svg.append(el('title', { id: 'plot-title' }, `Accuracy versus MAdds for ${task}`));
  const best = front.length ? front.reduce((a, b) => (b.top1 > a.top1 ? b : a)) : null;
  svg.append(
    el(
      'desc',
      { id: 'plot-desc' },
      `${archive.length} evaluated subnets, ${front.length} on the accuracy/MAdds front` +
        (best ? `; the most accurate reaches ${(best.top1 * 100).toFixed(1)} % validation top-1 at ${formatCount(best.madds)} MAdds.` : '.'),
    ),
  );
  if (!pts.length) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' }, 'no archive entries'));
    container.replaceChildren(svg);
    return;
  }
  let x0 = Math.min(...pts.map((p) => p.madds));
  let x1 = Math.max(...pts.map((p) => p.madds));
  let y0 = Math.min(...pts.map((p) => p.top1));
  let y1 = Math.max(...pts.map((p) => p.top1));
  const padX = (x1 - x0) * 0.05 || x0 * 0.1 || 1;
  const padY = (y1 - y0) * 0.08 || 0.01;
  x0 = Math.max(0, x0 - padX);
  x1 += padX;
  y0 = Math.max(0, y0 - padY);
  y1 = Math.min(1, y1 + padY);
  const sx = (v) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (v) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);

  const axes = el('g', { class: 'axes' });
  for (const t of niceTicks(x0, x1)) {
    axes.append(el('line', { x1: sx(t), x2: sx(t), y1: M.top, y2: H - M.bottom, class: 'grid' }));
    axes.append(el('text', { x: sx(t), y: H - M.bottom + 16, 'text-anchor': 'middle', class: 'tick' }, formatCount(t)));
  }
  for (const t of niceTicks(y0 * 100, y1 * 100)) {
    axes.append(el('line', { x1: M.left, x2: W - M.right, y1: sy(t / 100), y2: sy(t / 100), class: 'grid' }));
    axes.append(el('text', { x: M.left - 6, y: sy(t / 100) + 4, 'text-anchor': 'end', class: 'tick' }, `${t}`));
  }
  axes.append(el('text', { x: (M.left + W - M.right) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, 'MAdds'));
  axes.append(
    el('text', { x: 14, y: (M.top + H - M.bottom) / 2, 'text-anchor': 'middle', class: 'axis-label',
      transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})` }, 'validation top-1 (%)'),
  );
  svg.append(axes);

  if (budget > 0 && budget >= x0 && budget <= x1) {
    svg.append(el('line', { x1: sx(budget), x2: sx(budget), y1: M.top, y2: H - M.bottom, class: 'budget-line' }));
  }

  const dots = el('g', { class: 'archive' });
  for (const p of archive) {
    const c = el('circle', { cx: sx(p.madds), cy: sy(p.top1), r: 3, class: 'pt-archive' });
    c.append(el('title', {}, `${formatCount(p.madds)} MAdds, ${(p.top1 * 100).toFixed(2)} % (${p.split || 'val'})`));
    dots.append(c);
  }
  svg.append(dots);

  const sorted = [...front].sort((a, b) => a.madds - b.madds);
  if (sorted.length > 1) {
    svg.append(el('polyline', { points: sorted.map((p) => `${sx(p.madds)},${sy(p.top1)}`).join(' '), class: 'front-line' }));
  }
  const fg = el('g', { class: 'front' });
  for (const p of sorted) {
    const c = el('circle', { cx: sx(p.madds), cy: sy(p.top1), r: 5, class: 'pt-front' });
    c.append(el('title', {}, `front: ${formatCount(p.madds)} MAdds, ${(p.top1 * 100).toFixed(2)} % — click to use this budget`));
    if (onPick) c.addEventListener('click', () => onPick(p));
    fg.append(c);
  }
  svg.append(fg);

  if (selected) {
    svg.append(el('circle', { cx: sx(selected.madds), cy: sy(selected.top1), r: 9, class: 'pt-selected' }));
  }
  container.replaceChildren(svg);
}
