import { describe, expect, it } from 'vitest';
import { plain, type Notice, type Text } from '../../src/notices/model.js';
import { approvalCount, approvalNotice, waitingNotice } from '../../src/notices/approval.notice.js';
import { announcesTrust, trustNotice } from '../../src/notices/trust.notice.js';
import { breakGlassNotice, policyInvalidNotice } from '../../src/notices/admin.notice.js';
import { incidentNotice, incidentStepNotice, STEP_VERB } from '../../src/notices/incident.notice.js';
import { replyNotice } from '../../src/notices/reply.notice.js';
import { packetNotice } from '../../src/notices/packet.notice.js';
import type { Policy } from '../../src/policy/policy.schema.js';
import type { TrustNotice } from '../../src/trust/trust.service.js';
import { AT, approval, incident, ORDINARY, packet, step } from './notices-fixtures.js';

/** All the words of a notice, as plain text. */
function words(n: Notice): string {
  const out: string[] = [plain(n.title), ...(n.banner ? [plain(n.banner)] : [])];
  for (const b of n.blocks) {
    if (b.kind === 'lines') out.push(...b.lines.map(plain));
    if (b.kind === 'facts') out.push(...b.facts.map((f) => `${f.label}: ${plain(f.value)}`));
    if (b.kind === 'context') out.push(plain(b.text));
    if (b.kind === 'heading' || b.kind === 'code') out.push(b.text);
  }
  return out.join('\n');
}

const policy = (scoreMoveOver: number) => ({ trust: { scoreMoveOver } }) as unknown as Policy;
const score = (previousScore: number | null, s: number, previousTier: string | null, tier: string): TrustNotice =>
  ({ agentId: 'pay-bot', key: 'k', kind: 'score', score: s, tier, previousScore, previousTier }) as TrustNotice;

describe('notice builders', () => {
  it('approvalCount counts approvals only, and the card shows it of the quorum', () => {
    const view = approval(ORDINARY);
    view.decisions.push({ by: 'slack:U2', decision: 'deny', reason: 'no', at: AT.toISOString(), via: 'slack' }, { by: 'teams:x', decision: 'approve', reason: null, at: AT.toISOString(), via: 'teams' });
    expect(approvalCount(view)).toBe(2);
    expect(words(approvalNotice(view, 'Payments Bot'))).toContain('Approvals: 2 of 2 · escalated');
  });

  it('approval cards offer Approve and Deny only while pending, and say an expiry is not a denial', () => {
    expect(approvalNotice(approval(ORDINARY), 'P').actions?.map((a) => a.kind)).toEqual(['approve', 'deny']);
    const expired = approvalNotice(approval(ORDINARY, 'expired'), 'P');
    expect(expired.actions).toEqual([]);
    expect(plain(expired.title)).toContain('EXPIRED (no decision in time; this is not a denial)');
    // Every decision with who, what, why, when and where (Teams showed the platform; Slack did not).
    expect(words(expired)).toContain('slack:U0ONCALL1 approved: card testing suspected (2026-12-01T10:00:00.000Z, via slack)');
    expect(words(expired)).toContain('Route tightened by stale-evidence: newest evidence 40 days old');
  });

  it('announcesTrust: every tier change, a score move over scoreMoveOver, never a small move', () => {
    expect(announcesTrust(score(800, 790, 'gold', 'gold'), policy(50))).toBe(false);
    expect(announcesTrust(score(800, 750, 'gold', 'gold'), policy(50))).toBe(false);
    expect(announcesTrust(score(800, 749, 'gold', 'gold'), policy(50))).toBe(true);
    expect(announcesTrust(score(null, 600, null, 'silver'), policy(50))).toBe(true);
    expect(announcesTrust(score(null, 600, 'silver', 'silver'), policy(50))).toBe(false);
    expect(announcesTrust({ agentId: 'a', key: 'k', kind: 'stale', newestEvidence: AT.toISOString(), ageDays: 40 }, policy(50))).toBe(true);
    expect(plain(trustNotice(score(null, 600, null, 'silver')).title)).toBe('pay-bot score none → 600 · tier none → silver');
  });

  it('policyInvalidNotice lists at most LIMITS.problems problems, then how many more', () => {
    const n = policyInvalidNotice({ contentHash: 'c', file: 'p.yaml', problems: Array.from({ length: 13 }, (_, i) => `problem ${i}`), runningHash: 'f'.repeat(64), at: AT.toISOString() });
    const lines = (n.blocks[0] as { lines: Text[] }).lines.map(plain);
    expect(lines).toHaveLength(12);
    expect(lines.at(-1)).toBe('• …and 3 more (see the log)');
    expect(plain(n.title)).toContain('(ffffffffffff) stays in force');
  });

  it('breakGlassNotice: a broadcast in channels; in a DM, why the person is told', () => {
    const input = { agentId: 'pay-bot', actionId: 'a', actor: 'slack:U0CISO', reason: 'r', incidentId: null, at: AT.toISOString() };
    const channel = breakGlassNotice(input, { direct: false });
    const direct = breakGlassNotice(input, { direct: true });
    expect(channel.broadcast).toBe(true);
    expect(direct.broadcast).toBeUndefined();
    expect(words(direct)).toContain('You hold a restore role');
    expect(words(channel)).not.toContain('You hold a restore role');
  });

  it('incident notices: the verb map, opener, held grants, ttl and how to restore', () => {
    expect(STEP_VERB).toEqual({ narrow: 'narrowed', contain: 'contained', revoke: 'revoked', restore: 'restored' });
    const open = words(incidentNotice(incident(ORDINARY)));
    expect(open).toContain('Incident: Payments Bot (pay-bot) is CONTAINED');
    expect(open).toContain('Not usable now: payments:transfer suspended, crm:write suspended');
    expect(open).toContain('Lifts itself: 2026-12-01T12:00:00.000Z (narrow)');
    expect(open).toContain('To restore: restore pay-bot <reason>');
    const closed = words(incidentNotice(incident(ORDINARY, 'closed')));
    expect(closed).toContain('Closed: 2026-12-01T12:00:00.000Z by slack:U0CISO');
    expect(plain(incidentStepNotice(step(ORDINARY, { kind: 'restore', breakGlass: true })).title)).toMatch(/^BREAK-GLASS \(no second person\) slack:U0ONCALL1 restored/);
  });

  it('waitingNotice: waiting requests with buttons, then what the person decided, without request ids there', () => {
    const n = waitingNotice([approval(ORDINARY)], [approval(ORDINARY, 'approved')], 'slack:U0ONCALL1');
    expect(n.blocks.filter((b) => b.kind === 'actions')).toHaveLength(1);
    const decided = words({ ...n, blocks: n.blocks.slice(n.blocks.findIndex((b) => b.kind === 'divider')) });
    expect(decided).toContain('you approved at 2026-12-01T10:00:00.000Z · now approved');
    expect(decided).not.toContain(approval(ORDINARY).id);
  });

  it('replyNotice: a string title becomes strong, usage a code block, confirm and more become actions; 500 lines are capped', () => {
    const n = replyNotice({ tone: 'error', title: 'Nope', lines: Array.from({ length: 500 }, (_, i) => [`line ${i}`]), usage: '/armalo help', more: { label: 'More', command: 'agents all' } });
    expect(n.title).toEqual([{ strong: 'Nope' }]);
    expect(n.tone).toBe('danger');
    const lines = (n.blocks[0] as { lines: Text[] }).lines;
    expect(lines).toHaveLength(121);
    expect(plain(lines.at(-1)!)).toBe('…and 380 more lines');
    expect(n.blocks[1]).toEqual({ kind: 'code', label: 'Usage', text: '/armalo help' });
    expect(n.actions).toEqual([{ kind: 'more', label: 'More', command: 'agents all' }]);
  });

  it('packetNotice: the three questions, the facts, the hash and how to verify; a link only when given', () => {
    const n = packetNotice(packet(ORDINARY), { packetId: 'pkt-1', contentHash: 'e'.repeat(64) });
    const w = words(n);
    for (const part of ['Promised: 1 pact: no-exfil', 'Score: 812 (gold) · trend down (-12 in 30 days)', 'Evidence: newest item ageing · 2 of 3 stale evidence items', 'Audit: chain verified at entry 42', 'sha256 eeeeeeeeeeeeeeee…', 'verify with packet verify pkt-1']) {
      expect(w).toContain(part);
    }
    expect(n.actions).toEqual([]);
    expect(packetNotice(packet(ORDINARY), { packetId: 'pkt-1', downloadUrl: 'https://x.example/p' }).actions).toEqual([{ kind: 'open-url', label: 'Download the full packet (PDF, link valid 24 h)', url: 'https://x.example/p' }]);
  });
});
