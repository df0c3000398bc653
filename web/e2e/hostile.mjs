// End-to-end: hostile content in every place a member's browser shows it.
// The scripted model (and the member's own inputs) plant script in the HTML
// outputs of sandboxed code, in a Markdown answer, in library files (HTML,
// SVG, a CSV cell), in a thread title, a project name, a display name and a
// plan's task. Every payload, if it ever ran, sets a flag of its own
// (`window.__pwned_<where>`); the test checks on every page it opens that no
// flag is set, that nothing live reached the DOM (no inline handler, no
// script, no javascript: URL, no frame, no form…), that the hostile strings
// show as plain text where they are text, and that the legitimate content
// (a DataFrame's table, a chart, KaTeX, highlighted code, a CSV table, a
// PDF) still renders under the server's Content-Security-Policy, which the
// app never violates (the one report Chromium makes of the sanitiser's own
// inert parse is explained at `parsedBySanitiser`). Then the session (the
// refresh token out of script's reach) and the library's raw files opened in
// a tab (attachments, never live pages).
//
// The CSP would block an inline handler that slipped through, so "no flag"
// alone proves little in a page that has it: the DOM checks are what prove
// the sanitising, and a second pass in a context that bypasses the CSP
// (where a payload that reached the DOM would run) shows it again with the
// flags themselves.
//
//   CAIRN_BIN=… SCRIPTED_LLM_BIN=… CAIRN_SANDBOX_PYTHON=… node e2e/hostile.mjs

import { join } from 'node:path';
import { check, eventually, shots, signIn, startCairn, startLlm, withBrowser } from './harness.mjs';

const PASSWORD = 'correct horse battery staple';

/** Script that marks `name` as having run. */
const pwn = (name) => `window.__pwned_${name}=1`;
/** The classic: an image that fails to load and runs its handler. */
const img = (name) => `<img src=x onerror="${pwn(name)}">`;

// What members type.
const hostile = {
  displayName: img('display_name'),
  project: `<svg onload="${pwn('project_name')}"></svg>${img('project_name_img')}`,
  thread: img('thread_title'),
  csvCell: img('csv_cell'),
  message: `Count the visits ${img('message_img')} and [open](javascript:${pwn('message_link')}) please.`,
  planTitle: img('plan_title'),
  planGoal: `<script>${pwn('plan_goal')}</script> count every visit`,
};

// HTML outputs of the code: an object's _repr_html_, which the kernel's
// driver sends as a text/html output (display() and the cell's last value).
const htmlOutputs = [
  img('output_img'),
  `<script>${pwn('output_script')}</script>`,
  `<svg onload="${pwn('output_svg')}"><circle r="5"></circle></svg>`,
  `<a href="javascript:${pwn('output_link')}">click</a>`,
  `<iframe srcdoc="<script>${pwn('output_iframe')}</script>"></iframe>`,
  `<form action="javascript:${pwn('output_form')}"><button>send</button></form>`,
  `<details open ontoggle="${pwn('output_details')}"><summary>more</summary></details>`,
  `<input autofocus onfocus="${pwn('output_autofocus')}">`,
  `<object data="javascript:${pwn('output_object')}"></object><embed src="javascript:${pwn('output_embed')}">`,
  `<meta http-equiv="refresh" content="0;url=javascript:${pwn('output_meta')}">`,
  `<noscript><p title="</noscript><img src=x onerror=${pwn('output_mxss')}>"></noscript>`,
  `<div style="background:url(/x?style)" onmouseover="${pwn('output_mouse')}">styled</div>`,
  // Legitimate markup around a payload: the markup stays, the payload goes.
  `<p><b>kept bold</b> and <a href="https://example.com/ok">a fine link</a>${img('output_mixed')}</p>`,
];
const lastValue = `<iframe src="javascript:${pwn('result_iframe')}"></iframe><i>the last value</i>`;
const printed = `printed ${img('stdout')}`;
const errorText = img('error');
const htmlFile = `<!doctype html><html><body><h1>Report</h1><script>${pwn('library_html')}</script>${img('library_html_img')}</body></html>`;
const svgFile =
  `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80" onload="${pwn('svg_root')}">` +
  `<script>${pwn('svg_script')}</script>` +
  `<rect width="100" height="50" fill="teal" onload="${pwn('svg_rect')}"/>` +
  `<a href="javascript:${pwn('svg_link')}"><text x="5" y="70">link</text></a></svg>`;
const answer = [
  'The visits are counted: Oslo leads, and growth goes as $$x^2$$.',
  '',
  `See [the report](https://example.com/report), not [click me](javascript:${pwn('answer_link')}).`,
  '',
  `Raw HTML stays text: ${img('answer_img')} and <script>${pwn('answer_script')}</script> too.`,
].join('\n');

/** A Python literal of a string (JSON's escapes are Python's). */
const py = (value) => JSON.stringify(value);

const outputsStep = [
  'I will show the visits.',
  '```python',
  'import pandas as pd',
  'import matplotlib',
  "matplotlib.use('Agg')",
  'import matplotlib.pyplot as plt',
  'class Html:',
  '    def __init__(self, html):',
  '        self.html = html',
  '    def _repr_html_(self):',
  '        return self.html',
  `for html in ${py(htmlOutputs)}:`,
  '    display(Html(html))',
  `visits = pd.DataFrame({'city': ['Lyon', 'Oslo'], 'visits': [321, 654], 'note': [${py(img('dataframe'))}, 'calm']})`,
  'display(visits)',
  `print(${py(printed)})`,
  'plt.plot([1, 2, 3], [1, 4, 9])',
  "plt.title('Squares')",
  `Html(${py(lastValue)})`,
  '```',
].join('\n');
const errorStep = ['Now a mistake.', '```python', `raise ValueError(${py(errorText)})`, '```'].join('\n');
const filesStep = [
  'And the files.',
  '```python',
  `open('page.html', 'w').write(${py(htmlFile)})`,
  "save_artifact('page.html')",
  `open('drawing.svg', 'w').write(${py(svgFile)})`,
  "save_artifact('drawing.svg')",
  'figure = plt.figure()',
  "plt.bar(['Lyon', 'Oslo'], [321, 654])",
  "figure.savefig('chart.pdf')",
  "plt.close('all')",
  "save_artifact('chart.pdf')",
  `final_answer(${py(answer)})`,
  '```',
].join('\n');
// A planned run: a task whose title and goal carry script.
const plannerReply = JSON.stringify({
  tasks: [{ id: 't1', title: hostile.planTitle, goal: hostile.planGoal, done_when: 'a number', agent: 'analyst' }],
});
const subAgentStep = ['```python', "final_answer('975 visits')", '```'].join('\n');
const verdict = JSON.stringify({ done: true, why: 'counted' });
const synthesis = `Planned and done: 975 visits ${img('synthesis')}.`;

const llmUrl = await startLlm([outputsStep, errorStep, filesStep, plannerReply, subAgentStep, verdict, synthesis]);
const { base } = await startCairn(llmUrl);

// In every page, before the app: CSP violations are recorded in the page
// (and reported here, so that none is lost to a navigation).
const recordViolations = () => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    const violation = {
      directive: event.violatedDirective,
      blocked: event.blockedURI || 'inline',
      source: event.sourceFile,
      line: event.lineNumber,
      column: event.columnNumber,
      sample: event.sample,
      page: location.href,
    };
    window.__cspViolations.push(violation);
    window.__reportCspViolation?.(violation);
  });
};

// Chromium checks the CSP when an inline handler attribute is *parsed*, in
// any document of the window, even an inert one that never runs script:
// DOMPurify's parse of hostile HTML (in its own DOMParser document, before it
// removes the handler) is reported as a `script-src-attr` violation from the
// sanitiser's chunk, though nothing runs and nothing reaches the page. Those
// reports, and only those, are expected; a handler that survived into the
// page would be reported from React's chunk (which sets innerHTML), and the
// DOM checks below would find it.
const SANITISER_CHUNK = /\/assets\/SafeHtml-[\w-]+\.js$/;
const parsedBySanitiser = (v) => v.directive === 'script-src-attr' && v.blocked === 'inline' && SANITISER_CHUNK.test(v.source);
const describeViolation = (v) => `${v.directive} blocked ${v.blocked} at ${v.source}:${v.line}:${v.column} ${v.sample} (in ${v.page})`;

/** Everything hostile or broken seen in any page, for the final verdict. */
const seen = { violations: [], refused: [], pageErrors: [], hostileRequests: [] };

async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, ...options });
  await context.exposeFunction('__reportCspViolation', (violation) => seen.violations.push(violation));
  await context.addInitScript(recordViolations);
  context.on('request', (request) => {
    const url = new URL(request.url());
    // `src=x` resolves to /x: a request for it means a hostile image was live.
    if (url.origin === base && url.pathname === '/x') seen.hostileRequests.push(request.url());
    if (!['data:', 'blob:', 'chrome-extension:', 'chrome:'].includes(url.protocol) && url.origin !== base) {
      seen.hostileRequests.push(request.url());
    }
  });
  context.on('page', (page) => {
    page.on('console', (message) => {
      // The console's side of the same reports (see parsedBySanitiser).
      const { url, lineNumber } = message.location();
      const csp = /refused to|content security policy/i.test(message.text());
      if (csp && !(message.text().includes('inline event handler') && SANITISER_CHUNK.test(url))) {
        seen.refused.push(`${page.url()}: ${message.text()} at ${url}:${lineNumber}`);
      }
    });
    page.on('pageerror', (error) => seen.pageErrors.push(`${page.url()}: ${error.message}`));
  });
  return context;
}

/** What a page (every frame of it) holds that it must not: flags set by a
 * payload, live markup in the app's content, CSP violations. */
function inspect() {
  const flags = Object.keys(window).filter((key) => key.startsWith('__pwned'));
  const live = [];
  const root = document.getElementById('root');
  const describe = (el, detail = '') => {
    const region = el.parentElement?.closest('[aria-label]')?.getAttribute('aria-label') ?? '?';
    return `<${el.localName}${detail}> in ${region}`;
  };
  if (root) {
    for (const el of root.querySelectorAll('*')) {
      const handlers = el.getAttributeNames().filter((name) => /^on/i.test(name));
      if (handlers.length > 0) live.push(describe(el, ` ${handlers.join(' ')}`));
      for (const name of ['href', 'src', 'action', 'formaction', 'data', 'xlink:href', 'srcdoc', 'style']) {
        const value = el.getAttribute(name);
        if (value !== null && /^\s*(?:javascript|vbscript):/i.test(value)) live.push(describe(el, ` ${name}="${value}"`));
        if (value !== null && name === 'style' && /url\(/i.test(value)) live.push(describe(el, ` style="${value}"`));
      }
    }
    // Nothing that runs, frames, fetches or clobbers, anywhere in the app
    // (KaTeX's own MathML and SVG excepted); only the PDF preview's blob: frame.
    const active = 'script, iframe, frame, object, embed, meta, base, link, style, noscript, template, svg, math';
    for (const el of root.querySelectorAll(active)) {
      const katex = el.closest('.katex') !== null;
      const pdf = el.localName === 'iframe' && el.getAttribute('src')?.startsWith('blob:') && !el.hasAttribute('srcdoc');
      if (!katex && !pdf) live.push(describe(el));
    }
    // Untrusted HTML (SafeHtml) keeps only its allowlist; images only as data:.
    const allowed = new Set(
      [
        'table thead tbody tfoot tr th td caption colgroup col',
        'p div span br hr b i em strong u s small sub sup code pre blockquote',
        'h1 h2 h3 h4 h5 h6 ul ol li dl dt dd a img',
      ]
        .join(' ')
        .split(' '),
    );
    for (const el of root.querySelectorAll('.contain-paint *')) {
      if (!allowed.has(el.localName)) live.push(describe(el, ' (outside the allowlist)'));
      // (An <img> whose src was dropped loads nothing.)
      const src = el.getAttribute('src');
      if (el.localName === 'img' && src !== null && !/^data:image\/(?:png|jpeg|gif|webp);base64,/.test(src)) {
        live.push(describe(el, ` src="${src}"`));
      }
      const href = el.getAttribute('href');
      if (el.localName === 'a' && href !== null && !/^(?:https?:|mailto:)/.test(href)) live.push(describe(el, ` href="${href}"`));
    }
    // Messages are Markdown: no raw element of the text's own survives.
    const raw = '[aria-label="Messages"] :is(img, form, input, button, textarea, select, details, video, audio)';
    for (const el of root.querySelectorAll(raw)) live.push(describe(el));
    // Forms only where the app puts them.
    const forms = 'article form, .contain-paint form, section[aria-label^="Preview of"] form, form[action]';
    for (const el of root.querySelectorAll(forms)) live.push(describe(el));
  }
  return { flags, live, violations: window.__cspViolations ?? [], url: location.href };
}

/** Checks the page is inert: no payload ran (in any frame), nothing live in
 * the app's content, no CSP violation. */
async function assertInert(page, where) {
  for (const frame of page.frames()) {
    const main = frame === page.mainFrame();
    // The PDF viewer's inner frames belong to Chromium and may not be read.
    const found = main ? await frame.evaluate(inspect) : await frame.evaluate(inspect).catch(() => null);
    if (!found) continue;
    check(found.flags.length === 0, `${where}: no payload ran (${found.flags.join(', ')} set in ${found.url})`);
    if (main) check(found.live.length === 0, `${where}: nothing live in the app's content:\n  ${found.live.join('\n  ')}`);
    const violations = found.violations.filter((v) => !parsedBySanitiser(v));
    check(violations.length === 0, `${where}: no CSP violation in ${found.url}:\n  ${violations.map(describeViolation).join('\n  ')}`);
  }
}

/** The text is shown, as text. */
async function shownAsText(scope, text, what) {
  const node = scope.getByText(text, { exact: false }).first();
  await node.waitFor({ timeout: 10_000 }).catch(() => {
    throw new Error(`check failed: ${what} shows ${JSON.stringify(text)} as text`);
  });
  check(await node.isVisible(), `${what}: ${JSON.stringify(text)} is visible`);
}

/** Opens a library file's raw URL in a tab of its own: it must download,
 * never render as a page (and nothing in it may run). */
async function openRaw(context, pages, url, name, where) {
  const tab = await context.newPage();
  pages.push(tab);
  const download = tab.waitForEvent('download', { timeout: 10_000 }).catch(() => null);
  const navigated = await tab.goto(url).then(
    (response) => response,
    () => null, // "Download is starting": no page was made
  );
  const started = await download;
  await tab.waitForTimeout(200);
  const state = await tab.evaluate(() => ({
    flags: Object.keys(window).filter((key) => key.startsWith('__pwned')),
    elements: document.querySelectorAll('script, svg, h1, img').length,
    url: location.href,
  }));
  check(state.flags.length === 0, `${where}: nothing ran when ${name} was opened (${state.flags.join(', ')})`);
  check(
    started !== null || state.elements === 0,
    `${where}: ${name} downloads or at least is no live document (${state.url}, status ${navigated?.status()})`,
  );
  if (started) {
    check(started.suggestedFilename() === name, `${where}: the download is ${name} (${started.suggestedFilename()})`);
    await started.cancel();
  }
  await tab.close();
  return started !== null;
}

await withBrowser('hostile-failure', async (browser, pages) => {
  const ownerContext = await newContext(browser);
  const owner = await ownerContext.newPage();
  pages.push(owner);

  // The page comes with its Content-Security-Policy: the app's own scripts only.
  const landing = await owner.goto(base);
  const csp = landing.headers()['content-security-policy'] ?? '';
  const scriptSrc = csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src')) ?? '';
  check(scriptSrc === "script-src 'self'", `the page's CSP allows only the app's scripts (${csp})`);
  check(/object-src 'none'/.test(csp) && /frame-ancestors 'none'/.test(csp), `the page's CSP forbids plugins and framing (${csp})`);

  // The owner signs up with a name that is markup.
  await owner.getByRole('button', { name: 'New here? Create an account' }).click();
  await owner.getByLabel('Your name').fill(hostile.displayName);
  await owner.getByLabel('E-mail').fill('ada@example.com');
  await owner.getByLabel('Password').fill(PASSWORD);
  await owner.getByRole('button', { name: 'Create account' }).click();
  await owner.getByRole('heading', { name: 'Projects' }).waitFor();

  // The session: the refresh token is in an HttpOnly cookie script cannot
  // read, the access token in memory only; storage holds a marker.
  const refreshCookie = (await ownerContext.cookies()).find((c) => c.name === 'cairn_refresh');
  check(
    refreshCookie?.httpOnly === true && refreshCookie.path === '/api/v1/auth',
    `the refresh cookie is HttpOnly, for /api/v1/auth (${JSON.stringify(refreshCookie)})`,
  );
  const visible = await owner.evaluate(() => ({
    cookie: document.cookie,
    local: Object.fromEntries(Object.entries(localStorage)),
    session: Object.keys(sessionStorage),
  }));
  check(!visible.cookie.includes('cairn_refresh'), `script cannot read the refresh cookie (${visible.cookie})`);
  const stored = JSON.stringify(visible.local);
  check(stored === '{"cairn.signed_in":"1"}', `localStorage holds only the signed-in marker (${stored})`);
  check(visible.session.length === 0, `sessionStorage is empty (${visible.session.join()})`);
  await assertInert(owner, 'projects');

  // A project whose name is markup, with a CSV whose cell is markup.
  await owner.getByLabel('Project name').fill(hostile.project);
  await owner.getByRole('button', { name: 'Create' }).click();
  await owner.getByRole('heading', { name: hostile.project, exact: true }).waitFor();
  const projectUrl = owner.url();
  const projectId = new URL(projectUrl).hash.split('/').pop();
  const view = (name) => owner.getByRole('navigation', { name: 'Project views' }).getByRole('link', { name }).click();
  await view('Library');
  await owner.getByLabel('Upload files (or drop them here)').setInputFiles({
    name: 'visits.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(`city,note\nLyon,"${hostile.csvCell.replaceAll('"', '""')}"\nOslo,calm\n`),
  });
  await owner.getByRole('button', { name: 'Download visits.csv' }).waitFor();
  await assertInert(owner, 'project');
  await view('Threads');

  // A thread whose title is markup; the member's message carries some too.
  await owner.getByLabel('Thread title').fill(hostile.thread);
  await owner.getByRole('button', { name: 'Start' }).click();
  await owner.getByRole('heading', { name: hostile.thread, exact: true }).waitFor();
  const threadUrl = owner.url();
  await owner.getByRole('list', { name: 'Here now' }).getByText(hostile.displayName, { exact: false }).waitFor();
  await owner.getByLabel('Your message').fill(hostile.message);
  await owner.getByRole('button', { name: 'Send', exact: true }).click();
  // The messages and answers of the conversation (not the runs' code).
  const messages = owner.getByRole('region', { name: 'Conversation' }).locator('article[aria-label^="Message from"], article[aria-label="Answer from Cairn"]');
  await messages.getByText('The visits are counted').waitFor({ timeout: 60_000 });
  await owner.locator('article[aria-label="Run succeeded"]').waitFor({ timeout: 30_000 });

  // The legitimate content renders: the DataFrame as a table, the chart,
  // highlighted code, math typeset by KaTeX, the markup a sanitiser keeps.
  const run = owner.locator('article[aria-label^="Run"]').first();
  const dataframe = run.getByRole('table').filter({ hasText: 'Lyon' });
  await dataframe.getByRole('cell', { name: '654', exact: true }).waitFor();
  await dataframe.getByRole('cell', { name: img('dataframe'), exact: true }).waitFor();
  const chart = run.getByRole('img', { name: 'A figure the code made' });
  check(await chart.evaluate((el) => el.naturalWidth > 100 && el.naturalHeight > 100), 'the chart is a real image');
  check((await run.locator('code.hljs .hljs-keyword').count()) > 0, 'the code is highlighted');
  await messages.locator('.katex').first().waitFor(); // KaTeX comes in its own chunk
  check((await messages.locator('.katex-error').count()) === 0, 'the math is typeset by KaTeX, without error');
  await run.locator('.contain-paint b', { hasText: 'kept bold' }).waitFor();
  const fine = run.getByRole('link', { name: 'a fine link' });
  check(
    (await fine.getAttribute('href')) === 'https://example.com/ok' && (await fine.getAttribute('rel')) === 'noopener noreferrer',
    'a safe link in an output stays a link, without an opener',
  );
  await run.locator('.contain-paint i', { hasText: 'the last value' }).waitFor();
  // The hostile strings show as text where they are text.
  await shownAsText(run, printed, 'the printed output');
  await shownAsText(run, errorText, 'the error');
  await shownAsText(messages, hostile.message.split(' and ')[0], "the member's message");
  await shownAsText(messages, `Raw HTML stays text: ${img('answer_img')}`, 'the answer');
  await shownAsText(messages, `<script>${pwn('answer_script')}</script>`, 'the answer');
  // The javascript: links are not links; the https one is.
  for (const text of ['click me', 'open']) {
    const node = messages.getByText(text, { exact: true });
    check((await node.count()) === 1 && (await node.evaluate((el) => el.closest('a') === null)), `"${text}" (a javascript: link) is not a link`);
  }
  check((await messages.getByRole('link', { name: 'the report' }).getAttribute('href')) === 'https://example.com/report', 'the https link is a link');
  await assertInert(owner, 'thread');

  // A planned run: the task's title and goal are shown as text.
  await owner.getByLabel('Plan first, with sub-agents').check();
  await owner.getByLabel('Your message').fill('Plan it, please.');
  await owner.getByRole('button', { name: 'Send', exact: true }).click();
  await owner.getByRole('tab', { name: 'plan' }).click({ timeout: 60_000 });
  const plan = owner.getByRole('complementary', { name: 'Plan' });
  await plan.getByRole('listitem', { name: 'Task t1: done' }).waitFor({ timeout: 60_000 });
  await shownAsText(plan, hostile.planTitle, "the task's title");
  await shownAsText(plan, hostile.planGoal, "the task's goal");
  await messages.getByText('Planned and done: 975 visits').waitFor({ timeout: 30_000 });
  await shownAsText(messages, img('synthesis'), 'the synthesis');
  await assertInert(owner, 'planned thread');
  await owner.screenshot({ path: join(shots, 'hostile-thread.png'), fullPage: true });

  // A reload keeps the session (the cookie is traded for a new access
  // token) and rebuilds the thread from its log, as inert as before.
  await owner.reload();
  await owner.getByRole('heading', { name: hostile.thread, exact: true }).waitFor();
  await messages.getByText('The visits are counted').waitFor();
  await run.getByRole('img', { name: 'A figure the code made' }).waitFor();
  await assertInert(owner, 'thread after a reload');

  // The project page: the thread's title in the list, the members' names.
  await owner.getByRole('link', { name: '← Threads' }).click();
  await owner.getByRole('heading', { name: hostile.project, exact: true }).waitFor();
  await owner.getByRole('list', { name: 'Threads', exact: true }).getByRole('link', { name: hostile.thread, exact: true }).waitFor();
  await view('Members');
  await owner.getByRole('list', { name: 'Members' }).getByText(hostile.displayName, { exact: true }).waitFor();
  await view('Library');

  // The library's previews: the CSV as a table (its markup cell as text),
  // the HTML file as source, the SVG as a sanitised image, the PDF.
  const preview = (name) => owner.getByRole('region', { name: `Preview of ${name}` });
  await owner.getByRole('button', { name: 'Preview visits.csv' }).click();
  const table = owner.getByRole('table', { name: 'Preview of visits.csv' });
  await table.getByRole('cell', { name: 'Lyon', exact: true }).waitFor();
  await table.getByRole('cell', { name: hostile.csvCell, exact: true }).waitFor();
  await assertInert(owner, 'CSV preview');
  await owner.getByRole('button', { name: 'Close preview' }).click();

  await owner.getByRole('button', { name: 'Preview page.html' }).click();
  await preview('page.html').locator('code.hljs', { hasText: pwn('library_html') }).waitFor();
  check((await preview('page.html').locator('code.hljs .hljs-tag').count()) > 0, 'the HTML file is shown as highlighted source');
  await assertInert(owner, 'HTML preview');
  await owner.getByRole('button', { name: 'Close preview' }).click();

  await owner.getByRole('button', { name: 'Preview drawing.svg' }).click();
  const drawing = preview('drawing.svg').getByRole('img', { name: 'Preview of drawing.svg' });
  await drawing.waitFor();
  await eventually(() => drawing.evaluate((el) => el.complete && el.naturalWidth > 0), 'the SVG is drawn');
  const svgSource = decodeURIComponent((await drawing.getAttribute('src')).replace(/^data:image\/svg\+xml;charset=utf-8,/, ''));
  check(svgSource.includes('<rect') && !/script|onload|javascript:/i.test(svgSource), `the SVG is sanitised (${svgSource})`);
  await assertInert(owner, 'SVG preview');
  const svgDataUrl = await drawing.getAttribute('src');
  await owner.getByRole('button', { name: 'Close preview' }).click();

  await owner.getByRole('button', { name: 'Preview chart.pdf' }).click();
  const pdf = preview('chart.pdf').locator('iframe[title="Preview of chart.pdf"]');
  await pdf.waitFor();
  check((await pdf.getAttribute('src')).startsWith('blob:'), 'the PDF is previewed from a blob: URL');
  await owner.waitForTimeout(500); // the viewer loads: a frame-src violation would show now
  await assertInert(owner, 'PDF preview');
  await owner.screenshot({ path: join(shots, 'hostile-library.png'), fullPage: true });
  await owner.getByRole('button', { name: 'Close preview' }).click();

  // The sanitised SVG opened on its own (a member can open an image in a
  // tab): a live SVG document there, on an opaque origin, with nothing to run.
  const svgTab = await ownerContext.newPage();
  pages.push(svgTab);
  await svgTab.goto(svgDataUrl);
  await svgTab.waitForTimeout(200);
  const svgAlone = await svgTab.evaluate(() => ({
    flags: Object.keys(window).filter((key) => key.startsWith('__pwned')),
    scripts: document.querySelectorAll('script').length,
    handlers: [...document.querySelectorAll('*')].filter((el) => el.getAttributeNames().some((n) => /^on/i.test(n))).length,
  }));
  check(
    svgAlone.flags.length === 0 && svgAlone.scripts === 0 && svgAlone.handlers === 0,
    `the SVG opened alone runs nothing (${JSON.stringify(svgAlone)})`,
  );
  await svgTab.close();

  // The raw files opened in a tab: the share links a member hands out…
  const shareLinks = {};
  for (const name of ['page.html', 'drawing.svg']) {
    await owner.getByRole('button', { name: `Share a link to ${name}` }).click();
    const link = () => owner.getByLabel('Share link').inputValue();
    await eventually(async () => (await link()).includes('/api/v1/links/') && !Object.values(shareLinks).includes(await link()), `a share link for ${name}`);
    shareLinks[name] = await link();
    const answered = await fetch(shareLinks[name]);
    const headers = Object.fromEntries(answered.headers);
    const attachment = /^attachment/.test(headers['content-disposition'] ?? '') && headers['x-content-type-options'] === 'nosniff';
    check(
      answered.ok && attachment && /sandbox/.test(headers['content-security-policy'] ?? ''),
      `${name} is served as a sandboxed attachment (${JSON.stringify(headers)})`,
    );
  }
  const stranger = await newContext(browser);
  for (const [name, url] of Object.entries(shareLinks)) await openRaw(stranger, pages, url, name, 'a share link');
  // …and the file's own content URL, with the member's token.
  const grant = await fetch(`${base}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: 'ada@example.com', password: PASSWORD }),
  });
  const token = (await grant.json()).access_token;
  const listing = await (await fetch(`${base}/api/v1/projects/${projectId}/files?folder=`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const contentUrl = (name) => `${base}/api/v1/projects/${projectId}/files/${listing.files.find((f) => f.name === name).id}/content`;
  const bearer = await newContext(browser, { extraHTTPHeaders: { Authorization: `Bearer ${token}` } });
  for (const name of ['page.html', 'drawing.svg']) await openRaw(bearer, pages, contentUrl(name), name, 'the content URL');

  // The projects list and the administration page show the names as text.
  await owner.getByRole('link', { name: 'Cairn', exact: true }).click();
  await owner.getByRole('link', { name: hostile.project, exact: true }).waitFor();
  await assertInert(owner, 'projects list');
  await owner.getByRole('link', { name: 'Administration' }).click();
  await owner.getByRole('table', { name: 'Accounts' }).getByRole('cell', { name: hostile.displayName, exact: true }).waitFor();
  await assertInert(owner, 'admin');

  // The second wall down: a browser that ignores the CSP. A payload that
  // reached the DOM would run here and set its flag; none may.
  const naked = await newContext(browser, { bypassCSP: true });
  const bare = await naked.newPage();
  pages.push(bare);
  await signIn(bare, base, 'ada@example.com', PASSWORD);
  await bare.addScriptTag({ content: 'window.__inline_ran = 1' });
  check((await bare.evaluate(() => window.__inline_ran)) === 1, 'inline script runs in the CSP-less context (the control)');
  await bare.goto(threadUrl);
  await bare.getByRole('article', { name: 'Answer from Cairn' }).getByText('Planned and done').first().waitFor({ timeout: 30_000 });
  await bare.getByRole('img', { name: 'A figure the code made' }).waitFor();
  await bare.waitForTimeout(500); // time for an image to fail and a handler to run
  await assertInert(bare, 'thread without the CSP');
  await bare.goto(`${projectUrl}/library`);
  for (const name of ['visits.csv', 'page.html', 'drawing.svg']) {
    await bare.getByRole('button', { name: `Preview ${name}` }).click();
    await bare.getByRole('region', { name: `Preview of ${name}` }).getByRole('button', { name: 'Close preview' }).waitFor();
    await bare.waitForTimeout(300);
    await assertInert(bare, `${name} preview without the CSP`);
    await bare.getByRole('button', { name: 'Close preview' }).click();
  }
  for (const [name, url] of Object.entries(shareLinks)) await openRaw(naked, pages, url, name, 'a share link without the CSP');

  // Signing out ends the session: a reload shows the sign-in page, and the
  // cookie it had no longer buys a token.
  const lastCookie = (await ownerContext.cookies()).find((c) => c.name === 'cairn_refresh');
  await owner.getByRole('button', { name: 'Sign out' }).click();
  await owner.getByRole('button', { name: 'Sign in' }).waitFor();
  await owner.reload();
  await owner.getByRole('button', { name: 'Sign in' }).waitFor();
  check((await owner.evaluate(() => localStorage.getItem('cairn.signed_in'))) === null, 'the signed-in marker is gone');
  check(!(await ownerContext.cookies()).some((c) => c.name === 'cairn_refresh'), 'signing out clears the refresh cookie');
  const replayed = await fetch(`${base}/api/v1/auth/refresh`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Cairn-Session': 'cookie',
      Origin: base,
      Cookie: `cairn_refresh=${lastCookie?.value}`,
    },
    body: '{}',
  });
  const refusal = await replayed.json().catch(() => ({}));
  check(
    lastCookie && replayed.status === 400 && refusal.error === 'invalid_grant',
    `the signed-out session's cookie no longer refreshes (${replayed.status} ${JSON.stringify(refusal)})`,
  );
  await assertInert(owner, 'signed out');

  // Over every page and frame: no violation, no refusal, no error, no fetch of a hostile URL.
  const violations = seen.violations.filter((v) => !parsedBySanitiser(v));
  check(violations.length === 0, `no CSP violation anywhere:\n  ${violations.map(describeViolation).join('\n  ')}`);
  check(seen.refused.length === 0, `the browser refused nothing:\n  ${seen.refused.join('\n  ')}`);
  check(seen.pageErrors.length === 0, `no uncaught error in the app:\n  ${seen.pageErrors.join('\n  ')}`);
  check(seen.hostileRequests.length === 0, `no hostile URL was fetched:\n  ${seen.hostileRequests.join('\n  ')}`);
  const parsed = seen.violations.length - violations.length;
  console.log(
    `e2e: hostile content stayed inert everywhere (${parsed} script-src-attr reports from the sanitiser's inert parse, ` +
      'none from the page); screenshots in e2e/screenshots/',
  );
});
