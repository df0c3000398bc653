// Checks the web app's production dependencies against the npm registry's
// security advisories. Runs `npm audit --omit=dev --json` and fails on every
// advisory that audit-exceptions.json does not accept, and on every accepted
// one that no longer matches anything, so the list holds only what still
// applies. Development-only packages (the build, lint and test tools) are not
// shipped, so they are left out.
//
//   node scripts/audit.mjs                  # run npm audit and check its report
//   node scripts/audit.mjs --report FILE    # check a saved `npm audit --json` report
//
// audit-exceptions.json lists the accepted advisories, each with the
// advisory's id (its GHSA id, or npm's number where it has none), the package
// it is reported on, and why it is accepted:
//
//   { "exceptions": [
//       { "id": "GHSA-xxxx-xxxx-xxxx", "package": "name", "reason": "why it does not apply" } ] }
//
// Exits 0 when every advisory is accepted, 1 when an advisory is not or an
// exception is stale, 2 when there is no report to check (npm audit could not
// reach the registry's audit service, or the exceptions file is malformed):
// never a pass without a report.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const exceptionsPath = join(webDir, 'audit-exceptions.json');

function fail(code, message) {
  console.error(`audit: ${message}`);
  process.exit(code);
}

function readReport() {
  const args = process.argv.slice(2);
  if (args.length === 2 && args[0] === '--report') return readFileSync(args[1], 'utf8');
  if (args.length !== 0) fail(2, 'usage: node scripts/audit.mjs [--report FILE]');
  const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], {
    cwd: webDir,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (run.error) fail(2, `could not run npm audit: ${run.error.message}`);
  // npm audit exits non-zero when it finds anything: the report says what.
  if (!run.stdout.trim()) fail(2, `npm audit printed no report (exit code ${run.status}):\n${run.stderr}`);
  return run.stdout;
}

function parseReport(text) {
  let report;
  try {
    report = JSON.parse(text);
  } catch (error) {
    fail(2, `npm audit's output is not JSON (${error.message}):\n${text.slice(0, 2000)}`);
  }
  // On failure npm prints an error object instead of a report.
  if (report.error || !report.vulnerabilities || typeof report.vulnerabilities !== 'object') {
    const why =
      report.error?.summary || report.message || report.error?.code || JSON.stringify(report).slice(0, 500);
    fail(
      2,
      `npm audit produced no report, so nothing was checked: ${why}\n` +
        "(npm audit needs the registry's audit service; the check cannot pass without it)",
    );
  }
  if (report.auditReportVersion !== 2) {
    fail(2, `unexpected npm audit report version ${report.auditReportVersion} (expected 2)`);
  }
  return report;
}

const norm = (id) => id.toUpperCase();

// The advisories in a report, by id. An advisory shows up as an object in the
// `via` list of the package it is reported on; packages that are affected only
// through a dependency name that package instead.
function advisoriesOf(report) {
  const advisories = new Map();
  for (const [name, entry] of Object.entries(report.vulnerabilities)) {
    for (const via of entry.via ?? []) {
      if (typeof via !== 'object' || via === null) continue;
      const ghsa = /\/(GHSA(?:-[0-9a-z]{4}){3})\b/i.exec(via.url ?? '');
      const id = ghsa ? ghsa[1] : String(via.source);
      const advisory = advisories.get(norm(id)) ?? {
        id,
        title: via.title,
        severity: via.severity,
        url: via.url,
        packages: new Map(),
      };
      advisory.packages.set(via.name ?? name, via.range ?? entry.range);
      advisories.set(norm(id), advisory);
    }
  }
  return advisories;
}

function readExceptions() {
  let parsed;
  try {
    parsed = JSON.parse(readFileSync(exceptionsPath, 'utf8'));
  } catch (error) {
    fail(2, `cannot read ${exceptionsPath}: ${error.message}`);
  }
  const list = parsed?.exceptions;
  if (!Array.isArray(list)) fail(2, `${exceptionsPath}: expected { "exceptions": [ ... ] }`);
  const seen = new Set();
  for (const [index, exception] of list.entries()) {
    const where = `${exceptionsPath}: exceptions[${index}]`;
    if (typeof exception?.id !== 'string' || !/^(GHSA(-[0-9a-z]{4}){3}|[0-9]+)$/i.test(exception.id)) {
      fail(2, `${where}: "id" must be a GHSA id (GHSA-xxxx-xxxx-xxxx) or npm's advisory number`);
    }
    if (typeof exception.package !== 'string' || !exception.package) {
      fail(2, `${where} (${exception.id}): "package" must name the package the advisory is reported on`);
    }
    if (typeof exception.reason !== 'string' || exception.reason.trim().length < 10) {
      fail(2, `${where} (${exception.id}): "reason" must say why the advisory is accepted`);
    }
    const key = `${norm(exception.id)} ${exception.package}`;
    if (seen.has(key)) fail(2, `${where}: ${exception.id} for ${exception.package} is listed twice`);
    seen.add(key);
  }
  return list;
}

const report = parseReport(readReport());
const exceptions = readExceptions();
const advisories = advisoriesOf(report);

const accepted = (id, pkg) => exceptions.some((e) => norm(e.id) === norm(id) && e.package === pkg);

const findings = [];
for (const advisory of advisories.values()) {
  for (const [pkg, range] of advisory.packages) {
    if (!accepted(advisory.id, pkg)) findings.push({ ...advisory, pkg, range });
  }
}
const stale = exceptions.filter((e) => !advisories.get(norm(e.id))?.packages.has(e.package));

const dependencies = report.metadata?.dependencies;
const scanned = dependencies ? `${dependencies.prod ?? dependencies.total} production packages` : 'the production packages';
console.log(
  `audit: ${scanned} checked; ${advisories.size} advisories reported, ${exceptions.length - stale.length} accepted in audit-exceptions.json`,
);
for (const f of findings) {
  console.error(`audit: ${f.severity} ${f.id} in ${f.pkg} (${f.range}): ${f.title}\n       ${f.url ?? ''}`);
}
for (const e of stale) {
  console.error(
    `audit: audit-exceptions.json accepts ${e.id} for ${e.package}, but npm audit no longer reports it: remove the exception`,
  );
}
if (findings.length > 0 || stale.length > 0) {
  fail(
    1,
    `${findings.length} advisories not accepted, ${stale.length} stale exceptions ` +
      '(fix the dependency, or accept the advisory in web/audit-exceptions.json with a reason)',
  );
}
console.log('audit: ok');
