// End-to-end: a real `cairn serve` (with the scripted LLM server in place of
// a paid provider) driven through the web app in Debian's Chromium with
// playwright-core (no browser download). Three members in three browser
// contexts: the owner signs up, makes a project and a thread, asks for an
// analysis and watches the run stream with its chart; an editor, present and
// typing, posts while the agent works; a viewer on a phone-sized screen,
// whose network drops mid-run, sees the same run without a gap or a double
// and cannot post. Then the library (previews, versions, the artifact's
// download and share link), settings, administration and password recovery.
// Screenshots of the main screens go to e2e/screenshots/.
//
//   CAIRN_BIN=… SCRIPTED_LLM_BIN=… CAIRN_SANDBOX_PYTHON=… node e2e/flow.mjs

import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { check, eventually, onCleanup, shots, startCairn, startLlm, withBrowser } from './harness.mjs';

// The analysis the scripted model "writes", in two steps: the first reads
// the uploaded CSV from the library, draws a chart and takes a few seconds
// (members talk and a connection drops meanwhile); the second saves a summary
// as an artifact and answers.
const firstStep = [
  'I will read the sales and chart them.',
  '```python',
  "load_file('sales.csv')",
  'import csv, time',
  'import matplotlib',
  "matplotlib.use('Agg')",
  'import matplotlib.pyplot as plt',
  "rows = list(csv.DictReader(open('sales.csv')))",
  "total = sum(int(r['sales']) for r in rows)",
  "print('rows:', len(rows))",
  "plt.plot([int(r['month']) for r in rows], [int(r['sales']) for r in rows])",
  "plt.title('Sales by month')",
  'time.sleep(8)',
  '```',
].join('\n');
const secondStep = [
  'Now the summary.',
  '```python',
  "open('summary.txt', 'w').write(f'total sales: {total}\\n')",
  "save_artifact('summary.txt', name='reports/summary.txt')",
  "final_answer(f'Sales grew **20%**: total {total}.')",
  '```',
].join('\n');
// A planned run afterwards: the planner's plan, the sub-agent's step, the
// supervisor's verdict, and the answer written from the results.
const plannerReply = JSON.stringify({
  tasks: [{ id: 't1', title: 'Best month', goal: 'find the month with the most sales', done_when: 'a month is named', agent: 'analyst' }],
});
const subAgentStep = ['```python', "best = max(rows, key=lambda r: int(r['sales']))", "final_answer(f\"month {best['month']}\")", '```'].join('\n');
const verdict = JSON.stringify({ done: true, why: 'a month is named' });
const synthesis = 'The best month was **March** (month 3).';
const llmUrl = await startLlm([firstStep, secondStep, plannerReply, subAgentStep, verdict, synthesis]);

/**
 * A TCP relay to the server that can cut every connection through it at
 * once, as a network drop does, and counts the event streams opened.
 */
async function dropProxy(target) {
  const sockets = new Set();
  let streams = 0;
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk) => {
      streams += (chunk.toString('latin1').match(/GET \/api\/v1\/threads\/[^ ]+\/events /g) ?? []).length;
      upstream.write(chunk);
    });
    upstream.pipe(client);
    const forget = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => server.close());
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    streams: () => streams,
    cut: () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
  };
}

const { base, port, data } = await startCairn(llmUrl, { CAIRN__AGENT__PLAN_APPROVAL: 'always' });

await withBrowser('failure', async (browser, pages) => {
  const owner = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  pages.push(owner);
  await owner.goto(base);
  await owner.screenshot({ path: join(shots, 'sign-in.png') });
  await owner.getByRole('button', { name: 'New here? Create an account' }).click();
  await owner.getByLabel('Your name').fill('Ada');
  await owner.getByLabel('E-mail').fill('ada@example.com');
  await owner.getByLabel('Password').fill('correct horse battery staple');
  await owner.getByRole('button', { name: 'Create account' }).click();
  await owner.getByLabel('Project name').fill('Sales');
  await owner.getByRole('button', { name: 'Create' }).click();
  // A project's views are pages of their own: its library first.
  const view = (page, name) => page.getByRole('navigation', { name: 'Project views' }).getByRole('link', { name }).click();
  await view(owner, 'Library');
  // Upload a CSV into the library, with its progress bar, and see it listed.
  await owner.getByLabel('Upload files (or drop them here)').setInputFiles({
    name: 'sales.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('month,sales\n1,100\n2,110\n3,120\n'),
  });
  await owner.getByRole('button', { name: 'Download sales.csv' }).waitFor();
  // The same name again makes a second version.
  await owner.getByLabel('Upload files (or drop them here)').setInputFiles({
    name: 'sales.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('month,sales\n1,100\n2,110\n3,120\n'),
  });
  await owner.getByText('v2').first().waitFor();
  // Two more people have accounts; the owner invites one as a viewer, one as an editor.
  for (const [email, name] of [
    ['bo@example.com', 'Bo'],
    ['cy@example.com', 'Cy'],
  ]) {
    const register = await fetch(`${base}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: 'correct horse battery staple', display_name: name }),
    });
    check(register.ok, `the account of ${name} is made`);
  }
  await view(owner, 'Members');
  for (const [email, role] of [
    ['bo@example.com', 'viewer'],
    ['cy@example.com', 'editor'],
  ]) {
    await owner.getByLabel('E-mail of the person to invite').fill(email);
    await owner.getByLabel('Their role').selectOption(role);
    await owner.getByRole('button', { name: 'Invite' }).click();
    await owner.getByRole('list', { name: 'Members' }).getByText(email).waitFor();
  }
  await view(owner, 'Threads');
  await owner.getByLabel('Thread title').fill('Quarterly numbers');
  await owner.screenshot({ path: join(shots, 'project.png') });
  await owner.getByRole('button', { name: 'Start' }).click();
  await owner.getByRole('heading', { name: 'Quarterly numbers' }).waitFor();
  // The owner renames the thread in place.
  await owner.getByRole('button', { name: 'Rename' }).click();
  await owner.getByLabel('Thread title').fill('Quarterly sales');
  await owner.getByRole('button', { name: 'Save', exact: true }).click();
  await owner.getByRole('heading', { name: 'Quarterly sales' }).waitFor();
  const threadPath = new URL(owner.url()).hash;

  async function signIn(origin, email, viewport) {
    const page = await (await browser.newContext({ viewport })).newPage();
    pages.push(page);
    await page.goto(origin);
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill('correct horse battery staple');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    await page.goto(`${origin}/${threadPath}`);
    await page.getByText('Live', { exact: true }).waitFor();
    return page;
  }
  // The viewer's browser reaches the server through a link that will drop.
  const network = await dropProxy(port);
  const viewer = await signIn(network.url, 'bo@example.com', { width: 400, height: 800 });
  const editor = await signIn(base, 'cy@example.com', { width: 1000, height: 900 });

  const conversation = (page) => page.getByRole('region', { name: 'Conversation' });
  // Everyone sees who is here.
  const hereNow = (page) => page.getByRole('list', { name: 'Here now' });
  for (const name of ['Bo', 'Cy']) await hereNow(owner).getByText(name).waitFor();
  await hereNow(viewer).getByText('Ada').waitFor();
  // A viewer watches: no message box, and a note says why.
  await viewer.getByText('You are a viewer in this project').waitFor();
  check((await viewer.getByLabel('Your message').count()) === 0, 'a viewer has no message box');

  // The owner asks; everyone sees the run stream: its code, its output, its chart.
  await owner.getByLabel('Your message').fill('Chart the quarterly sales, please.');
  await owner.getByRole('button', { name: 'Send' }).click();
  const rowsIn = (page) => page.locator('pre', { hasText: /^rows: 3\s*$/ });
  for (const page of [owner, editor, viewer]) {
    await page.locator('code', { hasText: "load_file('sales.csv')" }).first().waitFor({ timeout: 60_000 });
    await rowsIn(page).first().waitFor({ timeout: 60_000 });
  }
  check((await owner.locator('code.hljs .hljs-keyword', { hasText: 'import' }).count()) > 0, 'the code is highlighted');

  // While the code runs: the viewer's network drops…
  const streamsBefore = network.streams();
  network.cut();
  // …the editor types (the owner sees it) and posts; the agent will read it at its next step.
  await editor.getByLabel('Your message').pressSequentially('Please note the trend', { delay: 20 });
  await owner.getByText('Cy is typing…').waitFor();
  await editor.getByLabel('Your message').press('Control+Enter');
  for (const page of [owner, editor, viewer]) {
    const mid = conversation(page).getByRole('article').filter({ hasText: 'Please note the trend' });
    await mid.waitFor({ timeout: 30_000 });
    const by = await mid.locator('span').first().innerText();
    check(by === (page === editor ? 'You' : 'Cy'), `the editor's message names its author (${by})`);
  }
  const answerIn = (page) => conversation(page).getByRole('article', { name: 'Answer from Cairn' }).getByText('Sales grew');
  const chartIn = (page) => page.getByRole('img', { name: 'A figure the code made' });
  for (const page of [owner, editor, viewer]) {
    await answerIn(page).waitFor({ timeout: 60_000 });
    await chartIn(page).first().waitFor();
  }
  // Nothing missed and nothing doubled on the viewer's side, after its reconnect.
  check(network.streams() > streamsBefore, `the viewer reconnected its event stream (${network.streams()} streams)`);
  for (const page of [owner, viewer]) {
    const counts = [await rowsIn(page).count(), await chartIn(page).count(), await answerIn(page).count()];
    check(counts.join() === '1,1,1', `one output, one chart, one answer on each screen (${counts.join()})`);
    const drawn = await chartIn(page).first().evaluate((img) => img.naturalWidth > 100 && img.naturalHeight > 100);
    check(drawn, 'the chart is a real image');
  }
  const stepsOf = async (page) => page.locator('[aria-label^="Step "]').count();
  check((await stepsOf(viewer)) === (await stepsOf(owner)), 'the viewer sees every step the owner sees');
  await owner.screenshot({ path: join(shots, 'thread.png'), fullPage: true });
  await viewer.screenshot({ path: join(shots, 'thread-phone.png'), fullPage: true });
  const strong = await owner.locator('strong', { hasText: '20%' }).count();
  check(strong === 1, 'the answer is rendered as Markdown');
  // The server refuses a viewer's post even when the page is bypassed.
  const grant = await fetch(`${base}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: 'bo@example.com', password: 'correct horse battery staple' }),
  });
  const viewerToken = (await grant.json()).access_token;
  const threadId = threadPath.split('/').pop();
  const refused = await fetch(`${base}/api/v1/threads/${threadId}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${viewerToken}` },
    body: JSON.stringify({ content: 'May I?' }),
  });
  check(refused.status === 403, `the API refuses a viewer's post (${refused.status})`);

  // The keyboard shortcuts are one key away.
  await owner.locator('body').press('?');
  await owner.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
  await owner.keyboard.press('Escape');

  // A planned run: the plan shows beside the chat, for everyone; the owner
  // edits it at the approval question, approves, and the sub-agent's steps
  // are one click away.
  await owner.getByLabel('Plan first, with sub-agents').check();
  await owner.getByLabel('Your message').fill('Which month sold best?');
  await owner.getByRole('button', { name: 'Send' }).click();
  const planIn = (page) => page.getByRole('complementary', { name: 'Plan' });
  // The plan is a tab of the agent's computer (on a phone, the computer folds away above the conversation).
  await owner.getByRole('tab', { name: 'plan' }).click({ timeout: 60_000 });
  await viewer.getByText("The agent's computer").click();
  await viewer.getByRole('tab', { name: 'plan' }).click({ timeout: 60_000 });
  await planIn(owner).getByRole('listitem', { name: 'Task t1: pending' }).waitFor({ timeout: 60_000 });
  await planIn(owner).getByRole('button', { name: 'Edit the plan' }).click();
  await planIn(owner).getByLabel('Goal').fill('name the month with the highest sales');
  await planIn(owner).getByRole('button', { name: 'Save the plan' }).click();
  for (const page of [owner, viewer]) await planIn(page).getByText('name the month with the highest sales').waitFor();
  check((await planIn(viewer).getByRole('button', { name: 'Approve the plan' }).count()) === 0, 'a viewer cannot approve a plan');
  await owner.screenshot({ path: join(shots, 'plan.png'), fullPage: true });
  await planIn(owner).getByRole('button', { name: 'Approve the plan' }).click();
  await planIn(owner).getByRole('listitem', { name: 'Task t1: done' }).waitFor({ timeout: 60_000 });
  await conversation(owner).getByRole('article', { name: 'Answer from Cairn' }).getByText('The best month was').waitFor({ timeout: 60_000 });
  await planIn(owner).getByRole('button', { name: 'Show its 1 step' }).click();
  await planIn(owner).locator('code', { hasText: 'best = max' }).waitFor();

  // (The sign-in page's time to interactive is measured by e2e/bench.mjs.)

  // A reload keeps the session and shows the same thread from the log.
  await owner.reload();
  await answerIn(owner).waitFor();

  // The artifact is in the library, linked to the run; it downloads.
  await owner.getByRole('link', { name: '← Threads' }).click();
  await view(owner, 'Library');
  // The CSV's preview is a table, with its two versions.
  await owner.getByRole('button', { name: 'Preview sales.csv' }).click();
  await owner.getByRole('table', { name: 'Preview of sales.csv' }).getByRole('cell', { name: '110' }).waitFor();
  check((await owner.getByRole('list', { name: 'Versions' }).getByRole('listitem').count()) === 2, 'the CSV has two versions');
  await owner.getByRole('button', { name: 'Close preview' }).click();
  await owner.getByRole('button', { name: '📁 reports' }).click();
  await owner.getByText('made by a run').waitFor();
  await owner.getByRole('button', { name: 'Preview summary.txt' }).click();
  await owner.locator('pre', { hasText: 'total sales: 330' }).waitFor();
  await owner.getByRole('link', { name: 'open its thread' }).waitFor();
  await owner.screenshot({ path: join(shots, 'library.png'), fullPage: true });
  const [download] = await Promise.all([
    owner.waitForEvent('download'),
    owner.getByRole('button', { name: 'Download summary.txt' }).click(),
  ]);
  const saved = join(data, 'downloaded-summary.txt');
  await download.saveAs(saved);
  const content = readFileSync(saved, 'utf8');
  check(content === 'total sales: 330\n', `the downloaded artifact holds the analysis (${JSON.stringify(content)})`);

  // A share link downloads it without signing in.
  await owner.getByRole('button', { name: 'Share a link to summary.txt' }).click();
  const shareUrl = await owner.getByLabel('Share link').inputValue();
  const shared = await fetch(shareUrl);
  check(shared.ok && (await shared.text()) === 'total sales: 330\n', `the share link works without a session (${shareUrl})`);
  await view(owner, 'Memory');
  // The project's memory: the uploaded CSV's text was indexed; a note is
  // remembered and found again by meaning.
  await owner.getByLabel('Something for the project to remember').fill('The sales target for next quarter is 400 units.');
  await owner.getByRole('button', { name: 'Remember', exact: true }).click();
  await owner.getByText('Remembered (1 piece).').waitFor();
  await owner.getByLabel("Search the project's memory").fill('sales target next quarter');
  await owner.getByRole('button', { name: 'Search', exact: true }).click();
  const memories = owner.getByRole('list', { name: 'Memories found' });
  await memories.getByText('The sales target for next quarter is 400 units.').waitFor();
  await memories.getByText('file:sales.csv', { exact: false }).waitFor();
  // The owner sets the project's model, then administers the accounts.
  await view(owner, 'Threads');
  await owner.getByLabel('Search threads', { exact: true }).fill('quarter');
  await owner.getByRole('list', { name: 'Threads', exact: true }).getByText('Quarterly sales').waitFor();
  await owner.getByLabel('Search threads', { exact: true }).fill('no such thread');
  check((await owner.getByRole('list', { name: 'Threads', exact: true }).getByRole('link').count()) === 0, 'the search filters threads');
  await view(owner, 'Settings');
  const saved_model = owner.waitForResponse((r) => r.request().method() === 'PATCH' && r.ok());
  await owner.getByLabel("Model for this project's runs").selectOption('scripted/m');
  await saved_model;
  // The owner renames the project and gives it a budget.
  await owner.getByRole('button', { name: 'Rename' }).click();
  await owner.getByLabel('Project name').fill('Sales team');
  await owner.getByRole('button', { name: 'Save', exact: true }).click();
  await owner.getByRole('heading', { name: 'Sales team' }).waitFor();
  await owner.getByLabel('Budget for model costs (US $, empty for none)').fill('5');
  await owner.getByRole('button', { name: 'Save budget' }).click();
  await owner.getByText('Spent so far: $0.00 of $5.00').waitFor();
  await owner.reload();
  await eventually(
    async () => (await owner.getByLabel("Model for this project's runs").inputValue()) === 'scripted/m',
    'the model choice is kept',
  );
  await owner.getByRole('link', { name: 'Administration' }).click();
  await owner.getByRole('table', { name: 'Accounts' }).getByText('bo@example.com').waitFor();
  await owner.getByRole('list', { name: 'Audit log' }).getByText('member.added', { exact: false }).first().waitFor();
  // Model connections: the configuration's provider is read-only; the
  // owner (the administrator) connects the scripted server as another one,
  // tests it, disables it and removes it, and the key never shows again.
  const connections = owner.getByRole('list', { name: 'Connections' });
  await connections.getByRole('listitem', { name: 'scripted' }).getByText('read-only', { exact: false }).waitFor();
  await owner.getByLabel('Kind').selectOption('openai-compatible');
  await owner.getByLabel('Name (the prefix of its model ids)').fill('lab');
  await owner.getByLabel('Base URL').fill(`${llmUrl}/v1`);
  await owner.getByLabel('API key (if the server wants one)').fill('sk-e2e-secret-4321');
  await owner.getByLabel('Model 1: name').fill('m');
  await owner.getByRole('button', { name: 'Add the connection' }).click();
  const lab = connections.getByRole('listitem', { name: 'lab' });
  await lab.getByText('…4321').waitFor();
  check(!(await owner.content()).includes('sk-e2e-secret-4321'), 'the key is not shown after it was saved');
  await lab.getByRole('button', { name: 'Test lab' }).click();
  await lab.getByText('The model answered in', { exact: false }).waitFor();
  await owner.screenshot({ path: join(shots, 'admin.png'), fullPage: true });
  await lab.getByRole('button', { name: 'Disable lab' }).click();
  await lab.getByRole('button', { name: 'Enable lab' }).waitFor();
  await lab.getByRole('button', { name: 'Remove lab' }).click();
  await lab.getByRole('button', { name: 'Yes, remove lab' }).click();
  await eventually(async () => (await connections.getByRole('listitem', { name: 'lab' }).count()) === 0, 'the connection is gone');

  // Password recovery through the e-mailed link (the development outbox).
  const guest = await (await browser.newContext()).newPage();
  await guest.goto(base);
  await guest.getByRole('button', { name: 'Forgot your password?' }).click();
  await guest.getByLabel("Your account's e-mail").fill('ada@example.com');
  await guest.getByRole('button', { name: 'Send me a link' }).click();
  await guest.getByRole('status').waitFor();
  let link = null;
  for (let i = 0; i < 50 && !link; i += 1) {
    let names = [];
    try {
      names = readdirSync(join(data, 'outbox'));
    } catch {
      // The mail is written in the background; the folder comes with it.
    }
    for (const name of names) {
      const mail = readFileSync(join(data, 'outbox', name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      const found = mail.match(/http:\/\/[^\s"<>]*reset-password#token=[A-Za-z0-9_-]+/);
      if (found) link = found[0];
    }
    if (!link) await new Promise((r) => setTimeout(r, 100));
  }
  check(link, 'the recovery e-mail holds a link');
  await guest.goto(link);
  await guest.getByLabel('New password', { exact: true }).fill('a brand new passphrase 42');
  await guest.getByRole('button', { name: 'Set the new password' }).click();
  await guest.getByText('Your password was changed.').waitFor();
  await guest.goto(base);
  await guest.getByLabel('E-mail').fill('ada@example.com');
  await guest.getByLabel('Password').fill('a brand new passphrase 42');
  await guest.getByRole('button', { name: 'Sign in' }).click();
  await guest.getByRole('heading', { name: 'Projects' }).waitFor();

  console.log('e2e: all flows passed; screenshots in e2e/screenshots/');
});
