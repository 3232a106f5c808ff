import type { BreakGlassNotice, DecommissionNotice } from '../agents/agents.service.js';
import type { PolicyInvalidNotice } from '../policy/policy-watcher.js';
import { clip, LIMITS, plain, type Notice, type Text } from './model.js';

/**
 * A break-glass restore (no second person). In channels it asks for everyone's attention; in a
 * direct message to another holder of a restore role it says why they are told.
 */
export function breakGlassNotice(n: BreakGlassNotice, opts: { direct: boolean }): Notice {
  const title: Text = [
    { strong: 'BREAK-GLASS restore' },
    ' of ',
    { code: n.agentId },
    ' by ',
    { actor: n.actor },
    ', with no second person: ',
    clip(n.reason, LIMITS.reason),
    ...(n.incidentId ? [' (incident ', { code: n.incidentId.slice(0, 8) }, ')'] : []),
    '.',
  ];
  const lines: Text[] = opts.direct ? [['You hold a restore role, so you would have been asked to confirm it.']] : [];
  return {
    kind: 'break-glass',
    tone: 'danger',
    icon: 'break-glass',
    title,
    fallback: `${plain(title)}${opts.direct ? ' You hold a restore role, so you would have been asked to confirm it.' : ''}`,
    blocks: [...(lines.length ? [{ kind: 'lines' as const, lines }] : []), { kind: 'context', text: ['At ', { time: n.at }] }],
    ...(opts.direct ? {} : { broadcast: true }),
  };
}

/** An agent was decommissioned: its grants are gone and every decision for it is denied. */
export function decommissionNotice(n: DecommissionNotice): Notice {
  const title: Text = [{ code: n.agentId }, ' was ', { strong: 'decommissioned' }, ' by ', { actor: n.actor }, ': ', clip(n.reason, LIMITS.reason), '.'];
  return {
    kind: 'decommission',
    tone: 'warning',
    icon: 'decommissioned',
    title,
    fallback: plain(title),
    blocks: [
      { kind: 'lines', lines: [['Its grants are removed and every decision for it is denied (', { code: 'agent_decommissioned' }, '); its history stays.']] },
      { kind: 'context', text: ['At ', { time: n.at }] },
    ],
  };
}

/** A changed policy file that does not validate: nothing changed, the running policy stays. */
export function policyInvalidNotice(n: PolicyInvalidNotice): Notice {
  const title: Text = ['The policy file ', { code: clip(n.file, 300) }, ' changed but is ', { strong: 'invalid' }, '; nothing changed, the previous policy (', { code: n.runningHash.slice(0, 12) }, ') stays in force.'];
  const shown: Text[] = n.problems.slice(0, LIMITS.problems).map((p) => [`• ${clip(p, LIMITS.line - 2)}`]);
  if (n.problems.length > LIMITS.problems) shown.push([`• …and ${n.problems.length - LIMITS.problems} more (see the log)`]);
  return {
    kind: 'policy-invalid',
    tone: 'danger',
    icon: 'policy',
    title,
    fallback: plain(title),
    blocks: [{ kind: 'lines', lines: [['Fix it (', { code: 'npm run policy:check -- FILE' }, '):'], ...shown] }],
  };
}

/**
 * The scheduled full verify found the audit chain broken: an alarm in the incidents channel, with
 * what to do. (A tampered log is a security incident of its own.)
 */
export function auditBrokenNotice(n: { firstBrokenSeq: string; problem: string; at: string }): Notice {
  const title: Text = [{ strong: 'The audit log is BROKEN' }, ' at entry ', { code: n.firstBrokenSeq }, ': ', clip(n.problem, LIMITS.line)];
  return {
    kind: 'audit-broken',
    tone: 'danger',
    icon: 'violation',
    title,
    fallback: plain(title),
    blocks: [
      {
        kind: 'lines',
        lines: [
          ['Found by the scheduled full verify at ', { time: n.at }, '. Entries may have been altered, removed or inserted by someone with database access.'],
          ['Check it yourself with ', { command: 'audit verify' }, ' or ', { code: 'GET /v1/audit/verify?full=true' }, ', preserve the database for forensics, and treat it as an incident.'],
        ],
      },
    ],
  };
}
