import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanRedisPrefix, sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './support/database.js';
import { FakeSlack } from './support/fake-slack.js';
import { blockActionBody, postSigned, slashCommandBody, SIGNING_SECRET } from './support/slack-requests.js';
import { writePolicy } from './support/slack-policy.js';
import { plain, type Text } from '../src/notices/model.js';

/** Issue 18 in chat: `/armalo agents [status]` with its "more" button and `/armalo incidents`, over signed Slack requests. */
let database: TestDatabase;
let app: TestApp;
const slack = new FakeSlack();
const prefix = testPrefix();
let responses = 0;

/** bot-01 … bot-20: more than one chat page (15). */
const AGENT_IDS = Array.from({ length: 20 }, (_, i) => `bot-${String(i + 1).padStart(2, '0')}`);

beforeAll(async () => {
  database = await createTestDatabase();
  const apiUrl = await slack.start();
  app = await startTestApp(
    testConfig(database.url, prefix, {
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: 'xoxb-test-token-0123456789',
      SLACK_API_URL: apiUrl,
      ARMALO_POLICY_FILE: writePolicy(),
    }),
  );
  for (const id of AGENT_IDS) expect((await app.call('PUT', `/v1/agents/${id}`, { ...sampleAgent, name: `Agent ${id}` })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await slack.stop();
  await database?.drop();
  await cleanRedisPrefix(prefix);
});

async function command(user: string, text: string) {
  const res = await postSigned(app.url, slashCommandBody({ user_id: user, text, response_url: slack.responseUrl(`cmd-${++responses}`) }));
  expect(res.status).toBe(200);
  return res.body;
}

async function click(user: string, actionId: string, value: string) {
  const id = `click-${++responses}`;
  const res = await postSigned(app.url, blockActionBody({ user_id: user, action_id: actionId, value, response_url: slack.responseUrl(id) }));
  expect(res.status).toBe(200);
  await waitFor(() => slack.responses.some((r) => r.id === id), 5000, `the answer to click ${id}`);
  return slack.responses.find((r) => r.id === id)!.body;
}

const textOf = (body: any): string => JSON.stringify(body?.blocks ?? body);
const listed = (body: any): string[] => [...textOf(body).matchAll(/`(bot-\d\d)`/g)].map((m) => m[1]!);
const moreButton = (body: any) => (body.blocks as any[]).find((b) => b.type === 'actions' && b.block_id === 'more')?.elements[0];

describe('/armalo agents', () => {
  it('answers privately with the first page and a "more" button; the button shows the rest to the clicker', async () => {
    const first = await command('U0ONCALL1', 'agents');
    expect(first.response_type).toBe('ephemeral');
    expect(listed(first)).toEqual(AGENT_IDS.slice(0, 15));
    const button = moreButton(first);
    expect(button).toMatchObject({ action_id: 'armalo_more', text: { text: 'More' } });
    expect(textOf(first)).toContain('Next page: `agents all --after ');

    const second = await click('U0ONCALL1', 'armalo_more', button.value);
    expect(second.response_type).toBe('ephemeral');
    expect(second.replace_original).toBe(false);
    expect(listed(second)).toEqual(AGENT_IDS.slice(15));
    expect(moreButton(second)).toBeUndefined();
  });

  it('filters by status: contained, narrowed; all lists every status', async () => {
    expect(textOf(await command('U0ONCALL1', 'contain bot-03 suspicious refunds'))).toContain('Contained bot-03');
    expect(textOf(await command('U0ONCALL2', 'narrow bot-07 mail:* odd mail'))).toContain('Narrowed bot-07');
    const contained = await command('U0CISO', 'agents contained');
    expect(listed(contained)).toEqual(['bot-03']);
    expect(textOf(contained)).toContain('*contained*');
    expect(moreButton(contained)).toBeUndefined();
    expect(listed(await command('U0CISO', 'agents Narrowed'))).toEqual(['bot-07']);
    expect(textOf(await command('U0CISO', 'agents revoked'))).toContain('No revoked agents');
    expect(listed(await command('U0CISO', 'agents all'))).toHaveLength(15);
  });

  it('someone with no role in the policy is refused, by command and by button; nothing is listed', async () => {
    const refused = await command('U0RANDOM', 'agents');
    expect(textOf(refused)).toContain('Not allowed');
    expect(listed(refused)).toEqual([]);
    const first = await command('U0ONCALL1', 'agents');
    const byButton = await click('U0RANDOM', 'armalo_more', moreButton(first).value);
    expect(textOf(byButton)).toContain('Not allowed');
    expect(listed(byButton)).toEqual([]);
  });

  it('a forged "more" value cannot run another command; bad words and cursors get the usage line', async () => {
    const forged = await click('U0ONCALL1', 'armalo_more', 'contain bot-01 via a forged button');
    expect(textOf(forged)).toContain('That button is not valid');
    expect((await app.call('GET', '/v1/agents/bot-01')).body.status).toBe('active');
    const sleeping = await command('U0ONCALL1', 'agents sleeping');
    expect(textOf(sleeping)).toContain('not a status to list');
    expect(textOf(sleeping)).toContain('/armalo agents [all|active|narrowed|contained|revoked]');
    expect(textOf(await command('U0ONCALL1', 'agents --after not-a-cursor'))).toContain('not a cursor of this listing');
    expect(textOf(await command('U0ONCALL1', 'agents --color blue'))).toContain('unknown option');
    expect(textOf(await command('U0ONCALL1', 'incidents all'))).toContain('takes nothing more');
  });
});

describe('/armalo incidents', () => {
  it('lists the open incidents privately, newest first, with who opened them and how', async () => {
    const res = await command('U0ONCALL2', 'incidents');
    expect(res.response_type).toBe('ephemeral');
    expect(listed(res)).toEqual(['bot-07', 'bot-03']);
    expect(textOf(res)).toContain('contain by slack:U0ONCALL1');
    expect(textOf(res)).toContain('suspicious refunds');
    expect(textOf(await command('U0RANDOM', 'incidents'))).toContain('Not allowed');

    // The same incident over REST: opened in Slack, by that person.
    const rest = await app.call('GET', '/v1/incidents?agentId=bot-03');
    expect(rest.body.items[0]).toMatchObject({ openedBy: 'slack:U0ONCALL1', openedVia: 'slack', status: 'open' });
    const detail = await app.call('GET', `/v1/incidents/${rest.body.items[0].id}`);
    expect(detail.body.timeline[0]).toMatchObject({ event: 'contain', actor: 'slack:U0ONCALL1', via: 'slack', reason: 'suspicious refunds' });

    // A restore waiting for a second person is part of the story, with its outcome once there is one.
    expect(textOf(await command('U0ONCALL2', 'restore bot-03 refunds explained'))).toContain('a second person must confirm');
    const asked = (await app.call('GET', `/v1/incidents/${rest.body.items[0].id}`)).body.timeline.at(-1);
    expect(asked).toMatchObject({ event: 'restore_requested', actor: 'slack:U0ONCALL2', via: 'slack', reason: 'refunds explained', outcome: null, decidedBy: null });
  });

  it('Teams gets the same answer through the shared command path, with the words for the next page', async () => {
    const teamsPerson = { platform: 'teams' as const, userId: '00000000-0000-0000-0000-00000000abcd', emails: ['risk@example.com'] };
    const page = await app.commands.handle(teamsPerson, 'agents');
    // Lines are spans now: identifiers are code spans, shown here between backticks.
    const lineText = (l: Text | string) => (typeof l === 'string' ? l : l.map((s) => (typeof s === 'object' && 'code' in s ? `\`${s.code}\`` : plain([s]))).join(''));
    expect(page.lines.map(lineText).filter((l) => l.startsWith('`bot-'))).toHaveLength(15);
    const next = lineText(page.lines.at(-1)!).match(/^Next page: `(agents all --after [A-Za-z0-9_-]+)`$/)?.[1];
    expect(next).toBeDefined();
    const rest = await app.commands.handle(teamsPerson, next!);
    expect(rest.lines.map((l) => lineText(l).match(/^`(bot-\d\d)`/)?.[1])).toEqual(AGENT_IDS.slice(15));
    expect(rest.more).toBeUndefined();
    expect((await app.commands.handle({ ...teamsPerson, emails: [] }, 'incidents')).title).toContain('Not allowed');
  });

  it('help lists both commands', async () => {
    const help = textOf(await command('U0RANDOM', 'help'));
    expect(help).toContain('/armalo agents [all|active|narrowed|contained|revoked]');
    expect(help).toContain('/armalo incidents');
  });
});
