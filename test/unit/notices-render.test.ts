import { describe, expect, it } from 'vitest';
import { renderSlack, renderSlackHome, type Block } from '../../src/slack/render.js';
import { cardAttachment, renderTeams } from '../../src/teams/render.js';
import { waitingNotice } from '../../src/notices/approval.notice.js';
import { replyNotice } from '../../src/notices/reply.notice.js';
import type { Notice } from '../../src/notices/model.js';
import { approval, everyNotice, ORDINARY, reply, type UserTexts } from './notices-fixtures.js';

/** What a hostile user types, in every field a user controls. */
const HOSTILE_PARTS = ['<!channel>', '<@U1>', '[x](http://e)', '**b**', '# h'];
const hostile = (what: string) => `${what} ${HOSTILE_PARTS.join(' ')}\n# h`;
const HOSTILE: UserTexts = {
  name: hostile('Name'),
  owner: hostile('Owner'),
  reason: hostile('Reason'),
  justification: hostile('Why'),
  actor: `teams:${hostile('Actor')}`,
  audience: hostile('Audience'),
  pact: hostile('Pact'),
  problem: hostile('Problem'),
};
/** Long user text: 5,000-character reasons, justifications, names. */
const long = (what: string) => `${what} ${'x'.repeat(4_990)}`;
const LONG: UserTexts = {
  name: long('Name'),
  owner: long('Owner'),
  reason: long('Reason'),
  justification: long('Why'),
  actor: 'slack:U0ONCALL1',
  audience: long('Audience'),
  pact: long('Pact'),
  problem: long('Problem'),
};

/** Every string of a payload; Slack's plain_text objects are shown as typed, never parsed, so they are left out. */
function strings(x: unknown): string[] {
  if (typeof x === 'string') return [x];
  if (x && typeof x === 'object' && (x as { type?: unknown }).type === 'plain_text') return [];
  // Teams button titles are plain text too (not Markdown).
  if (x && typeof x === 'object' && String((x as { type?: unknown }).type).startsWith('Action.')) {
    const { title: _title, ...rest } = x as Record<string, unknown>;
    return Object.values(rest).flatMap(strings);
  }
  if (Array.isArray(x)) return x.flatMap(strings);
  if (x && typeof x === 'object') return Object.values(x).flatMap(strings);
  return [];
}

// ---------------------------------------------------------------------------------------------
// Block Kit's structural limits.

function expectBlockKit(payload: { blocks: Block[] }, maxBlocks = 50) {
  expect(payload.blocks.length).toBeLessThanOrEqual(maxBlocks);
  const ids = new Set<string>();
  for (const b of payload.blocks as any[]) {
    expect(['section', 'context', 'actions', 'header', 'divider']).toContain(b.type);
    if (b.block_id) {
      expect(ids.has(b.block_id), `duplicate block_id ${b.block_id}`).toBe(false);
      ids.add(b.block_id);
    }
    if (b.type === 'section') {
      expect(b.text.type).toBe('mrkdwn');
      expect(b.text.text.length).toBeGreaterThan(0);
      expect(b.text.text.length).toBeLessThanOrEqual(3000);
    }
    if (b.type === 'context') {
      expect(b.elements.length).toBeLessThanOrEqual(10);
      for (const e of b.elements) expect(e.text.length).toBeLessThanOrEqual(3000);
    }
    if (b.type === 'header') {
      expect(b.text.type).toBe('plain_text');
      expect(b.text.text.length).toBeLessThanOrEqual(150);
    }
    if (b.type === 'actions') {
      expect(b.elements.length).toBeGreaterThan(0);
      expect(b.elements.length).toBeLessThanOrEqual(25);
      for (const e of b.elements) {
        expect(e.type).toBe('button');
        expect(e.text.type).toBe('plain_text');
        expect(e.text.text.length).toBeLessThanOrEqual(75);
        if (e.value !== undefined) expect(e.value.length).toBeLessThanOrEqual(2000);
        expect(e.action_id).toMatch(/^armalo_/);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Adaptive Card 1.5 shape.

const ELEMENTS = new Set(['TextBlock', 'FactSet', 'ActionSet', 'Input.Text']);
const ACTIONS = new Set(['Action.Execute', 'Action.ShowCard', 'Action.OpenUrl']);
const VERBS = new Set(['armalo.approve', 'armalo.deny', 'armalo.refresh', 'armalo.confirm', 'armalo.cancel']);

function expectAction(a: any) {
  expect(ACTIONS.has(a.type), `unknown action ${a.type}`).toBe(true);
  expect(typeof a.title).toBe('string');
  if (a.type === 'Action.Execute') {
    expect(VERBS.has(a.verb), `unknown verb ${a.verb}`).toBe(true);
    expect(a.data && typeof a.data).toBe('object');
  }
  if (a.type === 'Action.OpenUrl') expect(a.url).toMatch(/^https:\/\//);
  if (a.type === 'Action.ShowCard') expectCard(a.card, false);
}

function expectElements(elements: any[]) {
  for (const e of elements) {
    expect(ELEMENTS.has(e.type), `unknown element ${e.type}`).toBe(true);
    if (e.type === 'TextBlock') {
      expect(typeof e.text).toBe('string');
      expect(e.wrap).toBe(true);
    }
    if (e.type === 'FactSet') {
      expect(e.facts.length).toBeGreaterThan(0);
      for (const f of e.facts) {
        expect(Object.keys(f).sort()).toEqual(['title', 'value']);
        expect(typeof f.title).toBe('string');
        expect(typeof f.value).toBe('string');
        expect(f.value.length).toBeGreaterThan(0);
      }
    }
    if (e.type === 'ActionSet') for (const a of e.actions) expectAction(a);
  }
}

function expectCard(card: any, top = true) {
  expect(card.type).toBe('AdaptiveCard');
  expect(card.version).toBe('1.5');
  if (top) expect(card.$schema).toBe('http://adaptivecards.io/schemas/adaptive-card.json');
  expect(Array.isArray(card.body)).toBe(true);
  expectElements(card.body);
  for (const a of card.actions ?? []) expectAction(a);
  if (card.refresh) {
    expect(card.refresh.action).toMatchObject({ type: 'Action.Execute', verb: 'armalo.refresh' });
    expect(Array.isArray(card.refresh.userIds)).toBe(true);
  }
  // Teams refuses cards over about 28 KB.
  if (top) expect(JSON.stringify(card).length).toBeLessThan(28_000);
}

// ---------------------------------------------------------------------------------------------

describe('every notice kind renders on both platforms', () => {
  const notices = everyNotice(ORDINARY);

  for (const [name, notice] of Object.entries(notices)) {
    it(`${name}: Slack blocks and a Teams card (snapshots)`, () => {
      const slack = renderSlack(notice);
      const teams = renderTeams(notice, { refreshUserIds: ['29:approver'] });
      expectBlockKit(slack);
      expectCard(teams);
      expect(slack.text.length).toBeGreaterThan(0);
      expect({ slack, teams }).toMatchSnapshot();
    });
  }

  it('the App Home (Slack) snapshot', () => {
    const home = renderSlackHome(notices.waiting!);
    expect(home.type).toBe('home');
    expectBlockKit(home as unknown as { blocks: Block[] }, 100);
    expect(home).toMatchSnapshot();
  });

  it('Slack shows Slack people as mentions, times as date tokens with an ISO fallback, a broadcast as @here', () => {
    const slack = JSON.stringify(renderSlack(notices['incident open']!));
    expect(slack).toContain('<@U0ONCALL1> contained');
    expect(slack).toContain('<!date^1796119200^{date_short_pretty} {time}|2026-12-01T10:00:00.000Z>');
    expect(slack).toContain('`/armalo restore pay-bot &lt;reason&gt;`');
    const loud = renderSlack(notices['break-glass (channel)']!);
    expect(loud.text.startsWith('<!here> ')).toBe(true);
    expect(JSON.stringify(loud.blocks)).toContain('<!here> :rotating_light: *BREAK-GLASS restore*');
    expect(renderSlack(notices['break-glass (direct)']!).text).not.toContain('<!here>');
  });

  it('Teams shows actors by name, times as ISO, emphasis as ** in TextBlocks, commands as words to send', () => {
    const teams = JSON.stringify(renderTeams(notices['incident open']!));
    expect(teams).toContain('slack:U0ONCALL1 contained');
    expect(teams).toContain('2026-12-01T10:00:00.000Z');
    expect(teams).toContain('**CONTAINED**');
    expect(teams).toContain('restore pay-bot \\\\<reason\\\\>');
    expect(teams).not.toContain('<!date');
    expect(JSON.stringify(renderTeams(notices['approval pending']!))).toContain('API token platform');
  });

  it('approval cards: Approve/Deny only while pending; refresh.userIds for approvers; the banner on top', () => {
    const pending = renderTeams(notices['approval pending with a banner']!, { refreshUserIds: ['29:a', '29:b'] }) as any;
    expect(pending.refresh).toEqual({ action: { type: 'Action.Execute', verb: 'armalo.refresh', data: { requestId: approval(ORDINARY).id } }, userIds: ['29:a', '29:b'] });
    expect(pending.actions.map((a: any) => a.verb ?? a.card.actions[0].verb)).toEqual(['armalo.approve', 'armalo.deny']);
    expect(pending.body[0]).toMatchObject({ text: 'Not allowed: card testing suspected', color: 'Attention' });
    const approved = renderTeams(notices['approval approved']!, { refreshUserIds: ['29:a'] }) as any;
    expect(approved.refresh).toBeUndefined();
    expect(approved.actions).toBeUndefined();
    const slack = renderSlack(notices['approval pending']!);
    expect(slack.blocks.find((b) => b.type === 'actions')).toMatchObject({ block_id: `approval:${approval(ORDINARY).id}` });
    expect(renderSlack(notices['approval denied']!).blocks.some((b) => b.type === 'actions')).toBe(false);
  });

  it('waiting on you: Teams gets the App Home content, Approve and Deny per request', () => {
    const card = renderTeams(notices.waiting!) as any;
    const sets = card.body.filter((e: any) => e.type === 'ActionSet');
    expect(sets).toHaveLength(1);
    expect(sets[0].actions[0]).toMatchObject({ type: 'Action.Execute', verb: 'armalo.approve', data: { requestId: approval(ORDINARY).id } });
    expect(sets[0].actions[1].card.actions[0]).toMatchObject({ verb: 'armalo.deny', data: { requestId: approval(ORDINARY).id } });
    const texts = card.body.filter((e: any) => e.type === 'TextBlock').map((e: any) => e.text);
    expect(texts).toEqual(expect.arrayContaining(['Waiting on you', 'Recently decided']));
    expect(card.body.find((e: any) => e.text === 'Recently decided').separator).toBe(true);
  });

  it('cardAttachment wraps a card for a Bot Framework activity', () => {
    const card = renderTeams(notices.confirmation!);
    expect(cardAttachment(card)).toEqual({ contentType: 'application/vnd.microsoft.card.adaptive', content: card });
  });
});

describe('long inputs stay inside each platform’s limits', () => {
  it('a 500-line listing: at most 50 blocks, sections of at most 3,000 characters, the buttons kept', () => {
    const notice = replyNotice(reply(LONG, 500));
    const slack = renderSlack(notice);
    expectBlockKit(slack);
    expect(slack.blocks.at(-1)).toMatchObject({ type: 'actions', block_id: 'more' });
    expect(slack.blocks.some((b) => b.type === 'actions' && String(b.block_id).startsWith('confirm:'))).toBe(true);
    expectCard(renderTeams(notice));
  });

  it('5,000-character names, reasons and justifications in every notice kind', () => {
    for (const [name, notice] of Object.entries(everyNotice(LONG))) {
      const slack = renderSlack(notice);
      expectBlockKit(slack);
      expect(slack.text.length, name).toBeLessThanOrEqual(3_010);
      expectCard(renderTeams(notice));
    }
  });

  it('App Home: 60 waiting requests and 60 decided ones fit in 100 blocks; a message in 50', () => {
    const many = Array.from({ length: 60 }, (_, i) => ({ ...approval(LONG), id: `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111` }));
    const notice = waitingNotice(many, many.map((v) => ({ ...v, status: 'approved' as const })), 'slack:U0ONCALL1');
    expectBlockKit(renderSlackHome(notice) as unknown as { blocks: Block[] }, 100);
    expectBlockKit(renderSlack(notice));
    expectCard(renderTeams(notice));
  });

  it('button labels are cut to 75 characters, a "more" command to 2,000', () => {
    const notice = replyNotice({ tone: 'info', title: 't', lines: [], confirm: { id: 'c', label: 'L'.repeat(200), danger: false, expiresAt: '' }, more: { label: 'M'.repeat(200), command: 'agents all --after '.padEnd(5_000, 'a') } });
    expectBlockKit(renderSlack(notice));
  });
});

describe('hostile user text is inert on both platforms', () => {
  const notices = everyNotice(HOSTILE);
  /** Notices that show no user text at all (ids and numbers only). */
  const NO_USER_TEXT = new Set(['approval reminder', 'approval escalation', 'trust score', 'trust stale', 'waiting (nothing)']);

  it('Slack: no broadcast or mention a user typed survives; the words read as typed', () => {
    for (const [name, notice] of Object.entries(notices)) {
      const payload = renderSlack(notice);
      for (const s of strings(payload)) {
        expect(s, name).not.toContain('<!channel>');
        expect(s, name).not.toContain('<@U1>');
        expect(s.replace(/^<!here> /, ''), name).not.toContain('<!here>');
      }
      if (!NO_USER_TEXT.has(name)) expect(JSON.stringify(payload), name).toContain('&lt;!channel&gt;');
    }
  });

  it('Teams: no link, emphasis or heading a user typed survives; the words read as typed', () => {
    for (const [name, notice] of Object.entries(notices)) {
      const payload = renderTeams(notice);
      for (const s of strings(payload)) {
        expect(s, name).not.toMatch(/(^|[^\\])\[x\]\(http:\/\/e\)/);
        expect(s, name).not.toMatch(/(^|[^\\])\*\*b\*\*/);
        expect(s, name).not.toMatch(/(^|\n)# h/);
      }
      const shown = strings(payload).map((s) => s.replace(/\\([!-/:-@[-`{-~])/g, '$1'));
      if (!NO_USER_TEXT.has(name)) expect(shown.some((s) => s.includes('[x](http://e) **b** # h')), name).toBe(true);
    }
  });

  it('a reply: hostile title and lines', () => {
    const r = reply(HOSTILE);
    const slack = JSON.stringify(strings(renderSlack(replyNotice(r))));
    expect(slack).not.toContain('<!channel>');
    expect(slack).not.toContain('<@U1>');
    const teams = renderTeams(replyNotice(r));
    for (const s of strings(teams)) expect(s).not.toMatch(/(^|[^\\])\*\*b\*\*/);
  });
});

describe('notices carry no markup of ours', () => {
  /** Every piece of text in a notice that is not a code or command span (those are shown literally). */
  function texts(n: Notice): string[] {
    const spans = (t: unknown): string[] =>
      (t as any[]).flatMap((s) => (typeof s === 'string' ? [s] : 'strong' in s ? [s.strong] : 'em' in s ? [s.em] : 'link' in s ? [s.label] : []));
    const out = [...spans(n.title), ...(n.banner ? spans(n.banner) : [])];
    for (const b of n.blocks) {
      if (b.kind === 'lines') out.push(...b.lines.flatMap(spans));
      if (b.kind === 'facts') out.push(...b.facts.flatMap((f) => [f.label, ...spans(f.value)]));
      if (b.kind === 'context') out.push(...spans(b.text));
      if (b.kind === 'heading') out.push(b.text);
    }
    for (const a of [...(n.actions ?? []), ...n.blocks.flatMap((b) => (b.kind === 'actions' ? b.actions : []))]) if ('label' in a) out.push(a.label);
    return out;
  }

  for (const [name, notice] of Object.entries(everyNotice(ORDINARY))) {
    it(name, () => {
      // The fallback is plain words: identifiers in it read as typed (`payments:*`), but nothing of ours marks it up.
      expect(notice.fallback, name).not.toMatch(/<[@!#]|:[a-z0-9_+-]+:(\s|$)|\*\*|\]\(/);
      for (const s of texts(notice)) {
        expect(s, name).not.toMatch(/[*`]/); // mrkdwn/Markdown emphasis and code
        expect(s, name).not.toMatch(/(^|\s)_[^_\s]+_(\s|$)/); // _italic_
        expect(s, name).not.toMatch(/<[@!#]|<https?:/); // Slack control sequences
        expect(s, name).not.toMatch(/:[a-z0-9_+-]+:(\s|$)/); // emoji codes
        expect(s, name).not.toMatch(/\]\(/); // Markdown links
      }
    });
  }
});
