// End-to-end test of the web page: builds a demo task (web/internal/mktask), starts a real
// gateway (natgw serve) on it, and drives the page in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core): pick a task and a budget, load a real
// Flowers102 test image (converted to PNG), and check that the browser's onnxruntime-web
// answer equals the gateway's /v1/classify answer (same top-1, probabilities within 1e-3).
//
// Run through scripts/test-web.sh, which installs Chromium, playwright-core and the
// onnxruntime-web files. Environment:
//   NATGW_SHARED           shared data folder (default ../shared from the repo root)
//   NATGW_REQUIRE_SHARED=1 fail instead of using a synthetic image when it is missing
//   NATGW_WEB_SCREENSHOT   where to save the page's screenshot (default: a temp folder)
//   CHROMIUM               browser binary (default /usr/bin/chromium)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'natgw-web-e2e-'));
const TOLERANCE = 1e-3;

let browser;
let demo; // mktask's answer: {task, image, real_image, source}
const servers = [];

function sharedDir() {
  const d = process.env.NATGW_SHARED || path.resolve(root, '..', 'shared');
  if (existsSync(path.join(d, 'data', 'flowers102', 'classes.tsv'))) return d;
  if (process.env.NATGW_REQUIRE_SHARED === '1') throw new Error(`shared data missing at ${d} (NATGW_REQUIRE_SHARED=1)`);
  console.log(`# shared data missing at ${d}: using a synthetic test image instead of a Flowers102 one`);
  return '';
}

/** startGateway runs `natgw serve` on the demo models and resolves to its base URL. */
function startGateway(env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(tmp, 'natgw'), ['serve', '--models', path.join(tmp, 'models'), '--addr', '127.0.0.1:0', '--access-log=false', '--log-level=warn'], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    servers.push(p);
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start in 120 s: ${out} ${err}`)), 120_000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: `http://${m[1]}`, proc: p, log: () => err });
      }
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}: ${err}`));
    });
  });
}

let gw; // with the onnxruntime-web files
let bare; // without them

before(async () => {
  execFileSync('go', ['build', '-o', path.join(tmp, 'natgw'), './cmd/natgw'], { cwd: root, stdio: 'inherit' });
  execFileSync('go', ['build', '-o', path.join(tmp, 'mktask'), './web/internal/mktask'], { cwd: root, stdio: 'inherit' });
  const shared = sharedDir();
  const args = ['-out', path.join(tmp, 'models'), '-png', path.join(tmp, 'image.png')];
  if (shared) args.push('-shared', shared);
  demo = JSON.parse(execFileSync(path.join(tmp, 'mktask'), args, { cwd: root }).toString());
  console.log(`# task ${demo.task}, test image ${demo.source}`);
  gw = await startGateway({ NATGW_ORT_WEB_DIR: path.join(root, 'third_party', 'onnxruntime-web') });
  bare = await startGateway({ NATGW_ORT_WEB_DIR: path.join(tmp, 'no-runtime') });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // No background traffic (the machine has no network). launch() itself starts Chromium
    // with a fresh, empty --user-data-dir in a temporary folder each time.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const p of servers) p.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

async function api(base, p) {
  const res = await fetch(new URL(p, base));
  const body = await res.json();
  assert.ok(res.ok, `${p}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** newPage opens the page and records what goes wrong inside it, for failure messages. */
async function newPage(base, viewport = { width: 1280, height: 900 }, hash = '') {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()} (${m.location().url})`));
  page.problems = problems;
  await page.goto(`${base}/${hash}`);
  return page;
}

async function predictions(page, col) {
  return page.$$eval(`#${col} ol.preds li`, (lis) => lis.map((li) => ({ index: Number(li.dataset.index), p: Number(li.dataset.probability), label: li.querySelector('.label').textContent })));
}

/** A budget in the middle of the task's MAdds range, as a person would type it. */
async function middleBudget(base) {
  const t = await api(base, `/v1/tasks/${demo.task}`);
  const [lo, hi] = t.feasible.madds;
  return { text: `${Math.round(Math.sqrt(lo * hi) / 1e5) / 10}M`, task: t };
}

test('the browser and the gateway give the same top-5 for a real image', { timeout: 300_000 }, async () => {
  const page = await newPage(gw.url);
  await page.check(`#task-${demo.task}`);
  const { text } = await middleBudget(gw.url);
  await page.fill('#budget-text', text);
  await page.press('#budget-text', 'Enter');
  const want = await api(gw.url, `/v1/models?task=${demo.task}&madds=${text}`);
  await page.waitForSelector(`#model-card dl[data-model-id="${want.id}"]`);
  const card = await page.textContent('#model-card');
  for (const s of [want.sha256, `${want.resolution}×${want.resolution}`, 'Architecture', 'File size', 'Accuracy', 'on validation']) {
    assert.ok(card.includes(s), `model card lacks ${s}: ${card}`);
  }
  // One scale: the card states, and the plot marks, the validation top-1 the front is drawn
  // with and models are chosen by.
  assert.equal(want.accuracy.split, 'val');
  assert.equal(Number(await page.getAttribute('#model-card [data-top1]', 'data-top1')), want.accuracy.top1);
  const { task: t } = await middleBudget(gw.url);
  const entry = t.archive.find((e) => e.madds === want.madds && JSON.stringify(e.arch) === JSON.stringify(want.arch));
  assert.ok(entry && entry.top1 === want.accuracy.top1, `the answer's top-1 ${want.accuracy.top1} is not its archive entry's ${entry?.top1}`);
  assert.match(await page.textContent('#runtime-note'), /onnxruntime-web/);

  await page.setInputFiles('#image-input', demo.image);
  await page.waitForSelector('#comparison[data-state=agree], #comparison[data-state=disagree], #comparison[data-state=incomplete]', { timeout: 240_000 });
  const b = await predictions(page, 'browser-result');
  const s = await predictions(page, 'server-result');
  assert.equal(b.length, 5, `browser column: ${await page.textContent('#browser-result')} ${page.problems.join('; ')}`);
  assert.equal(s.length, 5, `server column: ${await page.textContent('#server-result')}`);
  console.log(`# browser top-1 ${b[0].label} ${b[0].p}; gateway top-1 ${s[0].label} ${s[0].p}`);
  assert.equal(b[0].index, s[0].index, 'top-1 differs between the browser and the gateway');
  const sp = new Map(s.map((x) => [x.index, x.p]));
  let shared = 0;
  for (const x of b) {
    if (!sp.has(x.index)) continue;
    shared++;
    assert.ok(Math.abs(x.p - sp.get(x.index)) <= TOLERANCE, `class ${x.index}: browser ${x.p}, gateway ${sp.get(x.index)}`);
  }
  assert.ok(shared >= 1);
  assert.equal(await page.getAttribute('#comparison', 'data-state'), 'agree');
  assert.match(await page.textContent('#browser-result'), /inference \d+(\.\d+)? ms/);
  assert.ok(Number(await page.getAttribute('#browser-result', 'data-inference-ms')) > 0);
  assert.match(await page.textContent('#server-result'), /inference \d+(\.\d+)? ms/);
  // The front plot shows the archive and the chosen model.
  assert.ok((await page.$$('#plot circle.pt-archive')).length > 10);
  assert.ok((await page.$$('#plot circle.pt-front')).length >= 2);
  assert.equal((await page.$$('#plot circle.pt-selected')).length, 1);
  assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));

  const shot = process.env.NATGW_WEB_SCREENSHOT || path.join(tmp, 'screenshot.png');
  mkdirSync(path.dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`# screenshot ${shot}`);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the page works with the keyboard alone', { timeout: 120_000 }, async () => {
  const page = await newPage(gw.url);
  await page.waitForSelector('#model-card dl[data-model-id]');
  const t = await api(gw.url, `/v1/tasks/${demo.task}`);
  // Tab from the top of the page reaches the task, the budget controls and the file input.
  const reached = new Set();
  for (let i = 0; i < 40 && !reached.has('image-input'); i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  for (const id of [`task-${demo.task}`, 'budget-kind', 'budget-slider', 'budget-text', 'image-input']) {
    assert.ok(reached.has(id), `Tab never reached #${id} (reached ${[...reached].join(', ')})`);
  }
  // The slider's End key picks the largest budget: the most accurate model overall.
  await page.focus('#budget-slider');
  await page.keyboard.press('End');
  const best = t.front.reduce((a, x) => (x.top1 > a.top1 ? x : a));
  await page.waitForFunction((m) => document.querySelector('#model-card')?.textContent.includes(m), best.madds.toLocaleString('en'));
  await page.keyboard.press('Home');
  const smallest = Math.min(...t.archive.map((e) => e.madds));
  await page.waitForFunction((m) => document.querySelector('#budget-text')?.value && document.querySelector('#model-card')?.textContent.includes(m), smallest.toLocaleString('en'));
  // Typing a budget and Enter resolves it.
  await page.focus('#budget-text');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(String(t.feasible.madds[1]));
  await page.keyboard.press('Enter');
  await page.waitForFunction((m) => document.querySelector('#model-card')?.textContent.includes(m), best.madds.toLocaleString('en'));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the page is readable on a phone-sized viewport', { timeout: 120_000 }, async () => {
  const page = await newPage(gw.url, { width: 375, height: 740 });
  await page.waitForSelector('#model-card dl[data-model-id]');
  // Dropped this time, not picked.
  const dt = await page.evaluateHandle((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const d = new DataTransfer();
    d.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
    return d;
  }, readFileSync(demo.image).toString('base64'));
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
  await page.waitForSelector('#comparison[data-state=agree]', { timeout: 120_000 });
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px viewport: it scrolls sideways`);
  // The two result columns stack.
  const [a, b] = await Promise.all(['#browser-result', '#server-result'].map((s) => page.locator(s).boundingBox()));
  assert.ok(b.y >= a.y + a.height - 1, 'result columns do not stack on a phone');
  const plot = await page.locator('#plot svg').boundingBox();
  assert.ok(plot.width <= width && plot.width > 250, `plot is ${plot.width}px wide`);
  await page.context().close();
});

test('errors are shown to the user in words', { timeout: 120_000 }, async () => {
  // Unknown task (from the address).
  let page = await newPage(gw.url, undefined, '#task=no-such-task');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /unknown task "no-such-task"/);
  await page.context().close();

  page = await newPage(gw.url);
  await page.waitForSelector('#model-card dl[data-model-id]');
  // Budget below the feasible range.
  await page.fill('#budget-text', '1k');
  await page.press('#budget-text', 'Enter');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /budget below range: 1k MAdds/);
  assert.match(await page.textContent('#budget-error'), /budget below range/);
  // A budget that does not parse.
  await page.fill('#budget-text', '12 apples');
  await page.press('#budget-text', 'Enter');
  await page.waitForFunction(() => /malformed budget/.test(document.querySelector('#error').textContent));
  // Back to a good budget, then a network failure.
  await page.fill('#budget-text', '1G');
  await page.press('#budget-text', 'Enter');
  await page.waitForSelector('#error', { state: 'hidden' });
  const models = (u) => u.pathname.endsWith('/v1/models');
  await page.route(models, (r) => r.abort('connectionrefused'));
  await page.fill('#budget-text', '900M');
  await page.press('#budget-text', 'Enter');
  await page.waitForFunction(() => /network failure/.test(document.querySelector('#error').textContent));
  await page.unroute(models);
  await page.fill('#budget-text', '1G');
  await page.press('#budget-text', 'Enter');
  await page.waitForSelector('#error', { state: 'hidden' });
  // An image it cannot decode, and a file that is no image at all.
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);
  await page.setInputFiles('#image-input', { name: 'broken.png', mimeType: 'image/png', buffer: png });
  await page.waitForFunction(() => /could not decode "broken.png"/.test(document.querySelector('#error').textContent));
  await page.setInputFiles('#image-input', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('just text') });
  await page.waitForFunction(() => /not a PNG or JPEG image/.test(document.querySelector('#error').textContent));
  await page.context().close();
});

test('without the onnxruntime-web files the page says so and still classifies on the gateway', { timeout: 120_000 }, async () => {
  for (const [p, type] of [['/ort/ort-wasm-simd-threaded.wasm', 'application/wasm'], ['/ort/ort.wasm.min.mjs', 'text/javascript; charset=utf-8'], ['/static/app.js', 'text/javascript; charset=utf-8']]) {
    const res = await fetch(new URL(p, gw.url), { method: 'HEAD' });
    assert.equal(res.status, 200, p);
    assert.equal(res.headers.get('content-type'), type, p);
  }
  assert.equal((await fetch(new URL('/ort/ort.wasm.min.mjs', bare.url))).status, 404);
  const page = await newPage(bare.url);
  await page.waitForSelector('#model-card dl[data-model-id]');
  assert.match(await page.textContent('#runtime-note'), /In-browser inference is unavailable/);
  await page.setInputFiles('#image-input', demo.image);
  await page.waitForSelector('#server-result ol.preds li');
  assert.equal((await predictions(page, 'server-result')).length, 5);
  assert.match(await page.textContent('#browser-result'), /In-browser inference is unavailable/);
  await page.context().close();
});
