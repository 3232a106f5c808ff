import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { loadAgent } from '../agents/agents.repository.js';
import { presentAgent } from '../agents/agents.service.js';
import { verifyAudit } from '../audit/audit.repository.js';
import { canonicalJson } from '../domain/audit-chain.js';
import { freshnessOf } from '../domain/trust-score.js';
import { notFound } from '../domain/errors.js';
import type { Policy } from '../policy/policy.schema.js';
import type { EvidenceAggregate, TrustPacket } from './packet.js';
import { consequencesFor, consequencesInScope, grantsInScope, routingInScope, tighteningRules, type AgentState } from './rules.js';
import { changeOver, replayScoreHistory } from './score-history.js';
import { verdictOf } from './verdict.js';

const DAY = 86_400_000;
/** Raw evidence items listed in the appendix (the most recent ones). */
export const EVIDENCE_ITEMS_SHOWN = 50;
const HISTORY_DAYS = 90;

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

const toDate = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));
const iso = (v: unknown): string | null => toDate(v)?.toISOString() ?? null;

interface AggregateRow {
  key: string | null;
  count: number;
  graded: number;
  passes: number;
  last_failure: unknown;
  oldest: unknown;
  newest: unknown;
  stale: number;
}

/** Per dimension and per pact (or in total): count, pass rate, last failure, dates, stale items. One query. */
async function aggregates(db: Db, agentId: string, groupBy: 'dimension' | 'pact_id' | null, staleBefore: Date): Promise<AggregateRow[]> {
  const group = groupBy === null ? sql`null::text` : sql.ref(groupBy);
  const rows = await sql<AggregateRow>`
    select ${group} as key,
      count(*)::int as count,
      (count(*) filter (where score is not null or passed is not null))::int as graded,
      (count(*) filter (where coalesce(score >= 0.5, passed)))::int as passes,
      max(observed_at) filter (where not coalesce(score >= 0.5, passed)) as last_failure,
      min(observed_at) as oldest,
      max(observed_at) as newest,
      (count(*) filter (where observed_at <= ${staleBefore}))::int as stale
    from evaluations
    where agent_id = ${agentId} ${groupBy === 'pact_id' ? sql`and pact_id is not null` : sql``}
    ${groupBy === null ? sql`` : sql`group by ${group} order by ${group}`}`.execute(db);
  return rows.rows;
}

function toAggregate(r: AggregateRow, now: Date, fresh: Policy['trust']['freshness'], title?: string): EvidenceAggregate {
  return {
    key: r.key ?? '',
    ...(title !== undefined ? { title } : {}),
    count: r.count,
    passRate: r.graded > 0 ? Math.round((1000 * r.passes) / r.graded) / 1000 : null,
    lastFailure: iso(r.last_failure),
    oldest: iso(r.oldest),
    newest: iso(r.newest),
    freshness: freshnessOf(toDate(r.newest), now, fresh),
    staleCount: r.stale,
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const day = (s: string | null) => (s ? s.slice(0, 10) : '—');
const ageText = (d: number | null) => (d === null ? 'never' : d === 0 ? 'today' : `${d} d ago`);
const SEVERITY_ORDER: Record<string, number> = { critical: 0, high: 1, medium: 2, low: 3 };

/** The three questions of page one, each answered in one short line (for chat summaries). */
export function shortAnswers(p: Pick<TrustPacket, 'pacts' | 'evidence' | 'runtimeControls' | 'consequences' | 'incidents' | 'agent'>): TrustPacket['answers'] {
  const pacts = [...p.pacts.items].sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9));
  const pactText = (x: (typeof pacts)[number]) =>
    `${x.severity} “${x.title}”: ${x.lastResult === null ? 'never verified' : `${x.lastResult === 'failed' ? 'FAILED' : 'passed'} ${ageText(x.ageDays)}`}${x.freshness === 'stale' ? ' (stale)' : ''}`;
  const promised = pacts.length === 0 ? 'No pacts are recorded.' : `${plural(pacts.length, 'pact')}: ${pacts.slice(0, 2).map(pactText).join('; ')}${pacts.length > 2 ? `; ${pacts.length - 2} more` : ''}.`;

  const ev = p.evidence;
  const staleDims = ev.byDimension.filter((d) => d.freshness === 'stale').map((d) => d.key);
  const newestAge = ev.newest ? Math.floor((Date.parse(ev.asOf) - Date.parse(ev.newest)) / DAY) : null;
  const proofCurrent =
    ev.total === 0
      ? 'No evidence at all.'
      : `${plural(ev.total, 'item')} from ${day(ev.oldest)} to ${day(ev.newest)} (newest ${ageText(newestAge)}); ${ev.staleCount} past the ${ev.staleAfterDays}-day window; ${
          staleDims.length ? `STALE: ${staleDims.join(', ')}` : `every dimension has evidence from the last ${ev.staleAfterDays} days`
        }.`;

  const rc = p.runtimeControls;
  const active = rc.grants.filter((g) => g.state === 'active').length;
  const open = p.incidents.openCount;
  const now = `${p.agent.status}, ${active} of ${plural(rc.grants.length, 'grant')} in force, ${open ? `${plural(open, 'open incident')}` : 'no open incident'}`;
  const rules = [
    ...p.consequences.rules.filter((r) => r.applies).map((r) => `if ${r.when} → ${r.effect.split(':')[0]}${r.conditionHoldsNow ? ' (condition holds now)' : ''}`),
    ...rc.tightens.map((t) => `if ${t.condition} → ${t.effect}${t.inForceNow ? ' (in force now)' : ''}`),
  ];
  const ruleText = rules.slice(0, 2).join('; ');
  const whenProofWeakens = `Now ${now}. ${rules.length ? `${ruleText.charAt(0).toUpperCase()}${ruleText.slice(1)}${rules.length > 2 ? `; ${rules.length - 2} more rules` : ''}.` : 'No policy rule reacts to weakening proof for this agent.'}`;
  return { promised, proofCurrent, whenProofWeakens };
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
  const staleBefore = new Date(now.getTime() - fresh.staleAfterMs);
  // The replay needs the 90-day scoring window before the first day of the chart.
  const replayFrom = new Date(now.getTime() - (HISTORY_DAYS + 91) * DAY);
  // Own keys only: a workflow called "constructor" is not Object's.
  const workflow = input.workflow && Object.hasOwn(policy.workflows, input.workflow) ? policy.workflows[input.workflow]! : null;
  const actions = workflow ? workflow.actions : null;

  const [totals, byDim, byPact, latestByPact, recent, replayRows, externals, live, pacts, actionsRows, incidents, openCount, approvals, audit] = await Promise.all([
    aggregates(db, agent.id, null, staleBefore),
    aggregates(db, agent.id, 'dimension', staleBefore),
    aggregates(db, agent.id, 'pact_id', staleBefore),
    sql<{ pact_id: string; passed: boolean | null; score: number | null; observed_at: Date }>`
      select distinct on (pact_id) pact_id, passed, score, observed_at from evaluations
      where agent_id = ${agent.id} and pact_id is not null order by pact_id, observed_at desc, id desc`.execute(db),
    db.selectFrom('evaluations').selectAll().where('agent_id', '=', agent.id).orderBy('observed_at', 'desc').orderBy('id', 'desc').limit(EVIDENCE_ITEMS_SHOWN).execute(),
    db.selectFrom('evaluations').select(['dimension', 'passed', 'score', 'observed_at']).where('agent_id', '=', agent.id).where('observed_at', '>=', replayFrom).where('observed_at', '<=', now).execute(),
    db.selectFrom('trust_scores').select(['score', 'tier', 'computed_at', 'inputs']).where('agent_id', '=', agent.id).where('source', '=', 'external').where('computed_at', '<=', now).orderBy('computed_at').orderBy('id').execute(),
    db.selectFrom('trust_scores').select(['score', 'tier', 'source', 'computed_at']).where('agent_id', '=', agent.id).where('computed_at', '<=', now).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst(),
    db.selectFrom('pacts').selectAll().where('agent_id', '=', agent.id).orderBy('id').execute(),
    db.selectFrom('agent_actions').selectAll().where('agent_id', '=', agent.id).where('incident_id', 'is not', null).orderBy('created_at').execute(),
    db.selectFrom('incidents').selectAll().where('agent_id', '=', agent.id).orderBy('opened_at', 'desc').limit(50).execute(),
    db.selectFrom('incidents').select((eb) => eb.fn.countAll<string>().as('n')).where('agent_id', '=', agent.id).where('closed_at', 'is', null).executeTakeFirst(),
    db.selectFrom('approval_requests').select(['status', 'created_at', 'decided_at']).where('agent_id', '=', agent.id).where('created_at', '>=', since90).execute(),
    verifyAudit(db),
  ]);

  // ---- evidence ---------------------------------------------------------------------------
  const total = totals[0];
  const totalRow = total && total.count > 0 ? total : undefined;
  const pactTitles = new Map(pacts.map((p) => [p.id, p.title]));
  const byDimension = byDim.map((r) => toAggregate(r, now, fresh));
  const byPactAgg = byPact.map((r) => toAggregate(r, now, fresh, pactTitles.get(r.key ?? '') ?? r.key ?? ''));
  const newest = toDate(totalRow?.newest);
  const evidenceFreshness = freshnessOf(newest, now, fresh);

  // ---- pacts --------------------------------------------------------------------------------
  const latest = new Map(latestByPact.rows.map((r) => [r.pact_id, r]));
  const pactItems = pacts.map((p) => {
    const last = latest.get(p.id);
    const agg = byPactAgg.find((a) => a.key === p.id);
    const lastAt = toDate(last?.observed_at);
    return {
      id: p.id,
      title: p.title,
      severity: p.severity,
      clauses: p.clauses,
      verification: p.verification,
      lastVerified: lastAt?.toISOString() ?? null,
      lastResult: last ? ((last.passed ?? (last.score ?? 0) >= 0.5) ? ('passed' as const) : ('failed' as const)) : null,
      ageDays: lastAt ? Math.floor((now.getTime() - lastAt.getTime()) / DAY) : null,
      freshness: freshnessOf(lastAt, now, fresh),
      evaluations: agg?.count ?? 0,
      passRate: agg?.passRate ?? null,
      lastFailure: agg?.lastFailure ?? null,
    };
  });

  // ---- score history (by evidence time) -----------------------------------------------------
  const history = replayScoreHistory(
    replayRows.map((e) => ({ dimension: e.dimension, passed: e.passed, score: e.score, observedAt: e.observed_at })),
    externals.map((e) => ({ at: externalScoreTime(e.inputs, e.computed_at), score: e.score, tier: e.tier })),
    now,
    { days: HISTORY_DAYS, weights: policy.trust.weights, thresholds: policy.trust.tiers, live: live ? { score: live.score, tier: live.tier, source: live.source } : null },
  );
  const { change, trend } = changeOver(history.points, now);

  // ---- runtime controls, rules, workflow scope ---------------------------------------------------
  const view = presentAgent(agent, now);
  const allGrants = view.grants.map((g) => ({ scope: g.scope, state: g.state, constraints: g.constraints as Record<string, unknown>, keepInContainment: g.keepInContainment }));
  const grants = grantsInScope(allGrants, actions);
  const routing = routingInScope(policy.routing, actions);
  const state: AgentState = {
    riskTier: agent.riskTier,
    grants,
    pacts: pactItems,
    tier: live?.tier ?? null,
    score: live?.score ?? null,
    evidenceAgeMs: newest ? now.getTime() - newest.getTime() : null,
  };
  const consequenceRules = consequencesFor(policy.consequences, state, actions);
  const tightens = tighteningRules(policy.routing, state, actions);

  // ---- incidents and approvals ---------------------------------------------------------------
  const decided = approvals.filter((a) => a.decided_at && (a.status === 'approved' || a.status === 'denied'));
  const counts = { approved: 0, denied: 0, expired: 0, cancelled: 0, pending: 0 };
  for (const a of approvals) counts[a.status]++;
  const incidentItems = incidents.map((i) => ({
    id: i.id,
    openedAt: i.opened_at.toISOString(),
    closedAt: i.closed_at?.toISOString() ?? null,
    durationMinutes: i.closed_at ? Math.round((i.closed_at.getTime() - i.opened_at.getTime()) / 60_000) : null,
    steps: actionsRows
      .filter((a) => a.incident_id === i.id)
      .map((a) => ({ kind: a.kind, actor: a.actor, reason: a.reason, at: a.created_at.toISOString(), ...((a.result as { breakGlass?: unknown } | null)?.breakGlass === true ? { breakGlass: true as const } : {}) })),
  }));

  // ---- verdict ---------------------------------------------------------------------------
  const evidence: TrustPacket['evidence'] = {
    asOf,
    total: totalRow?.count ?? 0,
    staleCount: totalRow?.stale ?? 0,
    staleAfterDays: Math.round(fresh.staleAfterMs / DAY),
    oldest: iso(totalRow?.oldest),
    newest: newest?.toISOString() ?? null,
    byDimension,
    byPact: byPactAgg,
    items: recent.map((e) => ({
      id: e.id,
      pactId: e.pact_id,
      dimension: e.dimension,
      result: e.score !== null ? `score ${e.score}` : e.passed === null ? 'not graded' : e.passed ? 'passed' : 'failed',
      observedAt: e.observed_at.toISOString(),
      ageDays: Math.floor((now.getTime() - e.observed_at.getTime()) / DAY),
      source: e.source,
      evidenceUrl: e.evidence_url,
      stale: e.observed_at.getTime() <= staleBefore.getTime(),
    })),
    omitted: Math.max(0, (totalRow?.count ?? 0) - recent.length),
  };
  const verdict = verdictOf({
    name: agent.name,
    score: live?.score ?? null,
    tier: live?.tier ?? null,
    status: agent.status,
    evidence: {
      total: evidence.total,
      staleCount: evidence.staleCount,
      staleAfterDays: evidence.staleAfterDays,
      newest: evidenceFreshness,
      newestAgeDays: newest ? Math.floor((now.getTime() - newest.getTime()) / DAY) : null,
      staleDimensions: byDimension.filter((d) => d.freshness === 'stale').map((d) => d.key),
    },
    pacts: pactItems,
    openIncidents: incidentItems.filter((i) => i.closedAt === null),
    revokedGrants: grants.filter((g) => g.state === 'revoked').map((g) => g.scope),
    auditBroken: audit.ok ? null : { seq: audit.firstBroken?.seq ?? '?' },
  });

  const runtimeControls: TrustPacket['runtimeControls'] = {
    asOf,
    status: agent.status,
    grants,
    needsApproval: routing.filter((r) => r.approvers.length).map((r) => ({ ruleId: r.id, action: r.match.action ?? null, approvers: r.approvers, quorum: r.quorum })),
    tightens,
    activeActions: agent.activeActions.map((a) => ({ kind: a.kind, actor: a.actor, reason: a.reason, since: a.createdAt.toISOString(), until: a.expiresAt?.toISOString() ?? null })),
  };
  const consequences = { asOf, rules: consequenceRules };
  const incidentsSection = { asOf, openCount: Number(openCount?.n ?? 0), items: incidentItems };
  const agentSection = { id: agent.id, name: agent.name, owner: agent.owner, riskTier: agent.riskTier, status: agent.status };
  const pactsSection = { asOf, items: pactItems };

  const packet: TrustPacket = {
    id: input.id,
    version: 2,
    generatedAt: asOf,
    requestedBy: input.requestedBy,
    audience: input.audience,
    workflow: input.workflow,
    scope: input.workflow
      ? {
          workflow: input.workflow,
          actions: actions ?? [],
          missing: workflow === null,
          grants: { inScope: grants.length, total: allGrants.length },
          routingRules: { inScope: routing.length, total: policy.routing.length },
          consequenceRules: { inScope: consequencesInScope(policy.consequences, actions).length, total: policy.consequences.length },
        }
      : null,
    agent: agentSection,
    summary: { asOf, score: live?.score ?? null, tier: live?.tier ?? null, change30d: change, trend, evidence: evidenceFreshness, verdict: verdict.sentence, verdictLevel: verdict.level, facts: verdict.facts },
    answers: shortAnswers({ pacts: pactsSection, evidence, runtimeControls, consequences, incidents: incidentsSection, agent: agentSection }),
    pacts: pactsSection,
    evidence,
    scoreHistory: { asOf, days: HISTORY_DAYS, from: history.from, points: history.points },
    runtimeControls,
    consequences,
    incidents: incidentsSection,
    approvals: { asOf, days: 90, counts, medianMinutesToDecision: median(decided.map((a) => (a.decided_at!.getTime() - a.created_at.getTime()) / 60_000)) },
    auditIntegrity: { asOf, headSeq: audit.head.seq, headHash: audit.head.hash, verified: audit.ok, entries: audit.entries, firstBroken: audit.firstBroken ?? null },
  };
  // jsonb keeps numbers and strings as they are; round-tripping here makes the hash of what is
  // stored equal the hash of what was built.
  return JSON.parse(JSON.stringify(packet)) as TrustPacket;
}


/**
 * When an external score (Armalo's `score.changed`) took effect: the event's own time, stored with
 * it, so a score held until its agent was registered still stands where Armalo set it. Never later
 * than when we applied it (nor a time we cannot read).
 */
export function externalScoreTime(inputs: unknown, appliedAt: Date): Date {
  const createdAt = (inputs as { createdAt?: unknown } | null)?.createdAt;
  const at = typeof createdAt === 'string' ? new Date(createdAt) : undefined;
  return at && Number.isFinite(at.getTime()) && at.getTime() <= appliedAt.getTime() ? at : appliedAt;
}
