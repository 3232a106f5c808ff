import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import { loadAgent } from '../agents/agents.repository.js';
import { presentAgent } from '../agents/agents.service.js';
import { verifyAudit } from '../audit/audit.repository.js';
import { canonicalJson } from '../domain/audit-chain.js';
import { freshnessOf } from '../domain/trust-score.js';
import { notFound } from '../domain/errors.js';
import type { Policy } from '../policy/policy.schema.js';
import type { TrustPacket } from './packet.js';

const DAY = 86_400_000;

/** The content hash of a packet: SHA-256 of its canonical JSON (key order does not matter). */
export function packetHash(packet: TrustPacket): string {
  return createHash('sha256').update(canonicalJson(packet)).digest('hex');
}

function median(values: number[]): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Gathers everything a packet says, as of `now`, from the system of record. */
export async function buildPacket(
  db: Db,
  policy: Policy,
  input: { id: string; agentId: string; requestedBy: string; audience: string | null; workflow: string | null },
  now: Date,
): Promise<TrustPacket> {
  const agent = await loadAgent(db, input.agentId);
  if (!agent) throw notFound(`unknown agent ${input.agentId}`);
  const asOf = now.toISOString();
  const fresh = policy.trust.freshness;
  const since90 = new Date(now.getTime() - 90 * DAY);

  const [scores, pacts, evals, actions, incidents, approvals, audit] = await Promise.all([
    db.selectFrom('trust_scores').select(['score', 'tier', 'computed_at']).where('agent_id', '=', agent.id).where('computed_at', '>=', since90).orderBy('computed_at').orderBy('id').execute(),
    db.selectFrom('pacts').selectAll().where('agent_id', '=', agent.id).orderBy('id').execute(),
    db.selectFrom('evaluations').selectAll().where('agent_id', '=', agent.id).orderBy('observed_at', 'desc').limit(500).execute(),
    db.selectFrom('agent_actions').selectAll().where('agent_id', '=', agent.id).where('incident_id', 'is not', null).orderBy('created_at').execute(),
    db.selectFrom('incidents').selectAll().where('agent_id', '=', agent.id).orderBy('opened_at', 'desc').limit(50).execute(),
    db.selectFrom('approval_requests').select(['status', 'created_at', 'decided_at']).where('agent_id', '=', agent.id).where('created_at', '>=', since90).execute(),
    verifyAudit(db),
  ]);
  const latest = scores.at(-1) ?? (await db.selectFrom('trust_scores').select(['score', 'tier', 'computed_at']).where('agent_id', '=', agent.id).orderBy('computed_at', 'desc').executeTakeFirst());
  const thirtyAgo = new Date(now.getTime() - 30 * DAY);
  const before30 = await db.selectFrom('trust_scores').select('score').where('agent_id', '=', agent.id).where('computed_at', '<=', thirtyAgo).orderBy('computed_at', 'desc').executeTakeFirst();
  const first30 = scores.find((s) => s.computed_at >= thirtyAgo);
  const baseline = before30?.score ?? first30?.score ?? null;
  const change30d = latest && baseline !== null ? latest.score - baseline : null;
  const trend = change30d === null ? 'none' : change30d > 0 ? 'up' : change30d < 0 ? 'down' : 'flat';
  const newest = evals[0]?.observed_at ?? null;
  const evidence = freshnessOf(newest, now, fresh);
  const staleItems = evals.filter((e) => now.getTime() - e.observed_at.getTime() >= fresh.staleAfterMs);
  const verdict =
    latest === undefined
      ? `${agent.name} has no trust score yet: there is no evaluation evidence to judge it by.`
      : `${agent.name} scores ${latest.score} (${latest.tier}); its evidence is ${evidence}${evidence === 'stale' ? ' — treat the score with caution until it is re-evaluated' : ''}; it is ${agent.status}.`;

  const view = presentAgent(agent, now);
  const pactItems = pacts.map((p) => {
    const last = evals.find((e) => e.pact_id === p.id);
    return {
      id: p.id,
      title: p.title,
      severity: p.severity,
      clauses: p.clauses,
      verification: p.verification,
      lastVerified: last?.observed_at.toISOString() ?? null,
      lastResult: last ? ((last.passed ?? (last.score ?? 0) >= 0.5) ? ('passed' as const) : ('failed' as const)) : null,
      freshness: freshnessOf(last?.observed_at ?? null, now, fresh),
    };
  });

  const decided = approvals.filter((a) => a.decided_at && (a.status === 'approved' || a.status === 'denied'));
  const counts = { approved: 0, denied: 0, expired: 0, cancelled: 0, pending: 0 };
  for (const a of approvals) counts[a.status]++;

  const packet: TrustPacket = {
    id: input.id,
    version: 1,
    generatedAt: asOf,
    requestedBy: input.requestedBy,
    audience: input.audience,
    workflow: input.workflow,
    agent: { id: agent.id, name: agent.name, owner: agent.owner, riskTier: agent.riskTier, status: agent.status },
    summary: { asOf, score: latest?.score ?? null, tier: latest?.tier ?? null, change30d, trend, evidence, verdict },
    pacts: { asOf, items: pactItems },
    evidence: {
      asOf,
      staleCount: staleItems.length,
      items: evals.slice(0, 100).map((e) => {
        const ageDays = Math.floor((now.getTime() - e.observed_at.getTime()) / DAY);
        return {
          id: e.id,
          pactId: e.pact_id,
          dimension: e.dimension,
          result: e.score !== null ? `score ${e.score}` : e.passed ? 'passed' : 'failed',
          observedAt: e.observed_at.toISOString(),
          ageDays,
          source: e.source,
          evidenceUrl: e.evidence_url,
          stale: now.getTime() - e.observed_at.getTime() >= fresh.staleAfterMs,
        };
      }),
    },
    scoreHistory: { asOf, days: 90, points: scores.map((s) => ({ at: s.computed_at.toISOString(), score: s.score, tier: s.tier })) },
    runtimeControls: {
      asOf,
      status: agent.status,
      grants: view.grants.map((g) => ({ scope: g.scope, state: g.state, constraints: g.constraints as Record<string, unknown>, keepInContainment: g.keepInContainment })),
      needsApproval: policy.routing.filter((r) => r.approvers.length).map((r) => ({ ruleId: r.id, action: r.match.action ?? null, approvers: r.approvers, quorum: r.quorum })),
      activeActions: agent.activeActions.map((a) => ({ kind: a.kind, actor: a.actor, reason: a.reason, since: a.createdAt.toISOString(), until: a.expiresAt?.toISOString() ?? null })),
    },
    incidents: {
      asOf,
      items: incidents.map((i) => ({
        id: i.id,
        openedAt: i.opened_at.toISOString(),
        closedAt: i.closed_at?.toISOString() ?? null,
        durationMinutes: i.closed_at ? Math.round((i.closed_at.getTime() - i.opened_at.getTime()) / 60_000) : null,
        steps: actions
          .filter((a) => a.incident_id === i.id)
          .map((a) => ({ kind: a.kind, actor: a.actor, reason: a.reason, at: a.created_at.toISOString(), ...((a.result as { breakGlass?: unknown } | null)?.breakGlass === true ? { breakGlass: true } : {}) })),
      })),
    },
    approvals: { asOf, days: 90, counts, medianMinutesToDecision: median(decided.map((a) => (a.decided_at!.getTime() - a.created_at.getTime()) / 60_000)) },
    auditIntegrity: { asOf, headSeq: audit.head.seq, headHash: audit.head.hash, verified: audit.ok, entries: audit.entries, firstBroken: audit.firstBroken ?? null },
  };
  // jsonb keeps numbers and strings as they are; round-tripping here makes the hash of what is
  // stored equal the hash of what was built.
  return JSON.parse(JSON.stringify(packet)) as TrustPacket;
}

