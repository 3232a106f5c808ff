import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { clickButton, slashCommand, textOf } from './support/drive.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';
import type { FakeSlack } from './support/fake-slack.js';
import { plain, type Text } from '../src/notices/model.js';

/** Issue 18 in chat: `/armalo agents [status]` with its "more" button and `/armalo incidents`, over signed Slack requests. */
let app: TestApp;
let slack: FakeSlack;

/** bot-01 … bot-20: more than one chat page (15). */
const AGENT_IDS = Array.from({ length: 20 }, (_, i) => `bot-${String(i + 1).padStart(2, '0')}`);

const it = appTest({ policy: SLACK_TEST_POLICY, slack: true });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  for (const id of AGENT_IDS) expect((await app.call('PUT', `/v1/agents/${id}`, { ...sampleAgent, name: `Agent ${id}` })).status).toBe(201);
}, 60_000);

const command = async (user: string, text: string) => (await slashCommand(app, slack, user, text)).body;
const click = (user: string, actionId: string, value: string) => clickButton(app, slack, user, actionId, value);
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
