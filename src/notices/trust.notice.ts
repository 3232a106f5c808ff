import type { Policy } from '../policy/policy.schema.js';
import type { TrustNotice } from '../trust/trust.service.js';
import { clip, LIMITS, plain, type Notice, type Text } from './model.js';

/**
 * Whether a trust change is worth a notice: every tier change, a score move over the policy's
 * `trust.scoreMoveOver`, every pact violation and every stale-evidence notice. The one place the rule lives.
 */
export function announcesTrust(n: TrustNotice, policy: Policy): boolean {
  if (n.kind !== 'score') return true;
  if (n.tier !== n.previousTier) return true;
  const moved = n.previousScore === null ? 0 : Math.abs(n.score - n.previousScore);
  return moved > policy.trust.scoreMoveOver;
}

/** A tier change, a large score move, a pact violation or stale evidence, for the scores channels. */
export function trustNotice(n: TrustNotice): Notice {
  let title: Text;
  let notice: Omit<Notice, 'title' | 'fallback'>;
  if (n.kind === 'score') {
    const up = n.previousScore !== null && n.score > n.previousScore;
    const tier = n.tier !== n.previousTier ? `tier ${n.previousTier ?? 'none'} → ${n.tier}` : `tier ${n.tier}`;
    title = [{ code: n.agentId }, ` score ${n.previousScore ?? 'none'} → `, { strong: String(n.score) }, ` · ${tier}`];
    notice = { kind: 'trust', tone: up ? 'success' : 'warning', icon: up ? 'score-up' : 'score-down', blocks: [] };
  } else if (n.kind === 'stale') {
    title = [{ code: n.agentId }, ` evidence is stale: the newest evaluation is ${n.ageDays} days old (`, { time: n.newestEvidence }, ').'];
    notice = { kind: 'trust', tone: 'warning', icon: 'stale', blocks: [{ kind: 'lines', lines: [['Its score decays and stale-evidence rules now apply.']] }] };
  } else {
    title = [
      { code: n.agentId },
      ' violated pact ',
      { code: clip(n.pactId, 200) },
      ' (',
      { strong: clip(n.severity, 50) },
      ')',
      ...(n.description ? [': ', clip(n.description, LIMITS.reason)] : []),
    ];
    // The evidence URL came with the event: shown as text (a platform may link it), never as a link of ours.
    const lines: Text[] = n.evidenceUrl ? [['Evidence: ', clip(n.evidenceUrl, LIMITS.line)]] : [];
    notice = { kind: 'trust', tone: 'danger', icon: 'violation', blocks: lines.length ? [{ kind: 'lines', lines }] : [] };
  }
  return { ...notice, title, fallback: plain(title) };
}
