import type { ApprovalView } from '../approvals/approvals.service.js';
import { clip, LIMITS, plain, type Icon, type Notice, type NoticeBlock, type Span, type Text, type Tone } from './model.js';
import { plural } from './spans.js';

/** How many people approved: computed here only. */
export function approvalCount(view: ApprovalView): number {
  return view.decisions.filter((d) => d.decision === 'approve').length;
}

const FINAL: Record<Exclude<ApprovalView['status'], 'pending'>, { word: string; note?: string; icon: Icon; tone: Tone }> = {
  approved: { word: 'APPROVED', icon: 'approved', tone: 'success' },
  denied: { word: 'DENIED', icon: 'denied', tone: 'danger' },
  expired: { word: 'EXPIRED', note: ' (no decision in time; this is not a denial)', icon: 'expired', tone: 'warning' },
  cancelled: { word: 'CANCELLED', icon: 'cancelled', tone: 'info' },
};

const valueText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));

function contextValue(context: Record<string, unknown>): Text {
  const entries = Object.entries(context);
  if (!entries.length) return ['none'];
  const text: Text = [];
  let used = 0;
  for (const [i, [k, v]] of entries.entries()) {
    const shown = clip(valueText(v), 200);
    if (used + k.length + shown.length > LIMITS.line) {
      text.push(`, …and ${entries.length - i} more`);
      break;
    }
    used += k.length + shown.length;
    text.push(...(i ? [', '] : []), `${clip(k, 100)}: `, { code: shown });
  }
  return text;
}

function trustValue(view: ApprovalView): Text {
  const t = view.route.trust;
  const score = t.score === null ? 'no score yet' : `score ${t.score} (${t.tier})`;
  const evidence = t.evidenceAgeDays === null ? 'no evaluation evidence' : `newest evidence ${plural(t.evidenceAgeDays, 'day')} old`;
  return [`${score} · ${evidence}`];
}

function decisionLine(d: ApprovalView['decisions'][number]): Text {
  return [
    { actor: d.by },
    d.decision === 'approve' ? ' approved' : ' denied',
    ...(d.reason ? [': ', clip(d.reason, LIMITS.reason)] : []),
    ' (',
    { time: d.at },
    ', via ',
    d.via,
    ')',
  ];
}

/**
 * The approval card: the same for every copy (DMs, the channel, Teams chats), updated after every
 * change. Approve and Deny only while the request is pending. `banner` is a refusal shown on top of
 * the copy the person who clicked gets back (Teams).
 */
export function approvalNotice(view: ApprovalView, agentName: string, opts: { banner?: string } = {}): Notice {
  const pending = view.status === 'pending';
  const name = clip(agentName, 100);
  const final = view.status === 'pending' ? undefined : FINAL[view.status];
  const title: Text = final
    ? [{ strong: final.word }, ...(final.note ? [final.note] : []), ': ', name, ' (', { code: view.agentId }, ') ', { code: view.action }]
    : [{ strong: 'Approval needed:' }, ' ', name, ' (', { code: view.agentId }, ') wants to ', { code: view.action }];
  const also = view.route.matched.filter((m) => m !== view.route.ruleId);
  const facts: { label: string; value: Text }[] = [
    { label: 'Context', value: contextValue(view.context) },
    { label: 'Why', value: [clip(view.justification, LIMITS.reason)] },
    {
      label: 'Requested by',
      value: [{ actor: view.requestedBy }, ' · rule ', { code: view.route.ruleId }, ...(also.length ? [' (also matched: ', ...also.flatMap((m, i): Span[] => [...(i ? [', '] : []), { code: m }]), ')'] : [])],
    },
    { label: 'Approvals', value: [`${approvalCount(view)} of ${view.route.quorum}${view.route.escalated ? ' · escalated' : ''}`] },
    { label: 'Trust', value: trustValue(view) },
  ];
  const lines: Text[] = [];
  for (const ruleId of also) lines.push([{ strong: 'Route tightened by' }, ' ', { code: ruleId }, ': ', clip((view.route.why[ruleId] ?? []).join(', '), LIMITS.line)]);
  for (const d of view.decisions) lines.push(decisionLine(d));
  if (!pending && view.finalReason) lines.push([{ em: clip(view.finalReason, LIMITS.reason) }]);
  const blocks: NoticeBlock[] = [{ kind: 'facts', facts }];
  if (lines.length) blocks.push({ kind: 'lines', lines: lines.slice(0, LIMITS.lines) });
  blocks.push({ kind: 'context', text: pending ? ['Expires ', { time: view.expiresAt }, ` · request ${view.id}`] : [`Request ${view.id}`] });
  return {
    kind: 'approval',
    tone: final?.tone ?? 'warning',
    icon: final?.icon ?? 'approval',
    ...(opts.banner ? { banner: [clip(opts.banner, LIMITS.line)] } : {}),
    title,
    fallback: pending ? `Approval needed: ${view.agentId} wants to ${view.action}` : `${view.status}: ${view.agentId} ${view.action}`,
    blocks,
    actions: pending ? [{ kind: 'approve', requestId: view.id }, { kind: 'deny', requestId: view.id }] : [],
  };
}

/** A reminder (or an escalation) in the thread of a card that still waits on someone. */
export function approvalReminderNotice(view: ApprovalView, opts: { escalated?: boolean } = {}): Notice {
  const what: Text = [{ code: view.agentId }, ' → ', { code: view.action }, ` (${approvalCount(view)} of ${view.route.quorum} approvals)`];
  const title: Text = opts.escalated
    ? [{ strong: 'Escalated:' }, ' this request waited too long and now waits on you too: ', ...what, '. It expires ', { time: view.expiresAt }, '.']
    : [{ strong: 'Reminder:' }, ' this request is still waiting on you: ', ...what, '. It expires ', { time: view.expiresAt }, '.'];
  return { kind: 'approval-reminder', tone: 'warning', icon: 'reminder', title, fallback: plain(title), blocks: [] };
}

function requestLine(v: ApprovalView): Text {
  const amount = typeof v.context.amount === 'number' ? ` (amount ${v.context.amount})` : '';
  return [{ code: v.agentId }, ' → ', { code: v.action }, `${amount}: `, clip(v.justification, 200)];
}

/**
 * What waits on a person (with Approve and Deny per request) and what they decided lately: Slack's
 * App Home, and the answer to `approvals` on every platform.
 */
export function waitingNotice(waiting: ApprovalView[], decided: ApprovalView[], actor: string): Notice {
  const blocks: NoticeBlock[] = [{ kind: 'heading', text: 'Waiting on you' }];
  if (waiting.length === 0) blocks.push({ kind: 'lines', lines: [[{ em: 'Nothing waits on you.' }]] });
  for (const v of waiting) {
    blocks.push({ kind: 'lines', lines: [requestLine(v), [`${approvalCount(v)} of ${v.route.quorum} approvals · expires `, { time: v.expiresAt }, ` · request ${v.id}`]] });
    blocks.push({ kind: 'actions', actions: [{ kind: 'approve', requestId: v.id }, { kind: 'deny', requestId: v.id }] });
  }
  blocks.push({ kind: 'divider' }, { kind: 'heading', text: 'Recently decided' });
  if (decided.length === 0) blocks.push({ kind: 'lines', lines: [[{ em: 'Nothing yet.' }]] });
  for (const v of decided) {
    const mine = v.decisions.find((d) => d.by === actor);
    blocks.push({
      kind: 'lines',
      lines: [requestLine(v), [`you ${mine?.decision === 'deny' ? 'denied' : 'approved'}`, ...(mine?.at ? [' at ', { time: mine.at }] : []), ' · now ', { strong: v.status }]],
    });
  }
  const title = waiting.length ? `${plural(waiting.length, 'request')} wait${waiting.length === 1 ? 's' : ''} on you` : 'Nothing waits on you';
  return { kind: 'waiting', tone: 'info', icon: 'approval', title: [{ strong: title }], fallback: title, blocks };
}
