import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type pg from 'pg';
import { appTest } from './support/fixture.js';
import { sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { consoleGet, consolePost, csrfOf, signInFromSlack, sqlAt } from './support/console.js';

/**
 * Ending console sessions (issue 14: sessions "stored server-side, revocable"): an administrator
 * lists the open sessions and ends one, or every session of a person (a lost laptop, someone
 * leaving), over the admin API, audited; a person signs out of every device at once from the
 * console. An ended session's next page or post is treated as signed out, through HTTP with the
 * real cookie.
 */

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }, { slack: U0ONCALL3 }, { slack: U0ONCALL4 }, { slack: U0ONCALL5 }, { email: leaver@example.com }] }
  ciso: { members: [{ slack: U0CISO }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
  packet: [ciso]
channels:
  incidents: { slack: C0INCIDENTS }
`;

const PLATFORM_TOKEN = 'tok_platform_scope_0123456789abcdef';
const it = appTest({
  policy: POLICY,
  slack: true,
  slackUsers: { 'leaver@example.com': 'U0LEAVER' },
  env: { ARMALO_PUBLIC_URL: 'https://armalo.example.test', ARMALO_API_TOKENS: `secops:${TOKEN},agents-svc:${PLATFORM_TOKEN}:platform` },
  appOptions: { relayPollMs: 200 },
});
let app: TestApp;
let slack: FakeSlack;
let databaseUrl: string;

it.beforeAll(async ({ app: started, slack: fake, database }) => {
  app = started;
  slack = fake;
  databaseUrl = database.url;
  for (const id of ['gone-bot', 'held-bot']) expect((await app.call('PUT', `/v1/agents/${id}`, { ...sampleAgent, name: `Agent ${id}` })).status).toBe(201);
});

const sql = (text: string, values: unknown[] = []): Promise<pg.QueryResult> => sqlAt(databaseUrl, text, values);

interface Listed {
  id: string;
  person: string;
  platform: string;
  userId: string;
  emails: string[];
  createdAt: string;
  expiresAt: string;
}

const listed = async (query = ''): Promise<Listed[]> => {
  const res = await app.call('GET', `/v1/console/sessions${query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items as Listed[];
};
/** The open session ids of one person, as the admin API lists them. */
const idsOf = async (person: string) => (await listed(`?person=${encodeURIComponent(person)}`)).map((s) => s.id).sort();
const revocations = async () =>
  (await sql(`select actor, action, subject, payload from audit_log where action = 'console.sessions_revoked' order by seq`)).rows as { actor: string; action: string; subject: string; payload: { sessionIds: string[]; ended: number; reason: string; scope: string } }[];
const isSignedIn = async (cookie: string) => (await consoleGet(app, '/console', cookie)).status === 200;
const statusOf = async (agentId: string) => (await app.call('GET', `/v1/agents/${agentId}`)).body.status as string;

it('an administrator lists the open sessions: a public id, the person, when it began and ends; never the cookie; filtered by person', async () => {
  const first = await signInFromSlack(app, slack, 'U0ONCALL1');
  const second = await signInFromSlack(app, slack, 'U0ONCALL1');
  const other = await signInFromSlack(app, slack, 'U0CISO');

  const mine = await listed('?person=slack:U0ONCALL1');
  expect(mine).toHaveLength(2);
  for (const s of mine) {
    expect(s).toMatchObject({ person: 'slack:U0ONCALL1', platform: 'slack', userId: 'U0ONCALL1' });
    expect(s.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(s.expiresAt) - Date.parse(s.createdAt)).toBe(8 * 3600_000);
  }
  // The listing never carries what opens a session: not the cookie, not its digest.
  const all = await app.call('GET', '/v1/console/sessions');
  expect(all.body.items.map((s: Listed) => s.person)).toEqual(expect.arrayContaining(['slack:U0ONCALL1', 'slack:U0CISO']));
  for (const cookie of [first, second, other]) {
    const value = cookie.split('=')[1]!;
    expect(JSON.stringify(all.body)).not.toContain(value);
    expect(JSON.stringify(all.body)).not.toContain(createHash('sha256').update(value).digest('hex'));
  }
  expect(await idsOf('slack:U0CISO')).toHaveLength(1);

  // Paged like the other listings.
  const page = await app.call('GET', '/v1/console/sessions?limit=1');
  expect(page.body.items).toHaveLength(1);
  const next = await app.call('GET', `/v1/console/sessions?limit=1&cursor=${page.body.nextCursor}`);
  expect(next.status).toBe(200);
  expect(next.body.items[0].id).not.toBe(page.body.items[0].id);

  // A session signed out is no longer listed.
  const csrf = csrfOf((await consoleGet(app, '/console', other)).text);
  expect((await consolePost(app, '/console/logout', { csrf }, other)).status).toBe(200);
  expect(await idsOf('slack:U0CISO')).toEqual([]);
});

it('ending one session: its next page answers 401 and its next post 403 and changes nothing; the person\'s other session goes on; one audit entry', async () => {
  const laptop = await signInFromSlack(app, slack, 'U0ONCALL2');
  const before = await idsOf('slack:U0ONCALL2');
  const phone = await signInFromSlack(app, slack, 'U0ONCALL2');
  const phoneId = (await idsOf('slack:U0ONCALL2')).find((id) => !before.includes(id))!;
  const laptopId = before[0]!;
  const laptopCsrf = csrfOf((await consoleGet(app, '/console/agents/gone-bot', laptop)).text);
  const audited = (await revocations()).length;

  const res = await app.call('DELETE', `/v1/console/sessions/${laptopId}?reason=${encodeURIComponent('laptop reported lost')}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toEqual({ person: 'slack:U0ONCALL2', ended: 1, sessionIds: [laptopId] });

  // The laptop's cookie now opens nothing, as after a sign-out: the page asks to sign in, a form post is refused.
  const page = await consoleGet(app, '/console', laptop);
  expect(page.status).toBe(401);
  expect(page.text).toContain('You are not signed in');
  const post = await consolePost(app, '/console/agents/gone-bot/contain', { csrf: laptopCsrf, reason: 'from a stolen laptop' }, laptop);
  expect(post.status).toBe(403);
  expect(await statusOf('gone-bot')).toBe('active');
  // The phone is another session: it goes on.
  expect(await isSignedIn(phone)).toBe(true);
  expect(await idsOf('slack:U0ONCALL2')).toEqual([phoneId]);

  const entries = await revocations();
  expect(entries).toHaveLength(audited + 1);
  expect(entries.at(-1)).toEqual({ actor: 'api:secops', action: 'console.sessions_revoked', subject: 'slack:U0ONCALL2', payload: { sessionIds: [laptopId], ended: 1, reason: 'laptop reported lost', scope: 'session' } });
  expect((await app.call('GET', '/v1/audit/verify')).body.ok).toBe(true);

  // Again: it has already ended; nothing changes and nothing more is audited.
  const again = await app.call('DELETE', `/v1/console/sessions/${laptopId}`);
  expect(again.status).toBe(200);
  expect(again.body.ended).toBe(0);
  expect(await revocations()).toHaveLength(audited + 1);
});

it('ending every session of a person: both of theirs end, another person\'s stays; one audit entry with the reason', async () => {
  const a = await signInFromSlack(app, slack, 'U0ONCALL3');
  const b = await signInFromSlack(app, slack, 'U0ONCALL3');
  const bystander = await signInFromSlack(app, slack, 'U0ONCALL4');
  const theirs = await idsOf('slack:U0ONCALL3');
  expect(theirs).toHaveLength(2);
  const audited = (await revocations()).length;

  const res = await app.call('POST', '/v1/console/sessions:revoke', { person: 'slack:U0ONCALL3', reason: 'left the company' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.person).toBe('slack:U0ONCALL3');
  expect(res.body.ended).toBe(2);
  expect([...res.body.sessionIds].sort()).toEqual(theirs);

  expect(await isSignedIn(a)).toBe(false);
  expect(await isSignedIn(b)).toBe(false);
  expect(await isSignedIn(bystander)).toBe(true);
  expect(await idsOf('slack:U0ONCALL3')).toEqual([]);
  expect(await idsOf('slack:U0ONCALL4')).toHaveLength(1);

  const entries = await revocations();
  expect(entries).toHaveLength(audited + 1);
  expect(entries.at(-1)).toMatchObject({ actor: 'api:secops', subject: 'slack:U0ONCALL3', payload: { ended: 2, reason: 'left the company', scope: 'person' } });
  expect([...entries.at(-1)!.payload.sessionIds].sort()).toEqual(theirs);

  // Nobody left to end: nothing changes, nothing is audited.
  const none = await app.call('POST', '/v1/console/sessions:revoke', { person: 'slack:U0ONCALL3', reason: 'left the company' });
  expect(none.status).toBe(200);
  expect(none.body.ended).toBe(0);
  expect(await revocations()).toHaveLength(audited + 1);
});

it('bad input answers 400 with what is wrong, an unknown session 404; nothing ends and nothing is audited', async () => {
  const cookie = await signInFromSlack(app, slack, 'U0ONCALL5');
  const audited = (await revocations()).length;
  const open = await listed();

  const refused: [body: unknown, says: RegExp][] = [
    [{ reason: 'lost laptop' }, /person: expected slack:<user id>/],
    [{ person: 'U0ONCALL5', reason: 'lost laptop' }, /person: expected slack:<user id>/],
    [{ person: 'slack:U0ONCALL5' }, /reason: expected a reason/],
    [{ person: 'slack:U0ONCALL5', reason: '   ' }, /reason: give a reason/],
    [{ person: 'slack:U0ONCALL5', reason: 'lost', everyone: true }, /unknown field: everyone/],
    [['slack:U0ONCALL5'], /invalid body/],
  ];
  for (const [body, says] of refused) {
    const res = await app.call('POST', '/v1/console/sessions:revoke', body);
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(res.body.error.message, JSON.stringify(body)).toMatch(says);
  }
  const notJson = await app.call('POST', '/v1/console/sessions:revoke', 'person=slack:U0ONCALL5', { headers: { 'content-type': 'text/plain' } });
  expect(notJson.status).toBeGreaterThanOrEqual(400);
  expect(notJson.status).toBeLessThan(500);

  const badId = await app.call('DELETE', '/v1/console/sessions/not-a-session');
  expect(badId.status).toBe(400);
  expect(badId.body.error.message).toContain('expected a console session id');
  const unknown = await app.call('DELETE', '/v1/console/sessions/00000000-0000-4000-8000-000000000000');
  expect(unknown.status).toBe(404);
  expect(unknown.body.error.message).toBe('unknown console session 00000000-0000-4000-8000-000000000000');
  const target = open.find((s) => s.person === 'slack:U0ONCALL5')!;
  expect((await app.call('DELETE', `/v1/console/sessions/${target.id}?why=lost`)).status).toBe(400);
  expect((await app.call('GET', '/v1/console/sessions?person=nobody')).status).toBe(400);
  expect((await app.call('GET', '/v1/console/sessions?cursor=nonsense')).status).toBe(400);

  expect(await listed()).toEqual(open);
  expect(await isSignedIn(cookie)).toBe(true);
  expect(await revocations()).toHaveLength(audited);
});

it('a platform token may not list or end sessions: 403, and nothing ends', async () => {
  const cookie = await signInFromSlack(app, slack, 'U0ONCALL5');
  const [session] = await listed('?person=slack:U0ONCALL5');
  const audited = (await revocations()).length;
  const calls: [string, string, unknown?][] = [
    ['GET', '/v1/console/sessions'],
    ['DELETE', `/v1/console/sessions/${session!.id}`],
    ['POST', '/v1/console/sessions:revoke', { person: 'slack:U0ONCALL5', reason: 'not mine to end' }],
  ];
  for (const [method, path, body] of calls) {
    const res = await app.call(method, path, body, { token: PLATFORM_TOKEN });
    expect(res.status, `${method} ${path}`).toBe(403);
    expect(res.body.error.message).toContain('it needs a token with scope admin');
  }
  expect(await isSignedIn(cookie)).toBe(true);
  expect(await revocations()).toHaveLength(audited);
});

it('"Sign out everywhere" ends every session of the signed-in person, on every device; it needs the CSRF token; plain sign-out ends only this one', async () => {
  const desk = await signInFromSlack(app, slack, 'U0ONCALL4');
  const home = await signInFromSlack(app, slack, 'U0ONCALL4');
  const bystander = await signInFromSlack(app, slack, 'U0CISO');
  const page = (await consoleGet(app, '/console', desk)).text;
  // The button is on every page, next to "Sign out", with the session's CSRF token.
  const form = /<form method="post" action="\/console\/logout">(?:(?!<\/form>).)*name="everywhere" value="1"(?:(?!<\/form>).)*<\/form>/s.exec(page);
  expect(form, 'a sign-out-everywhere form').not.toBeNull();
  expect(form![0]).toContain('Sign out everywhere</button>');
  const csrf = csrfOf(form![0]);
  const open = await idsOf('slack:U0ONCALL4');
  expect(open.length).toBeGreaterThanOrEqual(2);
  const audited = (await revocations()).length;

  // Without the token, or with another session's, it is refused and nothing ends.
  expect((await consolePost(app, '/console/logout', { everywhere: '1' }, desk)).status).toBe(403);
  const otherCsrf = csrfOf((await consoleGet(app, '/console', bystander)).text);
  expect((await consolePost(app, '/console/logout', { everywhere: '1', csrf: otherCsrf }, desk)).status).toBe(403);
  expect(await idsOf('slack:U0ONCALL4')).toEqual(open);

  const out = await consolePost(app, '/console/logout', { everywhere: '1', csrf }, desk);
  expect(out.status).toBe(200);
  expect(out.text).toContain('signed out on every device');
  expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
  expect(await isSignedIn(desk)).toBe(false);
  expect(await isSignedIn(home)).toBe(false);
  expect(await isSignedIn(bystander)).toBe(true);
  expect(await idsOf('slack:U0ONCALL4')).toEqual([]);
  const entries = await revocations();
  expect(entries).toHaveLength(audited + 1);
  expect(entries.at(-1)).toMatchObject({ actor: 'console:slack:U0ONCALL4', subject: 'slack:U0ONCALL4', payload: { ended: open.length, scope: 'everywhere' } });

  // Plain sign-out still ends only the session it is posted from.
  const one = await signInFromSlack(app, slack, 'U0CISO');
  const oneCsrf = csrfOf((await consoleGet(app, '/console', one)).text);
  expect((await consolePost(app, '/console/logout', { csrf: oneCsrf }, one)).status).toBe(200);
  expect(await isSignedIn(one)).toBe(false);
  expect(await isSignedIn(bystander)).toBe(true);
});

it('a person named by email: the sessions of whoever the chat platform resolved to that address end', async () => {
  // The policy lists this person by email only; the directory job resolves it to a Slack user.
  await waitFor(async () => (await sql(`select user_id from chat_identities where email = 'leaver@example.com'`)).rows[0]?.user_id === 'U0LEAVER', 5000, 'leaver@example.com to resolve');
  const cookie = await signInFromSlack(app, slack, 'U0LEAVER');
  const bystander = await signInFromSlack(app, slack, 'U0ONCALL5');
  const [session] = await listed('?person=LEAVER@example.com');
  expect(session).toMatchObject({ person: 'slack:U0LEAVER', emails: ['leaver@example.com'] });

  const res = await app.call('POST', '/v1/console/sessions:revoke', { person: 'Leaver@Example.com', reason: 'last day' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toEqual({ person: 'leaver@example.com', ended: 1, sessionIds: [session!.id] });
  expect(await isSignedIn(cookie)).toBe(false);
  expect(await isSignedIn(bystander)).toBe(true);
  expect((await revocations()).at(-1)).toMatchObject({ subject: 'leaver@example.com', payload: { reason: 'last day', scope: 'person' } });
});
