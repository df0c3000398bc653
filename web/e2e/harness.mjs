// What the end-to-end tests share: a real `cairn serve` debug binary with
// the scripted LLM server in place of a paid provider, Debian's Chromium
// driven by playwright-core (no browser download), checks that fail loudly,
// and screenshots of every page opened when one does.
//
//   CAIRN_BIN=… SCRIPTED_LLM_BIN=… CAIRN_SANDBOX_PYTHON=… node e2e/<test>.mjs

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const shots = join(here, 'screenshots');
mkdirSync(shots, { recursive: true });
const cairnBin = process.env.CAIRN_BIN;
const llmBin = process.env.SCRIPTED_LLM_BIN;
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The sandbox's Python with the data stack (charts need matplotlib, tables pandas).
const sandboxPython = process.env.CAIRN_SANDBOX_PYTHON;
if (!cairnBin || !llmBin || !sandboxPython) throw new Error('set CAIRN_BIN, SCRIPTED_LLM_BIN and CAIRN_SANDBOX_PYTHON');

const children = [];
const cleanup = [];
function stopAll() {
  for (const child of children) child.kill('SIGKILL');
  for (const step of cleanup) step();
}
process.on('exit', stopAll);

/** Stops the servers as an operator would (SIGTERM, so a server stops what it
 * started — the agent's Chromium among them), then anything left with SIGKILL. */
async function stopGracefully() {
  const exited = children.map(
    (child) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', resolve);
      }),
  );
  for (const child of children) child.kill('SIGTERM');
  await Promise.race([Promise.all(exited), new Promise((resolve) => setTimeout(resolve, 10_000))]);
  stopAll();
}

/** Runs `step` when the test ends, however it ends. */
export function onCleanup(step) {
  cleanup.push(step);
}

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function firstLine(child) {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end >= 0) resolve(text.slice(0, end).trim());
    });
    child.on('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

async function waitReady(base) {
  for (let i = 0; i < 300; i += 1) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('cairn did not become ready');
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Waits (up to 10 s) until `probe` resolves truthy: for state the page loads after it appears. */
export async function eventually(probe, message) {
  for (let i = 0; i < 100; i += 1) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`check failed: ${message}`);
}

/** The scripted LLM server, answering with `replies` in order (then the
 * last one for ever); resolves to its base URL. */
export async function startLlm(replies) {
  const llm = spawn(llmBin, replies, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(llm);
  return firstLine(llm);
}

/**
 * `cairn serve` on a free port with a fresh data folder, using the scripted
 * LLM at `llmUrl`; `env` adds or overrides settings. Resolves once ready to
 * `{ base, port, data }`.
 */
export async function startCairn(llmUrl, env = {}) {
  const data = mkdtempSync(join(tmpdir(), 'cairn-e2e-'));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(cairnBin, ['serve'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CAIRN__SERVER__BIND: `127.0.0.1:${port}`,
      CAIRN__DATA_DIR: data,
      CAIRN__SANDBOX__POOL_SIZE: '0',
      CAIRN__SANDBOX__PYTHON: sandboxPython,
      CAIRN__LOG__LEVEL: 'warn',
      CAIRN__AUTH__PUBLIC_URL: `http://127.0.0.1:${port}`,
      CAIRN__LLM__PROVIDERS: `[{name="scripted",kind="openai-compatible",base_url="${llmUrl}/v1",models=[{name="m"}]}]`,
      CAIRN__LLM__EMBEDDING_MODEL: 'scripted/embedder',
      ...env,
    },
  });
  children.push(server);
  await waitReady(base);
  return { base, port, data };
}

/** Signs `page` in at `base` with the sign-in form and waits for the projects. */
export async function signIn(page, base, email, password) {
  await page.goto(base);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
}

/**
 * Launches Chromium and runs `body(browser, pages)`; `body` adds every page
 * it opens to `pages`. If it throws, each page is screenshot as it stood
 * (`e2e/screenshots/<failurePrefix>-N.png`) and the error is thrown on.
 * Chromium, the server and the LLM are stopped either way.
 */
export async function withBrowser(failurePrefix, body) {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  // Every page opened, for screenshots of how things stood when a check failed.
  const pages = [];
  try {
    await body(browser, pages);
  } catch (error) {
    for (const [n, page] of pages.entries()) {
      await page.screenshot({ path: join(shots, `${failurePrefix}-${n}.png`), fullPage: true }).catch(() => undefined);
    }
    console.error(`e2e: failed; the pages as they stood are in e2e/screenshots/${failurePrefix}-*.png`);
    throw error;
  } finally {
    await browser.close();
    await stopGracefully();
  }
}
