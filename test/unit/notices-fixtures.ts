/** Domain data for the notice builder and renderer tests: ordinary by default, any text overridable. */
import type { IncidentStep, IncidentView } from '../../src/incidents/incident-view.js';
import type { ApprovalView } from '../../src/approvals/approvals.service.js';
import type { TrustPacket } from '../../src/packets/packet.js';
import type { BreakGlassNotice, DecommissionNotice } from '../../src/agents/agents.service.js';
import type { PolicyInvalidNotice } from '../../src/policy/policy-watcher.js';
import type { ChatReply } from '../../src/chat/reply.js';
import type { Notice } from '../../src/notices/model.js';
import { incidentExpiryNotice, incidentNotice, incidentStepNotice } from '../../src/notices/incident.notice.js';
import { approvalNotice, approvalReminderNotice, waitingNotice } from '../../src/notices/approval.notice.js';
import { trustNotice } from '../../src/notices/trust.notice.js';
import { packetNotice } from '../../src/notices/packet.notice.js';
import { confirmationNotice } from '../../src/notices/confirmation.notice.js';
import { breakGlassNotice, decommissionNotice, policyInvalidNotice } from '../../src/notices/admin.notice.js';
import { replyNotice } from '../../src/notices/reply.notice.js';

export const AT = new Date('2026-12-01T10:00:00Z');
const LATER = new Date('2026-12-01T12:00:00Z');

/** The user-supplied texts of every fixture: a name, an owner, a reason, a justification… */
export interface UserTexts {
  name: string;
  owner: string;
  reason: string;
  justification: string;
  actor: string;
  audience: string;
  pact: string;
  problem: string;
}

export const ORDINARY: UserTexts = {
  name: 'Payments Bot',
  owner: 'ana@example.com',
  reason: 'card testing suspected',
  justification: 'pay the reinsurer',
  actor: 'slack:U0ONCALL1',
  audience: 'Fortress Bank',
  pact: 'no-exfil',
  problem: 'roles.ciso.members: expected an array',
};

export function step(t: UserTexts, over: Partial<IncidentStep> = {}): IncidentStep {
  return { actionId: 'act-1', kind: 'contain', actor: t.actor, reason: t.reason, at: AT, scopes: [], expiresAt: null, liftedAt: null, liftedBy: null, grants: [], ...over };
}

export function incident(t: UserTexts, status: 'open' | 'closed' = 'open'): IncidentView {
  return {
    id: 'inc-1',
    status,
    openedAt: AT,
    closedAt: status === 'closed' ? LATER : null,
    closedBy: status === 'closed' ? 'slack:U0CISO' : null,
    openedByActionId: 'act-1',
    agent: {
      id: 'pay-bot',
      name: t.name,
      owner: t.owner,
      riskTier: 'high',
      status: status === 'open' ? 'contained' : 'active',
      version: 1n,
      grants: [],
      activeActions: [],
      updatedAt: AT,
    },
    steps: [
      step(t),
      step(t, { actionId: 'act-2', kind: 'narrow', actor: 'teams:00000000-0000-0000-0000-000000000002', scopes: ['payments:*', 'crm:write'], expiresAt: LATER, grants: ['payments:transfer'] }),
    ],
    heldGrants: status === 'open' ? [{ scope: 'payments:transfer', state: 'suspended' }, { scope: 'crm:write', state: 'suspended' }] : [],
  };
}

export function approval(t: UserTexts, status: ApprovalView['status'] = 'pending'): ApprovalView {
  return {
    id: '11111111-1111-4111-8111-111111111111',
    agentId: 'pay-bot',
    action: 'payments:transfer',
    context: { amount: 50_000, recipient: t.audience },
    justification: t.justification,
    requestedBy: 'api:platform',
    status,
    route: {
      ruleId: 'big-payments',
      matched: ['big-payments', 'stale-evidence'],
      quorum: 2,
      requirements: [],
      escalated: status === 'pending',
      channel: null,
      why: { 'stale-evidence': ['newest evidence 40 days old'] },
      trust: { score: 640, tier: 'silver', evidenceAgeDays: 40 },
    },
    decisions: [{ by: t.actor, decision: 'approve', reason: t.reason, at: AT.toISOString(), via: 'slack' }],
    createdAt: AT.toISOString(),
    expiresAt: LATER.toISOString(),
    decidedAt: status === 'pending' ? null : LATER.toISOString(),
    finalReason: status === 'pending' ? null : t.reason,
    grantUntil: null,
  };
}

export function packet(t: UserTexts): TrustPacket {
  const asOf = AT.toISOString();
  return {
    id: 'pkt-1',
    version: 2,
    generatedAt: asOf,
    requestedBy: 'slack:U0PROC',
    audience: t.audience,
    workflow: 'payouts',
    scope: { workflow: 'payouts', actions: ['payments:transfer'], missing: false, grants: { inScope: 1, total: 3 }, routingRules: { inScope: 1, total: 2 }, consequenceRules: { inScope: 0, total: 1 } },
    agent: { id: 'pay-bot', name: t.name, owner: t.owner, riskTier: 'high', status: 'active' },
    summary: { asOf, score: 812, tier: 'gold', change30d: -12, trend: 'down', evidence: 'ageing', verdict: `${t.name} keeps its pacts; evidence is ageing.`, verdictLevel: 'caution', facts: ['evidence is ageing'] },
    answers: { promised: `1 pact: ${t.pact}`, proofCurrent: 'ageing: newest evidence 20 days old', whenProofWeakens: 'approvals add the CISO' },
    pacts: {
      asOf,
      items: [{ id: t.pact, title: t.pact, severity: 'critical', clauses: [], verification: 'eval', lastVerified: asOf, lastResult: 'passed', ageDays: 20, freshness: 'fresh', evaluations: 3, passRate: 1, lastFailure: null }],
    },
    evidence: { asOf, total: 3, staleCount: 2, staleAfterDays: 30, oldest: asOf, newest: asOf, byDimension: [], byPact: [], items: [], omitted: 0 },
    scoreHistory: { asOf, days: 90, from: asOf, points: [] },
    runtimeControls: { asOf, status: 'active', grants: [], needsApproval: [], tightens: [], activeActions: [] },
    consequences: { asOf, rules: [] },
    incidents: { asOf, openCount: 0, items: [] },
    approvals: { asOf, days: 90, counts: { approved: 4, denied: 1, expired: 0, cancelled: 0, pending: 1 }, medianMinutesToDecision: 12 },
    auditIntegrity: { asOf, headSeq: '42', headHash: 'ab'.repeat(32), verified: true, entries: 42, firstBroken: null },
  };
}

export function reply(t: UserTexts, lines = 3): ChatReply {
  return {
    tone: 'warning',
    title: `Revoke ${t.name}? This is the kill switch.`,
    lines: Array.from({ length: lines }, (_, i) => [{ code: `bot-${String(i).padStart(3, '0')}` }, ' ', t.name, ' · ', { strong: 'active' }, ' · owner ', t.owner]),
    usage: '/armalo revoke <agent> [reason…]',
    confirm: { id: '22222222-2222-4222-8222-222222222222', label: `Revoke ${t.name}`, danger: true, expiresAt: LATER.toISOString() },
    more: { label: 'More', command: 'agents all --after abc' },
  };
}

/** One notice of every kind, built from the given user texts. */
export function everyNotice(t: UserTexts): Record<string, Notice> {
  const breakGlass: BreakGlassNotice = { agentId: 'pay-bot', actionId: 'act-9', actor: t.actor, reason: t.reason, incidentId: 'abcdef01-0000-0000-0000-000000000000', at: AT.toISOString() };
  const decommission: DecommissionNotice = { agentId: 'pay-bot', actor: t.actor, reason: t.reason, at: AT.toISOString() };
  const invalid: PolicyInvalidNotice = { contentHash: 'c'.repeat(64), file: 'policy.yaml', problems: Array.from({ length: 12 }, (_, i) => `${i}: ${t.problem}`), runningHash: 'd'.repeat(64), at: AT.toISOString() };
  return {
    'incident open': incidentNotice(incident(t)),
    'incident closed': incidentNotice(incident(t, 'closed')),
    'incident step': incidentStepNotice(incident(t).steps[1]!),
    'incident step (break-glass)': incidentStepNotice(step(t, { kind: 'restore', breakGlass: true })),
    'incident expiry': incidentExpiryNotice(step(t, { expiresAt: AT, liftedAt: LATER })),
    'approval pending': approvalNotice(approval(t), t.name),
    'approval pending with a banner': approvalNotice(approval(t), t.name, { banner: `Not allowed: ${t.reason}` }),
    'approval approved': approvalNotice(approval(t, 'approved'), t.name),
    'approval denied': approvalNotice(approval(t, 'denied'), t.name),
    'approval expired': approvalNotice(approval(t, 'expired'), t.name),
    'approval reminder': approvalReminderNotice(approval(t)),
    'approval escalation': approvalReminderNotice(approval(t), { escalated: true }),
    waiting: waitingNotice([approval(t)], [approval(t, 'approved')], t.actor),
    'waiting (nothing)': waitingNotice([], [], t.actor),
    'trust score': trustNotice({ agentId: 'pay-bot', key: 'k1', kind: 'score', score: 590, tier: 'silver', previousScore: 812, previousTier: 'gold' }),
    'trust violation': trustNotice({ agentId: 'pay-bot', key: 'k2', kind: 'violation', pactId: t.pact, severity: 'critical', description: t.reason, evidenceUrl: 'https://evidence.example/run/1' }),
    'trust stale': trustNotice({ agentId: 'pay-bot', key: 'k3', kind: 'stale', newestEvidence: AT.toISOString(), ageDays: 31 }),
    'packet (attached)': packetNotice(packet(t), { packetId: 'pkt-1', contentHash: 'e'.repeat(64) }),
    'packet (link)': packetNotice(packet(t), { packetId: 'pkt-1', contentHash: 'e'.repeat(64), downloadUrl: 'https://armalo.example/packets/pkt-1.pdf?sig=abc' }),
    'packet (api)': packetNotice(packet(t), { packetId: 'pkt-1', pdf: 'api' }),
    confirmation: confirmationNotice({ id: '33333333-3333-4333-8333-333333333333', agentId: 'pay-bot', requestedBy: t.actor, reason: t.reason, requestedPlatform: 'slack', expiresAt: LATER }),
    'break-glass (channel)': breakGlassNotice(breakGlass, { direct: false }),
    'break-glass (direct)': breakGlassNotice(breakGlass, { direct: true }),
    decommission: decommissionNotice(decommission),
    'policy invalid': policyInvalidNotice(invalid),
    reply: replyNotice(reply(t)),
    'reply (error with usage)': replyNotice({ tone: 'error', title: `Unknown agent ${t.name}.`, lines: [], usage: '/armalo status <agent>' }),
  };
}
