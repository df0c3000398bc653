// End-to-end: the agent's workspace in the browser, against a real server,
// the real sandbox, Chromium for the agent's browser tool and the scripted
// LLM. A member picks a model, attaches a file the agent reads, and watches
// the agent's computer live (terminal lines, a browser screenshot of an
// allowlisted page, a file appearing); then replays the run, shares it
// (opened without signing in, refused once revoked), edits the message into
// a branch, makes and revokes an API key, reads the usage chart and the
// administration pages. axe-core checks every view: no serious or critical
// violation. Screenshots of the new views go to e2e/screenshots/.
//
//   CAIRN_BIN=… SCRIPTED_LLM_BIN=… CAIRN_SANDBOX_PYTHON=… node e2e/workspace.mjs

import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { check, eventually, onCleanup, shots, signIn, startCairn, startLlm, withBrowser } from './harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** A page on 127.0.0.1 for the agent's browser (allowlisted: the tools refuse private addresses otherwise). */
const site = createServer((_, response) => {
  response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  response.end('<!doctype html><title>Granite quarry</title><body style="font:32px sans-serif"><h1>Blocks for sale</h1><p>Grey granite, 40 € a tonne.</p></body>');
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
onCleanup(() => site.close());
const sitePort = site.address().port;

const block = (...lines) => ['```python', ...lines, '```'].join('\n');
const llmUrl = await startLlm([
  block(
    "load_file('uploads/brief.txt')",
    "print('brief:', open('uploads/brief.txt').read().strip())",
    "open('notes.txt', 'w').write('granite at 40 a tonne')",
    `page = browser_open('http://127.0.0.1:${sitePort}/')`,
    "print('title:', page['title'])",
    'import time',
    'time.sleep(4)',
  ),
  block("final_answer('The quarry sells **grey granite** at 40 € a tonne.')"),
  block("final_answer('In dollars: about 43 a tonne.')"),
]);
const { base } = await startCairn(llmUrl, {
  CAIRN__TOOLS__ALLOW_PRIVATE: `["127.0.0.1:${sitePort}"]`,
  CAIRN__LLM__PROVIDERS: `[{name="scripted",kind="openai-compatible",base_url="${llmUrl}/v1",models=[{name="m"},{name="n"}]}]`,
  CAIRN__LLM__DEFAULT_MODEL: 'scripted/m',
});

/** Runs axe-core on the page as it stands (in a context that lets the script in) and fails on serious or critical violations. */
async function accessible(page, what) {
  await page.addScriptTag({ path: axePath });
  const violations = await page.evaluate(async () => {
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`);
  });
  check(violations.length === 0, `${what} has no serious or critical accessibility violation:\n  ${violations.join('\n  ')}`);
  console.log(`e2e: axe: ${what}: 0 serious or critical violations`);
}

await withBrowser('workspace-failure', async (browser, pages) => {
  // axe is injected as a script: this context lets it past the CSP (the
  // hostile-content test checks the CSP itself).
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, bypassCSP: true });
  const owner = await context.newPage();
  pages.push(owner);
  await owner.goto(base);
  await accessible(owner, 'the sign-in page');
  await owner.getByRole('button', { name: 'New here? Create an account' }).click();
  await owner.getByLabel('Your name').fill('Ada');
  await owner.getByLabel('E-mail').fill('ada@example.com');
  await owner.getByLabel('Password').fill('correct horse battery staple');
  await owner.getByRole('button', { name: 'Create account' }).click();
  await owner.getByRole('heading', { name: 'Projects' }).waitFor();
  await owner.getByLabel('Project name').fill('Quarry');
  await owner.getByRole('button', { name: 'Create' }).click();
  await owner.getByRole('heading', { name: 'Quarry' }).waitFor();
  const views = owner.getByRole('navigation', { name: 'Project views' });
  for (const view of ['Library', 'Members', 'Memory', 'Settings', 'Threads']) {
    await views.getByRole('link', { name: view }).click();
    await owner.waitForTimeout(300);
    await accessible(owner, `the project's ${view.toLowerCase()}`);
  }
  await accessible(owner, 'the projects page with the sidebar');

  // A new thread from the sidebar, a model picked, a file attached.
  await owner.getByRole('list', { name: 'Threads of Quarry' }).getByRole('button', { name: '+ New thread' }).click();
  await owner.getByRole('heading', { name: 'New thread' }).waitFor();
  await owner.getByRole('button', { name: 'Rename' }).click();
  await owner.getByLabel('Thread title').fill('Granite prices');
  await owner.getByRole('button', { name: 'Save', exact: true }).click();
  await owner.getByRole('heading', { name: 'Granite prices' }).waitFor();
  await accessible(owner, 'an empty thread');
  await owner.getByLabel('Model for this run').selectOption('scripted/n');
  await owner.getByLabel('Files to attach').setInputFiles({ name: 'brief.txt', mimeType: 'text/plain', buffer: Buffer.from('find the granite price\n') });
  await owner.getByRole('list', { name: 'Attached files' }).getByText('brief.txt').waitFor();
  await owner.getByLabel('Your message').fill('What does the quarry charge? My brief is attached.');
  await owner.getByRole('button', { name: 'Send' }).click();

  // The agent's computer, live: the terminal's lines, the page its browser saw, the file it wrote.
  const computer = owner.getByRole('region', { name: "The agent's computer" });
  const terminal = computer.getByLabel('Terminal');
  await terminal.getByText('brief: find the granite price').waitFor({ timeout: 60_000 });
  await terminal.getByText('title: Granite quarry').waitFor({ timeout: 30_000 });
  await computer.getByRole('tab', { name: 'browser' }).click();
  const shot = computer.getByRole('img', { name: 'The page Granite quarry after browser_open' });
  await shot.waitFor({ timeout: 30_000 });
  check(await shot.evaluate((img) => img.complete && img.naturalWidth > 100), 'the screenshot is a real picture');
  check((await computer.getByLabel('Address').innerText()) === `http://127.0.0.1:${sitePort}/`, 'the address bar shows the page');
  await computer.getByRole('tab', { name: 'files' }).click();
  await computer.getByRole('list', { name: 'Workspace files' }).getByText('notes.txt').waitFor({ timeout: 30_000 });
  const conversation = owner.getByRole('region', { name: 'Conversation' });
  const answer = conversation.getByRole('article', { name: 'Answer from Cairn' });
  await answer.getByText('grey granite').waitFor({ timeout: 60_000 });
  await owner.screenshot({ path: join(shots, 'workspace.png') });
  await accessible(owner, 'a thread with a finished run');
  // The run went on the model picked for it.
  const threadId = new URL(owner.url()).hash.split('/').pop();
  const grant = await fetch(`${base}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: 'ada@example.com', password: 'correct horse battery staple' }),
  });
  const bearer = { Authorization: `Bearer ${(await grant.json()).access_token}` };
  const events = await (await fetch(`${base}/api/v1/threads/${threadId}/events?after=0`, { headers: bearer })).json();
  const queued = events.find((e) => e.kind === 'run.status' && e.payload.status === 'queued');
  check(queued?.payload.model === 'scripted/n', `the run used the model picked (${JSON.stringify(queued?.payload)})`);
  const posted = events.find((e) => e.kind === 'message.created' && e.payload.role === 'user');
  check(posted?.payload.attachments?.[0] === 'uploads/brief.txt', 'the message names its attachment');

  // Replay: back to the start, then to the end.
  await conversation.getByRole('button', { name: 'Replay' }).click();
  const replay = owner.getByRole('group', { name: 'Replay' });
  await replay.getByText(/^Event 0 of \d+$/).waitFor();
  check((await conversation.getByLabel('Step 1', { exact: true }).count()) === 0, 'the replay starts before the first step');
  await replay.getByRole('slider', { name: 'Replay position' }).press('End');
  await conversation.getByLabel('Step 1', { exact: true }).waitFor();
  await replay.getByRole('button', { name: 'End replay' }).click();

  // Share the run; the link opens without signing in, and not once revoked.
  await conversation.getByRole('button', { name: 'Share' }).click();
  const dialog = owner.getByRole('dialog', { name: 'Share this run' });
  await dialog.getByRole('button', { name: 'Make a link' }).click();
  const link = await dialog.getByLabel('Share link').inputValue();
  check(link.startsWith(`${base}/#/shared/`), `a share link (${link})`);
  const anonymous = await (await browser.newContext({ viewport: { width: 1300, height: 900 }, bypassCSP: true })).newPage();
  pages.push(anonymous);
  await anonymous.goto(link);
  await anonymous.getByRole('heading', { name: 'Granite prices' }).waitFor();
  await anonymous.getByRole('article', { name: 'Answer from Cairn' }).getByText('grey granite').waitFor();
  await anonymous.getByRole('tab', { name: 'browser' }).click();
  const sharedShot = anonymous.getByRole('img', { name: 'The page Granite quarry after browser_open' });
  await sharedShot.waitFor();
  await eventually(() => sharedShot.evaluate((img) => img.complete && img.naturalWidth > 100), 'the shared screenshot loads');
  check((await anonymous.getByRole('textbox').count()) === 0, 'a shared run offers nothing to type into');
  await anonymous.screenshot({ path: join(shots, 'shared.png') });
  await accessible(anonymous, 'a shared run');
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await dialog.getByText('revoked').waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await anonymous.reload();
  await anonymous.getByText('This link no longer works').waitFor();

  // Edit the message into a branch: a new thread with the edit and its own answer.
  await conversation.getByRole('button', { name: 'Edit this message and regenerate' }).click();
  await owner.getByLabel('Your edited message').fill('What does the quarry charge in dollars?');
  await owner.getByRole('button', { name: 'Regenerate in a branch' }).click();
  await owner.getByRole('heading', { name: 'Granite prices (edited)' }).waitFor();
  await answer.getByText('In dollars: about 43').waitFor({ timeout: 60_000 });
  await conversation.getByText('branch', { exact: true }).waitFor();

  // API keys: made (shown once), used, revoked.
  await owner.getByRole('link', { name: 'API keys' }).click();
  await owner.getByLabel('What it is for').fill('nightly report');
  await owner.getByRole('button', { name: 'Create the key' }).click();
  const key = await owner.getByLabel('The new key').inputValue();
  const asKey = () => fetch(`${base}/api/v1/projects`, { headers: { Authorization: `Bearer ${key}` } });
  check((await asKey()).status === 200, 'the new key works');
  await owner.screenshot({ path: join(shots, 'keys.png') });
  await accessible(owner, 'the API keys page');
  await owner.getByRole('button', { name: 'Revoke nightly report' }).click();
  await owner.getByRole('list', { name: 'Your keys' }).getByText(/^revoked/).waitFor();
  check((await asKey()).status === 401, 'a revoked key no longer works');

  // Usage over time: the chart and its table.
  await owner.getByRole('link', { name: 'Usage and cost' }).click();
  await owner.getByRole('img', { name: /^Cost per day over 30 days/ }).waitFor();
  await owner.getByRole('table', { name: 'Cost by member' }).getByText('Ada').waitFor();
  await owner.getByLabel('Split by').selectOption('model');
  await owner.getByRole('table', { name: 'Cost by model' }).getByText('scripted/n').waitFor();
  await owner.screenshot({ path: join(shots, 'usage.png') });
  await accessible(owner, 'the usage page');

  // Administration: accounts, the audit log (filtered), connections; the account page.
  await owner.getByRole('link', { name: 'Administration' }).click();
  await owner.getByRole('table', { name: 'Accounts' }).getByText('ada@example.com').waitFor();
  await owner.getByRole('list', { name: 'Audit log' }).getByText('run.shared', { exact: false }).first().waitFor();
  // The sandboxes, per host: this process's own, the threads' sandboxes among them.
  const sandboxes = owner.getByRole('table', { name: 'Sandboxes on local' });
  await sandboxes.getByRole('row').nth(1).waitFor();
  check((await sandboxes.getByRole('link', { name: 'open' }).count()) >= 2, 'the two threads have sandboxes');
  await accessible(owner, 'the administration page');
  await owner.getByRole('link', { name: /^Account/ }).click();
  await owner.waitForTimeout(300);
  await accessible(owner, 'the account page');

  // A phone: the sidebar is a drawer.
  const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, bypassCSP: true })).newPage();
  pages.push(phone);
  await signIn(phone, base, 'ada@example.com', 'correct horse battery staple');
  await phone.getByRole('button', { name: 'Open the menu' }).click();
  const drawer = phone.getByRole('dialog', { name: 'Menu' });
  await drawer.getByRole('link', { name: 'Quarry' }).click();
  await phone.getByRole('heading', { name: 'Quarry' }).waitFor();
  check((await phone.getByRole('dialog', { name: 'Menu' }).count()) === 0, 'the drawer closes on navigating');
  await accessible(phone, 'a project on a phone');

  console.log('e2e: the workspace flows passed; screenshots in e2e/screenshots/');
});
