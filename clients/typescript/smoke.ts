// A TypeScript client generated from docs/openapi.json by openapi-typescript
// (the standard generator), with openapi-fetch as its typed fetch, driving a
// live Cairn: sign up and in, make a project and a thread, post a message
// and wait for the agent's answer. It type-checks against the generated
// types before it runs, so a document the generator cannot read, or that
// does not say what the calls need, fails here.
//
//   node build/smoke.js <base URL> <expected answer>

import createClient from 'openapi-fetch';
import type { paths } from './generated/schema.js';

const [base, expected] = process.argv.slice(2);
if (!base || !expected) throw new Error('usage: smoke.js <base URL> <expected answer>');
const password = 'correct horse battery staple';

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

const anonymous = createClient<paths>({ baseUrl: base });
const registered = await anonymous.POST('/api/v1/auth/register', {
  body: { email: 'ts@example.com', password, display_name: 'TS' },
});
check(registered.response.status === 201, `register: ${registered.response.status}`);
const signedIn = await anonymous.POST('/api/v1/auth/token', {
  body: { grant_type: 'password', username: 'ts@example.com', password },
  bodySerializer: (body) => new URLSearchParams(body as Record<string, string>).toString(),
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
});
check(signedIn.data, `sign-in: ${JSON.stringify(signedIn.error)}`);

const client = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${signedIn.data.access_token}` } });
const project = await client.POST('/api/v1/projects', { body: { name: 'Typed' } });
check(project.data, `project: ${JSON.stringify(project.error)}`);
const thread = await client.POST('/api/v1/projects/{project_id}/threads', {
  params: { path: { project_id: project.data.id } },
  body: { title: 'From TypeScript' },
});
check(thread.data, `thread: ${JSON.stringify(thread.error)}`);
const posted = await client.POST('/api/v1/threads/{thread_id}/messages', {
  params: { path: { thread_id: thread.data.id } },
  body: { content: 'What is 6 times 7?', wait: true },
});
check(posted.data, `post: ${JSON.stringify(posted.error)}`);
check(posted.data.answer === expected, `the answer: ${JSON.stringify(posted.data.answer)}`);
console.log('generated TypeScript client: sign-in, a project, a thread, a message answered: passed');
