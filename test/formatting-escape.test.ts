import { describe, expect, it } from 'vitest';
import { escapeMrkdwn } from '../src/slack/escape.js';
import { escapeMarkdown } from '../src/teams/escape.js';
import { renderSlack, renderSlackHome, slackTitle } from '../src/slack/render.js';
import { renderTeams, teamsLine } from '../src/teams/render.js';
import { incidentNotice, incidentStepNotice } from '../src/notices/incident.notice.js';
import { approvalNotice, waitingNotice } from '../src/notices/approval.notice.js';
import { replyNotice } from '../src/notices/reply.notice.js';
import type { ChatReply } from '../src/chat/reply.js';

import type { IncidentStep, IncidentView } from '../src/incidents/incident-view.js';
import type { ApprovalView } from '../src/approvals/approvals.service.js';

// Each notice as the platforms render it: built once (src/notices), rendered per platform.
const incidentRoot = (view: IncidentView) => renderSlack(incidentNotice(view));
const stepLine = (s: IncidentStep) => slackTitle(incidentStepNotice(s));
const approvalCard = (view: ApprovalView, name: string) => renderSlack(approvalNotice(view, name));
const homeView = (waiting: ApprovalView[], decided: ApprovalView[], actor: string) => renderSlackHome(waitingNotice(waiting, decided, actor));
const renderReply = (reply: ChatReply) => renderSlack(replyNotice(reply));
const incidentCard = (view: IncidentView) => renderTeams(incidentNotice(view));
const teamsStepLine = (s: IncidentStep) => teamsLine(incidentStepNotice(s));
const teamsApprovalCard = (view: ApprovalView, name: string, opts: { notice: string }) => renderTeams(approvalNotice(view, name, { banner: opts.notice }));
const replyCard = (reply: ChatReply) => renderTeams(replyNotice(reply));

/** What a hostile user can type as a name, owner, reason or justification. */
const SLACK_HOSTILE = 'Evil <!channel> <!here> <@U0BOSS> <#C0GENERAL> <!subteam^S0ADMINS> <https://evil.example|click here> &lt;!channel&gt;';
const TEAMS_HOSTILE = 'Evil [click here](https://evil.example) **bold** _it_ <b>x</b> ![img](https://evil.example/p.png)';

/** No Slack control sequence a user could have typed survives. */
function expectNoSlackControl(payload: unknown) {
  const json = JSON.stringify(payload);
  for (const bad of ['<!channel>', '<!here>', '<@U0BOSS>', '<#C0GENERAL>', '<!subteam^', '<https://evil']) expect(json).not.toContain(bad);
}

/** No Markdown link, emphasis or HTML a user could have typed survives. */
function expectNoMarkdown(payload: unknown) {
  const json = JSON.stringify(payload);
  for (const bad of ['](https://evil', '[click here]', '**bold**', '<b>', '![img]']) expect(json).not.toContain(bad);
}

describe('escapeMrkdwn (Slack)', () => {
  it("escapes &, < and > as Slack documents, so no mention, channel link, broadcast or link survives", () => {
    expect(escapeMrkdwn('<!channel>')).toBe('&lt;!channel&gt;');
    expect(escapeMrkdwn('<https://evil.example|click>')).toBe('&lt;https://evil.example|click&gt;');
    expect(escapeMrkdwn('<@U123> <#C123> <!subteam^S1|@admins>')).toBe('&lt;@U123&gt; &lt;#C123&gt; &lt;!subteam^S1|@admins&gt;');
    // An entity typed by a user reads as typed, not as the character it names.
    expect(escapeMrkdwn('&lt;!here&gt; & co')).toBe('&amp;lt;!here&amp;gt; &amp; co');
    expectNoSlackControl(escapeMrkdwn(SLACK_HOSTILE));
  });

  it('leaves ordinary names, ids and formatting characters as typed', () => {
    for (const s of ['Payments Bot', 'pay_bot-1.v2', 'Fortress Bank', 'ana@example.com', '*urgent* _really_ ~no~ `x`', 'ünïcode ✓']) expect(escapeMrkdwn(s)).toBe(s);
  });
});

describe('escapeMarkdown (Teams)', () => {
  it('backslash-escapes links, emphasis, code, HTML and strikethrough anywhere', () => {
    expect(escapeMarkdown('[click](https://evil.example)')).toBe('\\[click\\]\\(https://evil.example\\)');
    expect(escapeMarkdown('**bold** _it_ ~~s~~ `c`')).toBe('\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\`c\\`');
    expect(escapeMarkdown('<a href="https://evil.example">x</a>')).toBe('\\<a href="https://evil.example"\\>x\\</a\\>');
    expect(escapeMarkdown('a\\b')).toBe('a\\\\b');
    expectNoMarkdown(escapeMarkdown(TEAMS_HOSTILE));
  });

  it('escapes list, heading, quote and table starts at the start of every line', () => {
    expect(escapeMarkdown('- item')).toBe('\\- item');
    expect(escapeMarkdown('+ item')).toBe('\\+ item');
    expect(escapeMarkdown('# Heading')).toBe('\\# Heading');
    expect(escapeMarkdown('> quote')).toBe('\\> quote');
    expect(escapeMarkdown('1. first')).toBe('1\\. first');
    expect(escapeMarkdown('12) twelfth')).toBe('12\\) twelfth');
    expect(escapeMarkdown('ok\n  - fake line\n2. fake\n=== ')).toBe('ok\n  \\- fake line\n2\\. fake\n\\=== ');
  });

  it('leaves ordinary names and ids readable (dashes, dots and digits mid-line stay)', () => {
    for (const s of ['Payments Bot', 'pay-bot-1.v2', 'Fortress Bank', 'ana@example.com', 'version 1.2 - final', 'a+b#c']) expect(escapeMarkdown(s)).toBe(s);
    expect(escapeMarkdown('pay_bot')).toBe('pay\\_bot');
  });
});

const at = new Date('2026-12-01T10:00:00Z');
const step = (over: Partial<IncidentView['steps'][number]> = {}): IncidentView['steps'][number] => ({
  actionId: 'act-1',
  kind: 'contain',
  actor: 'api:ci <!channel> [x](https://evil.example)',
  reason: `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`,
  at,
  scopes: [],
  expiresAt: null,
  liftedAt: null,
  liftedBy: null,
  grants: [],
  ...over,
});
const incident = (status: 'open' | 'closed' = 'open'): IncidentView => ({
  id: 'inc-1',
  status,
  openedAt: at,
  closedAt: status === 'closed' ? at : null,
  closedBy: status === 'closed' ? 'teams:<!channel> [x](https://evil.example)' : null,
  openedByActionId: 'act-1',
  agent: {
    id: 'pay-bot',
    name: `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`,
    owner: `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`,
    riskTier: 'high',
    status: status === 'open' ? 'contained' : 'active',
    version: 1n,
    grants: [],
    activeActions: [],
    updatedAt: at,
  },
  steps: [step()],
  heldGrants: [],
});
const approval = (status: ApprovalView['status'] = 'pending'): ApprovalView => ({
  id: 'req-1',
  agentId: 'pay-bot',
  action: 'payments:transfer',
  context: { amount: 500, recipient: `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`, [`k<!channel>[x](https://evil.example)`]: 'v' },
  justification: `${SLACK_HOSTILE}\n- fake line\n*Approvals:* 2 of 2 ${TEAMS_HOSTILE}`,
  requestedBy: 'api:<!channel>[x](https://evil.example)',
  status,
  route: { ruleId: 'big', matched: ['big'], quorum: 2, requirements: [], escalated: false, channel: null, why: {}, trust: { score: null, tier: null, evidenceAgeDays: null } },
  decisions: [{ by: 'teams:<!here>[x](https://evil.example)', decision: 'deny', reason: `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`, at: at.toISOString(), via: 'teams' }],
  createdAt: at.toISOString(),
  expiresAt: at.toISOString(),
  decidedAt: null,
  finalReason: status === 'pending' ? null : `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`,
  grantUntil: null,
});

describe('every renderer shares the helper', () => {
  it('Slack incident root, step line and context: hostile name, owner, actor and reason are inert; our mentions and dates still work', () => {
    for (const status of ['open', 'closed'] as const) {
      const root = incidentRoot(incident(status));
      expectNoSlackControl(root);
      expect(JSON.stringify(root)).toContain('Evil &lt;!channel&gt;');
      expect(JSON.stringify(root)).toContain('<!date^'); // our own date token
    }
    expectNoSlackControl(stepLine(step()));
    expect(stepLine(step({ actor: 'slack:U0ONCALL1' }))).toMatch(/^<@U0ONCALL1> contained/); // the mention we create
  });

  it('Slack approval card (DM and channel copies), App Home and replies', () => {
    for (const status of ['pending', 'denied'] as const) {
      const card = approvalCard(approval(status), `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`);
      expectNoSlackControl(card);
      expect(JSON.stringify(card)).toContain('*Why:* Evil &lt;!channel&gt;');
    }
    expectNoSlackControl(homeView([approval()], [approval('denied')], 'slack:U1'));
    const reply = renderReply({ tone: 'info', title: `${SLACK_HOSTILE} (pay-bot) is contained`, lines: [`Owner: ${SLACK_HOSTILE}`], usage: '/armalo status <agent>' });
    expectNoSlackControl(reply);
    expect(reply.text).toContain('Evil &lt;!channel&gt;');
  });

  it('Teams incident card and thread line: no link, emphasis or list from user text; our structure stays', () => {
    for (const status of ['open', 'closed'] as const) {
      const card = incidentCard(incident(status));
      expectNoMarkdown(card);
      expect(JSON.stringify(card)).toContain(status === 'open' ? 'Incident: Evil' : 'Resolved: Evil');
    }
    expectNoMarkdown(teamsStepLine(step()));
  });

  it('Teams approval card (TextBlocks and FactSet values) and reply cards', () => {
    for (const status of ['pending', 'denied'] as const) {
      const card = teamsApprovalCard(approval(status), `${SLACK_HOSTILE} ${TEAMS_HOSTILE}`, { notice: `Not allowed: ${TEAMS_HOSTILE}` });
      expectNoMarkdown(card);
      const facts = (card.body as any[]).find((b) => b.type === 'FactSet').facts as { title: string; value: string }[];
      expect(facts.find((f) => f.title === 'Why')!.value).toContain('\n\\- fake line\n\\*Approvals:\\* 2 of 2');
    }
    const reply = replyCard({ tone: 'info', title: `${TEAMS_HOSTILE} (pay-bot) is contained`, lines: [`Owner: ${TEAMS_HOSTILE}`, '1. not a list'], usage: '/armalo status <agent>' });
    expectNoMarkdown(reply);
    expect(JSON.stringify(reply)).toContain('1\\\\. not a list');
    // The usage text is ours and stays as written.
    expect(JSON.stringify(reply)).toContain('status <agent>');
  });
});
