// The page: tasks → front plot → budget → model card → image → top-5 in the browser and
// on the gateway, side by side. Everything the user can see go wrong is said in words in
// the #error alert or in the column it concerns.

import { KINDS, BudgetError, parseBudget, formatBudget, formatCount, checkRange, sliderToValue, valueToSlider } from './budget.js';
import { tensor, rgbFromRGBA, specAt } from './preprocess.js';
import { softmax, topK, compare, archSummary } from './classify.js';
import { renderFront } from './plot.js';

const $ = (id) => document.getElementById(id);
const STEPS = 1000;
const MAX_PIXELS = 40_000_000; // the gateway's default limit
const RUNTIME_URL = new URL('../ort/ort.wasm.min.mjs', import.meta.url);

/** A message for people; anything else caught is shown with a generic prefix. */
class UserError extends Error {}

const state = {
  tasks: [],
  task: null, // /v1/tasks/{task}
  kind: 'madds',
  value: 0,
  model: null, // ModelInfo
  image: null, // {file, rgb}
  runtime: false, // the gateway serves onnxruntime-web and the browser can run it
  runtimeNote: '',
  ort: null, // Promise of the onnxruntime-web module, loaded on first use
  debounce: 0, // slider timer
  sessions: new Map(), // model id → Promise<InferenceSession>
  // One counter per kind of request: an answer to a superseded request is dropped.
  seq: { task: 0, model: 0, image: 0, classify: 0 },
};

// ---- messages ----

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

function setStatus(msg) {
  $('status').textContent = msg;
}

function describe(err) {
  if (err instanceof UserError || err instanceof BudgetError) return err.message;
  return `unexpected error: ${err?.message ?? err}`;
}

// ---- the gateway ----

function apiURL(path, params) {
  const u = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(params ?? {})) u.searchParams.set(k, v);
  return u;
}

/** api fetches a gateway URL and returns its JSON, turning every failure into words. */
async function api(path, params, init) {
  const url = apiURL(path, params);
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new UserError(`network failure: could not reach the gateway at ${url.origin} (${err.message}). Check that it is running and try again.`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: said below
  }
  if (!res.ok) {
    const why = body?.error ?? res.statusText ?? 'no details';
    throw new UserError(`the gateway answered ${res.status}: ${why}`);
  }
  if (body === null) throw new UserError(`the gateway sent an unreadable answer for ${url.pathname}`);
  return body;
}

// ---- the URL fragment keeps task and budget (#task=flowers&madds=300M) ----

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const out = { task: p.get('task') };
  for (const k of Object.keys(KINDS)) if (p.has(k)) out.budget = { kind: k, text: p.get(k) };
  return out;
}

function writeHash() {
  if (!state.task) return;
  const p = new URLSearchParams({ task: state.task.name });
  if (state.value) p.set(state.kind, String(state.value));
  history.replaceState(null, '', `#${p}`);
}

// ---- tasks ----

function renderTasks() {
  const fs = $('tasks');
  const legend = fs.querySelector('legend');
  fs.replaceChildren(legend);
  if (!state.tasks.length) {
    const p = document.createElement('p');
    p.textContent = 'This gateway serves no tasks yet.';
    fs.append(p);
    return;
  }
  for (const t of state.tasks) {
    const id = `task-${t.name}`;
    const label = document.createElement('label');
    label.className = 'task';
    label.htmlFor = id;
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'task';
    input.id = id;
    input.value = t.name;
    input.addEventListener('change', () => input.checked && selectTask(t.name));
    const name = document.createElement('strong');
    name.textContent = t.name;
    const info = document.createElement('span');
    info.className = 'muted';
    info.textContent = ` — ${t.description ? `${t.description}; ` : ''}${t.classes} classes, ${t.archive_size} subnets, ${formatCount(t.feasible.madds[0])}–${formatCount(t.feasible.madds[1])} MAdds`;
    label.append(input, name, info);
    fs.append(label);
  }
}

function checkTaskRadio(name) {
  for (const r of document.querySelectorAll('input[name=task]')) r.checked = r.value === name;
}

async function selectTask(name, budget) {
  const seq = ++state.seq.task;
  showError('');
  setStatus(`Loading task ${name}…`);
  let t;
  try {
    t = await api(`v1/tasks/${encodeURIComponent(name)}`);
  } catch (err) {
    if (seq !== state.seq.task) return;
    setStatus('');
    showError(describe(err));
    return;
  }
  if (seq !== state.seq.task) return;
  state.task = t;
  state.model = null;
  checkTaskRadio(t.name);
  $('front-h').textContent = `Accuracy vs MAdds — ${t.name}`;
  const kindSel = $('budget-kind');
  for (const o of kindSel.options) {
    const r = t.feasible[o.value];
    o.disabled = !(r && r[1] > 0);
  }
  let kind = budget?.kind ?? state.kind;
  if (!(t.feasible[kind]?.[1] > 0)) kind = 'madds';
  state.kind = kind;
  kindSel.value = kind;
  let value = null;
  if (budget) {
    try {
      value = parseBudget(kind, budget.text);
    } catch (err) {
      showError(describe(err));
    }
  }
  if (value === null) value = sliderToValue(kind, STEPS / 2, t.feasible[kind], STEPS);
  setStatus('');
  await setBudget(kind, value);
}

// ---- budget ----

function feasibleText() {
  const t = state.task;
  const r = t.feasible[state.kind];
  return `${t.name}: models from ${formatBudget(state.kind, r[0])} to ${formatBudget(state.kind, r[1])}.`;
}

function showBudgetError(msg) {
  const e = $('budget-error');
  e.textContent = msg;
  e.hidden = !msg;
  $('budget-text').setAttribute('aria-invalid', msg ? 'true' : 'false');
}

function syncBudgetControls() {
  const r = state.task.feasible[state.kind];
  $('budget-slider').value = String(valueToSlider(state.value, r, STEPS));
  $('budget-slider').setAttribute('aria-valuetext', formatBudget(state.kind, state.value));
  $('budget-text').value = state.kind === 'latency_ms' ? String(state.value) : formatCount(state.value, 4);
  $('feasible').textContent = feasibleText();
}

/** setBudget validates a budget against the task's range and resolves it to a model. */
async function setBudget(kind, value) {
  if (!state.task) return;
  state.kind = kind;
  state.value = value;
  syncBudgetControls();
  const bad = checkRange(kind, value, state.task.feasible[kind], `task ${state.task.name}`);
  showBudgetError(bad);
  if (bad) {
    showError(bad);
    state.model = null;
    renderModel();
    plot();
    return;
  }
  writeHash();
  await resolveModel();
}

function budgetParam() {
  return String(state.value);
}

async function resolveModel() {
  const seq = ++state.seq.model;
  setStatus(`Resolving ${formatBudget(state.kind, state.value)} for ${state.task.name}…`);
  let info;
  try {
    info = await api('v1/models', { task: state.task.name, [state.kind]: budgetParam() });
  } catch (err) {
    if (seq !== state.seq.model) return;
    setStatus('');
    showError(describe(err));
    state.model = null;
    renderModel();
    plot();
    return;
  }
  if (seq !== state.seq.model) return;
  showError('');
  setStatus('');
  state.model = info;
  renderModel();
  plot();
  $('classify').disabled = !state.image;
  if (info.pending) followPending(seq);
  if (state.image) await classify();
}

/**
 * followPending asks again, willing to wait (Prefer: wait), while the gateway searches
 * for or measures a better model for this budget, and shows the answer once the work
 * settles: the same model when the candidate measured worse, a better one otherwise.
 */
async function followPending(seq) {
  let info;
  try {
    info = await api('v1/models', { task: state.task.name, [state.kind]: budgetParam() }, { headers: { Prefer: 'wait=30' } });
  } catch {
    return; // the answer shown stands; a later change of budget asks again
  }
  if (seq !== state.seq.model) return;
  const changed = info.id !== state.model?.id;
  state.model = info;
  renderModel();
  plot();
  if (changed && state.image) await classify();
}

function plot() {
  const t = state.task;
  if (!t) return;
  const m = state.model;
  renderFront($('plot'), {
    task: t.name,
    archive: t.archive ?? [],
    front: t.front ?? [],
    selected: m ? { madds: m.madds, top1: m.accuracy.top1 } : null,
    budget: state.kind === 'madds' ? state.value : 0,
    onPick: (p) => setBudget('madds', p.madds),
  });
}

// ---- model card ----


function row(dl, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  dl.append(dt, dd);
  return dd;
}

function renderModel() {
  const card = $('model-card');
  const m = state.model;
  if (!m) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'No model for this budget.';
    card.replaceChildren(p);
    return;
  }
  const dl = document.createElement('dl');
  const arch = archSummary(m.arch);
  const archNode = document.createElement('span');
  archNode.textContent = arch.text;
  const ol = document.createElement('ol');
  ol.className = 'stages';
  for (const s of arch.stages) {
    const li = document.createElement('li');
    li.textContent = s;
    ol.append(li);
  }
  archNode.append(ol);
  row(dl, 'Architecture', archNode);
  row(dl, 'Resolution', `${m.resolution}×${m.resolution}`);
  row(dl, 'MAdds', `${formatCount(m.madds)} (${m.madds.toLocaleString('en')})`);
  row(dl, 'Parameters', `${formatCount(m.params)} (${m.params.toLocaleString('en')})`);
  const acc = m.accuracy;
  let accText = `${(acc.top1 * 100).toFixed(2)} % top-1 on validation (the scale models are chosen by)`;
  if (acc.test_top1 != null) accText += `; ${(acc.test_top1 * 100).toFixed(2)} % on the held-out test split (offline evaluation)`;
  row(dl, 'Accuracy', accText).dataset.top1 = String(acc.top1);
  if (m.pending) {
    const c = m.pending.candidate;
    const text = c
      ? `measuring a subnet predicted at ${(c.top1 * 100).toFixed(2)} % (validation, a surrogate's prediction) at ${formatCount(c.madds)} MAdds; it replaces this model only if measured better`
      : 'searching for a subnet predicted to beat this one';
    row(dl, 'Better model', text).dataset.pending = m.pending.state;
  }
  if (m.latency_ms) row(dl, 'Latency', `${m.latency_ms} ms (reference machine)`);
  row(dl, 'File size', `${(m.size_bytes / 1e6).toFixed(2)} MB (${m.size_bytes.toLocaleString('en')} bytes)`);
  const sha = document.createElement('code');
  sha.className = 'sha';
  sha.textContent = m.sha256;
  row(dl, 'SHA-256', sha);
  const a = document.createElement('a');
  a.href = apiURL(m.onnx_url).pathname;
  a.download = `${m.task}-${m.sha256.slice(0, 16)}.onnx`;
  a.textContent = 'Download the ONNX file';
  row(dl, 'File', a);
  dl.dataset.modelId = m.id;
  card.replaceChildren(dl);
}

// ---- image ----

/** sniff tells PNG and JPEG apart by their magic bytes, as the gateway does. */
function sniff(bytes) {
  if (bytes.length >= 8 && [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return '';
}

async function decodeImage(file) {
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  const kind = sniff(head);
  if (!kind) throw new UserError(`could not decode "${file.name}": it is not a PNG or JPEG image`);
  let bmp;
  try {
    // No colour management and no premultiplication: the gateway applies neither.
    bmp = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (err) {
    throw new UserError(`could not decode "${file.name}": the ${kind.toUpperCase()} data is damaged or unsupported (${err.message})`);
  }
  const { width, height } = bmp;
  if (width * height > MAX_PIXELS) {
    bmp.close();
    throw new UserError(`"${file.name}" is ${width}×${height} pixels, more than the ${MAX_PIXELS / 1e6} megapixels allowed`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const data = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  return { kind, rgb: rgbFromRGBA(data, width, height) };
}

async function onImage(file) {
  if (!file) return;
  showError('');
  const seq = ++state.seq.image;
  setStatus(`Decoding ${file.name}…`);
  let decoded;
  try {
    decoded = await decodeImage(file);
  } catch (err) {
    if (seq !== state.seq.image) return;
    setStatus('');
    showError(describe(err));
    return;
  }
  if (seq !== state.seq.image) return;
  setStatus('');
  state.image = { file, ...decoded };
  const img = $('preview');
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.alt = `the chosen image, ${file.name}`;
  img.hidden = false;
  $('classify').disabled = !state.model;
  if (state.model) await classify();
}

// ---- onnxruntime-web ----

async function checkRuntime() {
  try {
    const res = await fetch(RUNTIME_URL, { method: 'HEAD' });
    if (!res.ok) {
      state.runtimeNote = 'In-browser inference is unavailable: this gateway does not serve the onnxruntime-web files (scripts/install-onnxruntime-web.sh installs them). Images are still classified on the gateway.';
      return;
    }
    if (typeof WebAssembly !== 'object') {
      state.runtimeNote = 'In-browser inference is unavailable: this browser has no WebAssembly. Images are still classified on the gateway.';
      return;
    }
    state.runtime = true;
  } catch (err) {
    state.runtimeNote = `In-browser inference is unavailable: the runtime could not be fetched (${err.message}).`;
  } finally {
    $('runtime-note').textContent = state.runtimeNote || 'Images are classified here with onnxruntime-web (WebAssembly) and on the gateway.';
  }
}

function loadRuntime() {
  state.ort ??= import(RUNTIME_URL.href).then((ort) => {
    ort.env.wasm.wasmPaths = new URL('./', RUNTIME_URL).href;
    // Threads need cross-origin isolation, which this page does not ask for.
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.logLevel = 'error';
    return ort;
  });
  return state.ort;
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null; // only in secure contexts (https or localhost)
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** session downloads a model's ONNX file once, checks its SHA-256 and opens a session. */
function session(ort, m) {
  if (!state.sessions.has(m.id)) {
    const p = (async () => {
      const url = apiURL(m.onnx_url);
      let res;
      try {
        res = await fetch(url);
      } catch (err) {
        throw new UserError(`network failure while downloading the model (${err.message})`);
      }
      if (!res.ok) {
        let why = res.statusText;
        try { why = (await res.json()).error ?? why; } catch { /* not JSON */ }
        throw new UserError(`downloading the model failed: the gateway answered ${res.status}: ${why}`);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const sum = await sha256Hex(bytes);
      if (sum !== null && sum !== m.sha256) {
        throw new UserError(`the downloaded model is corrupt: SHA-256 ${sum}, expected ${m.sha256}`);
      }
      try {
        return await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      } catch (err) {
        throw new UserError(`onnxruntime-web could not load the model: ${err.message}`);
      }
    })();
    p.catch(() => state.sessions.delete(m.id)); // let a later try start again
    state.sessions.set(m.id, p);
  }
  return state.sessions.get(m.id);
}

async function runBrowser(m, image) {
  if (!state.runtime) throw new UserError(state.runtimeNote || 'In-browser inference is unavailable.');
  let ort;
  try {
    ort = await loadRuntime();
  } catch (err) {
    state.runtime = false;
    state.runtimeNote = `In-browser inference is unavailable: onnxruntime-web did not load (${err.message}).`;
    $('runtime-note').textContent = state.runtimeNote;
    throw new UserError(state.runtimeNote);
  }
  const t0 = performance.now();
  const sess = await session(ort, m);
  const loadMS = performance.now() - t0;
  const spec = specAt(state.task, m.resolution);
  const t1 = performance.now();
  const x = tensor(spec, image.rgb);
  const preMS = performance.now() - t1;
  const input = new ort.Tensor('float32', x, [1, 3, m.resolution, m.resolution]);
  const t2 = performance.now();
  const out = await sess.run({ [sess.inputNames[0]]: input });
  const inferMS = performance.now() - t2;
  const logits = out[sess.outputNames[0]].data;
  return { predictions: topK(softmax(logits), state.task.labels, 5), inferMS, preMS, loadMS };
}

async function runServer(image) {
  const form = new FormData();
  form.append('image', image.file, image.file.name);
  const t0 = performance.now();
  const res = await api('v1/classify', { task: state.task.name, [state.kind]: budgetParam() }, { method: 'POST', body: form });
  return { ...res, roundTripMS: performance.now() - t0 };
}

function ms(v) {
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
}

function renderPredictions(col, preds, lines) {
  const body = $(col).querySelector('.body');
  const ol = document.createElement('ol');
  ol.className = 'preds';
  for (const p of preds) {
    const li = document.createElement('li');
    li.dataset.index = String(p.index);
    li.dataset.probability = String(p.probability);
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label || `class ${p.index}`;
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = `${(p.probability * 100).toFixed(2)} %`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(100, p.probability * 100))}%`;
    bar.append(fill);
    li.append(label, prob, bar);
    ol.append(li);
  }
  const parts = [ol];
  for (const l of lines) {
    const p = document.createElement('p');
    p.className = 'timing';
    p.textContent = l;
    parts.push(p);
  }
  body.replaceChildren(...parts);
}

function renderColumnError(col, msg) {
  const p = document.createElement('p');
  p.className = 'col-error';
  p.textContent = msg;
  $(col).querySelector('.body').replaceChildren(p);
}

function renderBusy(col, msg) {
  const p = document.createElement('p');
  p.className = 'muted';
  p.textContent = msg;
  $(col).querySelector('.body').replaceChildren(p);
}

async function classify() {
  const m = state.model;
  const image = state.image;
  if (!m || !image) return;
  const seq = ++state.seq.classify;
  $('comparison').textContent = '';
  $('comparison').dataset.state = 'pending';
  renderBusy('browser-result', state.runtime ? 'Running in the browser…' : '');
  renderBusy('server-result', 'Asking the gateway…');
  const [b, s] = await Promise.allSettled([runBrowser(m, image), runServer(image)]);
  if (seq !== state.seq.classify) return;
  if (b.status === 'fulfilled') {
    const v = b.value;
    renderPredictions('browser-result', v.predictions, [
      `inference ${ms(v.inferMS)} · preprocessing ${ms(v.preMS)}`,
      v.loadMS > 1 ? `model download and session start ${ms(v.loadMS)}` : 'model session reused',
    ]);
    $('browser-result').dataset.inferenceMs = String(v.inferMS);
  } else {
    renderColumnError('browser-result', describe(b.reason));
  }
  if (s.status === 'fulfilled') {
    const v = s.value;
    const lines = [`inference ${ms(v.inference_ms)} · round trip ${ms(v.roundTripMS)}`];
    if (v.model?.id && v.model.id !== m.id) lines.push(`the gateway answered with another model (${v.model.id.slice(0, 12)}…): the budget was resolved again`);
    renderPredictions('server-result', v.predictions, lines);
  } else {
    renderColumnError('server-result', describe(s.reason));
  }
  const cmp = b.status === 'fulfilled' && s.status === 'fulfilled' ? compare(b.value.predictions, s.value.predictions) : null;
  const out = $('comparison');
  if (cmp) {
    const top = b.value.predictions[0];
    out.textContent = (cmp.top1Agrees
      ? `Both answer “${top.label || `class ${top.index}`}”.`
      : 'The browser and the gateway disagree on the top-1 label.') +
      ` Largest probability difference over the ${cmp.shared} labels both list: ${cmp.maxDiff.toExponential(2)}.` +
      (image.kind === 'jpeg' ? ' (JPEG decoders differ in the last bits; a PNG compares exactly.)' : '');
    out.dataset.state = cmp.top1Agrees ? 'agree' : 'disagree';
    out.dataset.maxDiff = String(cmp.maxDiff);
  } else {
    out.textContent = '';
    out.dataset.state = 'incomplete';
  }
}

// ---- wiring ----

function wire() {
  $('budget-kind').addEventListener('change', (e) => {
    if (!state.task) return;
    const kind = e.target.value;
    setBudget(kind, sliderToValue(kind, Number($('budget-slider').value), state.task.feasible[kind], STEPS));
  });
  $('budget-slider').addEventListener('input', (e) => {
    if (!state.task) return;
    const v = sliderToValue(state.kind, Number(e.target.value), state.task.feasible[state.kind], STEPS);
    $('budget-text').value = state.kind === 'latency_ms' ? String(v) : formatCount(v, 4);
    e.target.setAttribute('aria-valuetext', formatBudget(state.kind, v));
    clearTimeout(state.debounce);
    state.debounce = setTimeout(() => setBudget(state.kind, v), 250);
  });
  $('budget-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!state.task) return;
    let v;
    try {
      v = parseBudget(state.kind, $('budget-text').value);
    } catch (err) {
      showBudgetError(describe(err));
      showError(describe(err));
      return;
    }
    clearTimeout(state.debounce);
    setBudget(state.kind, v);
  });
  $('image-input').addEventListener('change', (e) => onImage(e.target.files?.[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) onImage(f);
    else showError('could not read the dropped item: drop an image file');
  });
  $('classify').addEventListener('click', () => classify());
  window.addEventListener('hashchange', () => {
    const h = readHash();
    if (h.task && h.task !== state.task?.name) selectTask(h.task, h.budget);
  });
}

async function main() {
  wire();
  const runtimeChecked = checkRuntime();
  let list;
  try {
    list = await api('v1/tasks');
  } catch (err) {
    showError(describe(err));
    $('tasks').querySelector('p')?.remove();
    return;
  }
  state.tasks = list.tasks ?? [];
  renderTasks();
  await runtimeChecked;
  if (!state.tasks.length) {
    showError(list.message ?? 'This gateway serves no tasks.');
    return;
  }
  const h = readHash();
  await selectTask(h.task ?? state.tasks[0].name, h.budget);
}

main();
