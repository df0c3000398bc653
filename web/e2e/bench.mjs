// The web app's speed, measured in Chromium against a real server (not a
// test: the figures go to BENCHMARKS.md). The first view's JavaScript
// (gzipped, from web/dist), the time to interactive of the sign-in page and
// of a thread, and a thread with 500 steps: how long it takes to open, how
// many step rows are in the DOM (virtualised), and the frame times while it
// scrolls from end to start.
//
//   CAIRN_BIN=… SCRIPTED_LLM_BIN=… CAIRN_SANDBOX_PYTHON=… node e2e/bench.mjs

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { signIn, startCairn, startLlm, withBrowser } from './harness.mjs';

const STEPS = 500;
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

/** The scripts the first page loads before it can run: the entry and its preloads, gzipped. */
function firstViewBytes() {
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  return scripts.reduce((sum, path) => sum + gzipSync(readFileSync(join(dist, path))).length, 0);
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];

// One reply for ever: a step that prints, so the run goes on until its step budget ends it.
const llmUrl = await startLlm(['Next step.\n```python\nprint("step done")\n```']);
const { base } = await startCairn(llmUrl, { CAIRN__AGENT__MAX_STEPS: String(STEPS + 1) });

const password = 'correct horse battery staple';
const register = await fetch(`${base}/api/v1/auth/register`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ email: 'bench@example.com', password, display_name: 'Bench' }),
});
if (!register.ok) throw new Error(`register: ${register.status}`);
const grant = await fetch(`${base}/api/v1/auth/token`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'password', username: 'bench@example.com', password }),
});
const auth = { Authorization: `Bearer ${(await grant.json()).access_token}`, 'Content-Type': 'application/json' };
const project = await (await fetch(`${base}/api/v1/projects`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'Bench' }) })).json();
const thread = await (await fetch(`${base}/api/v1/projects/${project.id}/threads`, { method: 'POST', headers: auth, body: JSON.stringify({ title: 'Long run' }) })).json();
const started = Date.now();
const posted = await (await fetch(`${base}/api/v1/threads/${thread.id}/messages`, { method: 'POST', headers: auth, body: JSON.stringify({ content: 'Go on for a while' }) })).json();
for (;;) {
  const run = await (await fetch(`${base}/api/v1/runs/${posted.run.id}`, { headers: auth })).json();
  if (['succeeded', 'failed', 'cancelled'].includes(run.status)) break;
  await new Promise((r) => setTimeout(r, 500));
}
// The steps it made (the budget counts model calls; each wrote one step).
let steps = 0;
for (let after = 0; ; ) {
  const page = await (await fetch(`${base}/api/v1/threads/${thread.id}/events?after=${after}&limit=1000`, { headers: auth })).json();
  if (page.length === 0) break;
  steps += page.filter((e) => e.kind === 'code').length;
  after = page.at(-1).seq;
}
console.log(`bench: a run of ${steps} steps made in ${((Date.now() - started) / 1000).toFixed(0)} s`);

await withBrowser('bench-failure', async (browser, pages) => {
  const signIn = [];
  for (let i = 0; i < 10; i += 1) {
    const page = await (await browser.newContext()).newPage();
    const t0 = Date.now();
    await page.goto(base);
    await page.getByLabel('E-mail').waitFor();
    signIn.push(Date.now() - t0);
    await page.context().close();
  }
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  pages.push(page);
  await signIn(page, base, 'bench@example.com', password);
  const opens = [];
  let rendered = 0;
  for (let i = 0; i < 5; i += 1) {
    await page.goto(`${base}/#/projects/${project.id}`);
    await page.getByRole('link', { name: 'Long run', exact: true }).first().waitFor();
    const t0 = Date.now();
    await page.getByRole('link', { name: 'Long run', exact: true }).first().click();
    await page.getByLabel(`Step ${steps}`, { exact: true }).waitFor({ timeout: 30_000 });
    opens.push(Date.now() - t0);
    rendered = await page.locator('[aria-label^="Step "]').count();
  }
  // Scrolling from the end to the start: the time between frames.
  const frames = await page.evaluate(async () => {
    const scroller = document.querySelector('[aria-label="Conversation"]');
    const gaps = [];
    let last = performance.now();
    for (let top = scroller.scrollHeight; top > 0; top -= 400) {
      scroller.scrollTop = top;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    return gaps;
  });
  console.log(`bench: first view's JavaScript: ${(firstViewBytes() / 1024).toFixed(1)} KB gzipped`);
  console.log(`bench: sign-in page interactive: ${median(signIn)} ms median of 10, ${Math.max(...signIn)} ms at worst`);
  console.log(`bench: a thread of ${steps} steps opened (its last step shown): ${median(opens)} ms median of 5, ${Math.max(...opens)} ms at worst`);
  console.log(`bench: step rows in the DOM at once: ${rendered} of ${steps}`);
  console.log(
    `bench: scrolling it from end to start: ${frames.length} frames, ${median(frames).toFixed(1)} ms median, ${percentile(frames, 0.95).toFixed(1)} ms p95, ${Math.max(...frames).toFixed(1)} ms at worst`,
  );
});
