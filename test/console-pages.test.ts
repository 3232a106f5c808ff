import { renameSync, writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import type pg from 'pg';
import { appTest } from './support/fixture.js';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import type { FakeConnector } from './support/fake-connector.js';
import { slashCommand, teamsSay, textOf } from './support/drive.js';
import { consoleGet, consoleLink, consolePost, csrfOf, LINK_PATTERN, signIn, signInFromSlack, sqlAt } from './support/console.js';

/**
 * What the console's pages show and who may act there (issue 14, DESIGN §5 "Web console"), beyond
 * test/console.test.ts: the overview's parts, the agent page's parts, incidents with durations and
 * who closed them, the audit's agent filter, every action refused in the page and at the endpoint for
 * a person the policy does not allow, the link's and the session's lifetimes, the per-person link
 * limit, a Teams card following a console decision, and a person taken out of the policy.
 */

const TEAMS_APPROVER = '00000000-0000-0000-0000-0000000000bb';

const policy = (oncall: string[]) => `
roles:
  security-oncall: { members: [${oncall.map((u) => `{ slack: ${u} }`).join(', ')}] }
  ciso: { members: [{ slack: U0CISO }, { slack: U0CISO2 }] }
  risk-owner: { members: [{ slack: U0RISK }] }
  procurement: { members: [{ slack: U0PROC }] }
  auditor: { members: [{ slack: U0AUDIT }] }
  crm-owner: { members: [{ teams: ${TEAMS_APPROVER} }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
  packet: [procurement, ciso]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
  - id: crm-exports
    match: { action: "crm:write" }
    approvers: [crm-owner]
channels:
  incidents: { slack: C0INCIDENTS }
`;
const POLICY = policy(['U0ONCALL1', 'U0ONCALL2']);

const it = appTest({ policy: POLICY, slack: true, teams: true, env: { ARMALO_PUBLIC_URL: 'https://armalo.example.test' }, appOptions: { relayPollMs: 200 } });
let app: TestApp;
let slack: FakeSlack;
let connector: FakeConnector;
let databaseUrl: string;
let policyFile: string;

const AGENTS = ['ov-held', 'ov-mover', 'page-bot', 'inc-bot', 'gate-bot', 'rev-bot', 'crm-bot'];

it.beforeAll(async ({ app: started, slack: fake, connector: bot, database, policyFile: file }) => {
  app = started;
  slack = fake;
  connector = bot;
  databaseUrl = database.url;
  policyFile = file!;
  for (const id of AGENTS) expect((await app.call('PUT', `/v1/agents/${id}`, { ...sampleAgent, name: `Agent ${id}` })).status).toBe(201);
});

const sql = (text: string, values: unknown[] = []): Promise<pg.QueryResult> => sqlAt(databaseUrl, text, values);

const statusOf = async (agentId: string) => (await app.call('GET', `/v1/agents/${agentId}`)).body.status as string;
/** The part of a page after a heading, up to the next one: what a person reads under it. */
const section = (page: string, heading: string) => {
  const start = page.indexOf(`<h2>${heading}`);
  expect(start, `a "${heading}" section`).toBeGreaterThan(-1);
  const end = page.indexOf('<h2>', start + 4);
  return page.slice(start, end === -1 ? undefined : end);
};
/** Evaluations a few days old, passed or failed: each moves the agent's score. */
async function evaluate(agentId: string, results: boolean[]): Promise<void> {
  const now = Date.now();
  for (const [i, passed] of results.entries()) {
    const evaluation = { id: `${agentId}-eval-${i}`, dimension: i % 2 ? 'safety' : 'accuracy', passed, observedAt: new Date(now - (results.length - i) * 86_400_000).toISOString(), source: 'redteam' };
    expect((await app.call('POST', `/v1/agents/${agentId}/evaluations`, evaluation)).status).toBeLessThan(300);
  }
}

it('overview: agents counted by status (each count filters the list), open incidents, the week\'s score movers', async () => {
  expect(textOf((await slashCommand(app, slack, 'U0ONCALL1', 'contain ov-held leaking customer data')).body)).toContain('Contained ov-held');
  await evaluate('ov-mover', [true, true, false, false]);
  const cookie = await signInFromSlack(app, slack, 'U0AUDIT');

  const overview = (await consoleGet(app, '/console', cookie)).text;
  expect(overview).toContain(`<a href="/console?status=contained"><b>1</b>`);
  expect(overview).toContain(`<a href="/console?status=active"><b>${AGENTS.length - 1}</b>`);
  const open = section(overview, 'Open incidents');
  expect(open).toContain('ov-held');
  expect(open).toContain('leaking customer data');
  const movers = section(overview, 'Score movers this week');
  expect(movers).toContain('href="/console/agents/ov-mover"');
  expect(movers).not.toContain('No score changed');

  const contained = (await consoleGet(app, '/console?status=contained', cookie)).text;
  expect(contained).toContain('<h1>Overview: contained agents</h1>');
  const listed = section(contained, 'Agents');
  expect(listed).toContain('/console/agents/ov-held');
  expect(listed).not.toContain('/console/agents/page-bot');
});

it('agent page: grants and their state, the 90-day score chart, evidence freshness, incidents with their timelines, approval requests, audit entries', async () => {
  await evaluate('page-bot', [true, false, true]);
  expect(textOf((await slashCommand(app, slack, 'U0ONCALL1', 'narrow page-bot payments:* odd refunds')).body)).toContain('page-bot');
  expect((await app.call('POST', '/v1/approval-requests', { agentId: 'page-bot', action: 'payments:transfer', context: { amount: 20_000 }, justification: 'quarterly settlement' })).status).toBe(201);
  const cookie = await signInFromSlack(app, slack, 'U0AUDIT');
  const page = (await consoleGet(app, '/console/agents/page-bot', cookie)).text;

  const grants = section(page, 'Grants');
  expect(grants).toMatch(/<code>payments:transfer<\/code><\/td><td><span class="status status-suspended">suspended<\/span>/);
  expect(grants).toMatch(/<code>crm:write<\/code><\/td><td><span class="status status-active">active<\/span>/);
  expect(grants).toContain('kept in containment');
  const trust = section(page, 'Trust');
  expect(trust).toMatch(/Score <strong>\d+<\/strong>/);
  expect(trust).toContain('evidence fresh');
  expect(trust).toMatch(/<div class="chart" role="img" aria-label="Score over the last 90 days"><svg/);
  const incidents = section(page, 'Incidents');
  expect(incidents).toMatch(/<h3>Timeline: narrow <span class="status status-open">open<\/span>/);
  expect(incidents).toContain('<code>slack:U0ONCALL1</code>');
  expect(incidents).toContain('odd refunds');
  expect(section(page, 'Approval requests')).toContain('quarterly settlement');
  const audit = section(page, 'Audit entries');
  expect(audit).toContain('<code>agent.narrow</code>');
  expect(audit).toContain('<code>agent.registered</code>');
});

it('incidents page: open and closed ones, how long they lasted, who opened and who closed them; the agent page keeps a closed one\'s timeline', async () => {
  const asker = await signInFromSlack(app, slack, 'U0ONCALL1');
  const csrf = csrfOf((await consoleGet(app, '/console/agents/inc-bot', asker)).text);
  expect((await consolePost(app, '/console/agents/inc-bot/contain', { csrf, reason: 'prompt injection seen' }, asker)).status).toBe(200);
  // The incident has been open for an hour and a half by the time it is closed.
  await sql(`update incidents set opened_at = opened_at - interval '90 minutes' where agent_id = 'inc-bot'`);
  const cookie = await signInFromSlack(app, slack, 'U0AUDIT');
  const openRow = section((await consoleGet(app, '/console/incidents', cookie)).text, 'Open');
  expect(openRow).toContain('prompt injection seen');
  expect(openRow).toMatch(/inc-bot[\s\S]*?by <code>console:slack:U0ONCALL1<\/code>[\s\S]*?<td>1\.5 h<\/td>/);

  expect((await consolePost(app, '/console/agents/inc-bot/restore', { csrf, reason: 'patched the prompt' }, asker)).status).toBe(200);
  const second = await signInFromSlack(app, slack, 'U0ONCALL2');
  const confirm = /name="confirm" value="([^"]+)"/.exec((await consoleGet(app, '/console/agents/inc-bot', second)).text)![1]!;
  const secondCsrf = csrfOf((await consoleGet(app, '/console/agents/inc-bot', second)).text);
  expect((await consolePost(app, '/console/agents/inc-bot/restore', { csrf: secondCsrf, confirm }, second)).status).toBe(200);
  expect(await statusOf('inc-bot')).toBe('active');

  const page = (await consoleGet(app, '/console/incidents', cookie)).text;
  expect(section(page, 'Open')).not.toContain('prompt injection seen');
  const closed = section(page, 'Closed');
  const row = closed.split('<tr>').find((r) => r.includes('prompt injection seen'));
  expect(row, closed.slice(0, 400)).toBeDefined();
  expect(row).toContain('status-closed');
  expect(row).toContain('by <code>console:slack:U0ONCALL1</code>');
  expect(row).toContain('<td>1.5 h</td>');
  expect(row).toContain('<code>console:slack:U0ONCALL2</code>');

  // The agent's page keeps the closed incident's timeline: who did what, and when.
  const timeline = section((await consoleGet(app, '/console/agents/inc-bot', cookie)).text, 'Incidents');
  expect(timeline).toMatch(/<h3>Timeline: contain <span class="status status-closed">closed<\/span>/);
  const steps = timeline.slice(timeline.indexOf('<h3>Timeline'));
  expect(steps).toMatch(/<code>console:slack:U0ONCALL1<\/code> contain: prompt injection seen/);
  expect(steps).toMatch(/<code>console:slack:U0ONCALL\d<\/code> restore/);
});

it('audit: the agent filter shows that agent\'s entries only, on the page and in the CSV', async () => {
  const cookie = await signInFromSlack(app, slack, 'U0AUDIT');
  const page = (await consoleGet(app, '/console/audit?agent=page-bot', cookie)).text;
  const table = page.slice(page.indexOf('<table>'));
  const subjects = new Set([...table.matchAll(/href="\/console\/agents\/([^"]+)"/g)].map((m) => m[1]));
  expect([...subjects]).toEqual(['page-bot']);
  expect(table).toContain('agent.narrow');
  const csv = (await consoleGet(app, '/console/audit?agent=page-bot&format=csv', cookie)).text;
  const rows = csv.trim().split('\r\n').slice(1);
  expect(rows.length).toBeGreaterThan(1);
  for (const row of rows) expect(row.split(',')[4]).toBe('"page-bot"');
});

it('every action is refused to a person the policy does not allow: no button on the page, 403 at the endpoint, nothing changed', async () => {
  // An approval routed to the risk owner (for an agent not contained: a contain cancels what is pending),
  // and a restore waiting for its second person.
  const created = await app.call('POST', '/v1/approval-requests', { agentId: 'ov-mover', action: 'payments:transfer', context: { amount: 30_000 }, justification: 'vendor payout' });
  expect(created.status).toBe(201);
  const request = created.body.id as string;
  expect(textOf((await slashCommand(app, slack, 'U0ONCALL1', 'contain gate-bot odd logins')).body)).toContain('Contained gate-bot');
  expect(textOf((await slashCommand(app, slack, 'U0ONCALL1', 'restore gate-bot all clear')).body)).toContain('second person');
  const pending = (await sql(`select id from confirmations where agent_id = 'gate-bot' and kind = 'restore' and decided_at is null`)).rows[0].id as string;

  // The auditor holds a role (so reads every page) but none that acts.
  const auditor = await signInFromSlack(app, slack, 'U0AUDIT');
  const page = (await consoleGet(app, '/console/agents/gate-bot', auditor)).text;
  expect(page).toContain('Restore waiting for a second person');
  for (const action of ['contain', 'narrow', 'restore', 'revoke', 'packet']) expect(page, action).not.toContain(`action="/console/agents/gate-bot/${action}"`);
  expect(page).not.toContain('Confirm restore');
  expect(page).toContain('Your roles do not allow actions on agents.');
  const csrf = csrfOf(page);
  const posts: [string, Record<string, string>][] = [
    ['/console/agents/gate-bot/contain', { reason: 'forged' }],
    ['/console/agents/gate-bot/narrow', { scopes: 'payments:*', reason: 'forged' }],
    ['/console/agents/gate-bot/restore', { reason: 'forged' }],
    ['/console/agents/gate-bot/restore', { confirm: pending }],
    ['/console/agents/gate-bot/revoke', { reason: 'forged' }],
    ['/console/agents/gate-bot/packet', { audience: 'forged' }],
    [`/console/approvals/${request}/approve`, {}],
    [`/console/approvals/${request}/deny`, { reason: 'forged denial' }],
  ];
  for (const [path, fields] of posts) {
    const res = await consolePost(app, path, { csrf, ...fields }, auditor);
    expect(res.status, path).toBe(403);
    expect(res.text, path).toContain('Not allowed');
  }
  const approvals = (await consoleGet(app, '/console/approvals', auditor)).text;
  expect(approvals).not.toContain(`/console/approvals/${request}/approve`);
  expect(approvals).not.toContain(`/console/approvals/${request}/deny`);
  expect((await consoleGet(app, `/console/approvals/${request}/deny`, auditor)).status).toBe(403);
  expect(await statusOf('gate-bot')).toBe('contained');
  expect((await app.call('GET', `/v1/approval-requests/${request}`)).body.status).toBe('pending');
  expect((await sql(`select decided_at from confirmations where id = $1`, [pending])).rows[0].decided_at).toBeNull();
  expect((await sql(`select count(*)::int as n from trust_packets where agent_id = 'gate-bot'`)).rows[0].n).toBe(0);

  // On-call may contain but not revoke: the revoke button is not shown to them, and the post is refused.
  const oncall = await signInFromSlack(app, slack, 'U0ONCALL2');
  const oncallPage = (await consoleGet(app, '/console/agents/gate-bot', oncall)).text;
  expect(oncallPage).toContain('action="/console/agents/gate-bot/contain"');
  expect(oncallPage).not.toContain('action="/console/agents/gate-bot/revoke"');
  expect((await consolePost(app, '/console/agents/gate-bot/revoke', { csrf: csrfOf(oncallPage), reason: 'forged' }, oncall)).status).toBe(403);
  expect(await statusOf('gate-bot')).toBe('contained');
});

it('revoke: only the person who asked can confirm it', async () => {
  const asker = await signInFromSlack(app, slack, 'U0CISO');
  const first = await consolePost(app, '/console/agents/rev-bot/revoke', { csrf: csrfOf((await consoleGet(app, '/console/agents/rev-bot', asker)).text), reason: 'key leaked' }, asker);
  expect(first.text).toContain('Yes, revoke rev-bot');
  const confirm = /name="confirm" value="([^"]+)"/.exec(first.text)![1]!;
  const other = await signInFromSlack(app, slack, 'U0CISO2');
  const stolen = await consolePost(app, '/console/agents/rev-bot/revoke', { csrf: csrfOf((await consoleGet(app, '/console/agents/rev-bot', other)).text), confirm, reason: 'key leaked' }, other);
  expect(stolen.status).toBe(403);
  expect(await statusOf('rev-bot')).toBe('active');
  const done = await consolePost(app, '/console/agents/rev-bot/revoke', { csrf: csrfOf(first.text), confirm, reason: 'key leaked' }, asker);
  expect(done.status).toBe(200);
  expect(await statusOf('rev-bot')).toBe('revoked');
});

it('a sign-in link lasts 5 minutes; a session 8 hours, and past that the server refuses it', async () => {
  const { token } = await consoleLink(app, slack, 'U0RISK');
  const link = (await sql(`select extract(epoch from expires_at - created_at)::int as s from console_login_tokens order by created_at desc limit 1`)).rows[0].s as number;
  expect(link).toBe(300);
  const { cookie } = await signIn(app, token);
  const session = (await sql(`select id, extract(epoch from expires_at - created_at)::int as s from console_sessions order by created_at desc limit 1`)).rows[0];
  expect(session.s).toBe(8 * 3600);
  expect((await consoleGet(app, '/console', cookie)).status).toBe(200);
  // Eight hours later: the cookie is still in the browser, the server no longer honours it.
  await sql(`update console_sessions set expires_at = now() - interval '1 second' where id = $1`, [session.id]);
  const after = await consoleGet(app, '/console', cookie);
  expect(after.status).toBe(401);
  expect(after.text).toContain('/armalo console');
});

it('a person may ask for 5 sign-in links in 5 minutes; the sixth request says why it is refused', async () => {
  // Earlier tests of this file asked for links as the auditor: ten minutes have passed since.
  await sql(`update console_login_tokens set created_at = created_at - interval '10 minutes' where user_id = 'U0AUDIT'`);
  for (let i = 0; i < 5; i++) await consoleLink(app, slack, 'U0AUDIT');
  const sixth = textOf((await slashCommand(app, slack, 'U0AUDIT', 'console')).body);
  expect(sixth).toContain('5 sign-in links in the last 5 minutes');
  expect(sixth).not.toMatch(LINK_PATTERN);
});

it('an approval decided in the console updates its card in Teams', async () => {
  const reply = await teamsSay(app, connector, 'console', TEAMS_APPROVER);
  const token = LINK_PATTERN.exec(JSON.stringify(reply.body))?.[1];
  expect(token, JSON.stringify(reply.body).slice(0, 400)).toBeDefined();
  const { cookie } = await signIn(app, token!);
  const id = (await app.call('POST', '/v1/approval-requests', { agentId: 'crm-bot', action: 'crm:write', justification: 'bulk contact import' })).body.id as string;
  const chat = `a:personal-${TEAMS_APPROVER}`;
  await waitFor(() => connector.sent(chat).some((c) => c.method === 'POST' && JSON.stringify(c.body).includes(id)), 10_000, 'the approval card in Teams');
  const page = (await consoleGet(app, '/console/approvals', cookie)).text;
  expect(page).toContain(`/console/approvals/${id}/approve`);
  expect((await consolePost(app, `/console/approvals/${id}/approve`, { csrf: csrfOf(page) }, cookie)).status).toBe(200);
  await waitFor(() => connector.sent(chat).some((c) => c.method === 'PUT' && JSON.stringify(c.body).includes('APPROVED')), 10_000, 'the Teams card to show APPROVED');
  expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.decisions[0]).toMatchObject({ by: `console:teams:${TEAMS_APPROVER}`, via: 'console' });
});

// Last in the file: it changes the policy.
it('a person taken out of the policy loses the console at their next request, with the session still open', async () => {
  const cookie = await signInFromSlack(app, slack, 'U0ONCALL2');
  const page = (await consoleGet(app, '/console/agents/ov-mover', cookie)).text;
  expect(page).toContain('action="/console/agents/ov-mover/contain"');
  const before = (await app.call('GET', '/readyz', undefined, { token: null })).body.policyHash as string;
  writeFileSync(`${policyFile}.next`, policy(['U0ONCALL1']));
  renameSync(`${policyFile}.next`, policyFile);
  await waitFor(async () => (await app.call('GET', '/readyz', undefined, { token: null })).body.policyHash !== before, 10_000, 'the new policy in force');
  expect((await consoleGet(app, '/console/agents/ov-mover', cookie)).status).toBe(403);
  expect((await consolePost(app, '/console/agents/ov-mover/contain', { csrf: csrfOf(page), reason: 'after removal' }, cookie)).status).toBe(403);
  expect(await statusOf('ov-mover')).toBe('active');
});
