import { sql } from 'kysely';
import type { Db, DbOrTrx } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { appendAudit } from '../audit/audit.repository.js';
import { addOutboxJob, emitEvent } from '../outbox/outbox.repository.js';
import type { TrustTrigger } from '../domain/consequences.js';
import { CONSEQUENCES_JOB } from './consequences.service.js';
import { notFound } from '../domain/errors.js';
import { assertNotInFuture } from '../domain/clock-skew.js';
import { computeScore, DEFAULT_TIER_THRESHOLDS, freshnessOf, tierOf, type Freshness, type TrustTier } from '../domain/trust-score.js';
import type { Policy, ViolationSeverity } from '../policy/policy.schema.js';
import type { JobName, JobPayload } from '../queue/job-contracts.js';
import type { PermissionChangePublisher } from '../agents/agents.service.js';
import { assignPermissionVersion } from '../agents/agents.repository.js';
import { readLive, type Live } from '../policy/policy-holder.js';

export interface PactInput {
  id: string;
  title: string;
  clauses: string[];
  severity: 'low' | 'medium' | 'high' | 'critical';
  verification: string;
}

export interface EvaluationRecord {
  id: string;
  pactId?: string;
  dimension: string;
  passed?: boolean;
  score?: number;
  observedAt: Date;
  source: string;
  evidenceUrl?: string;
}

export const TRUST_NOTICE_JOB = 'trust-notice' satisfies JobName;
/** The daily pass: decay, and evidence that became stale (queue `timers`, a job scheduler). */
export const TRUST_DAILY_JOB = 'trust-daily' satisfies JobName;
export const TRUST_DAILY_EVERY_MS = 24 * 3600_000;
/** Agents the daily pass reads at once (see `dailyCandidates`). */
const DAILY_PAGE = 500;
/** The inbound event that records a stale-evidence notice, once per newest-evidence time. */
const staleKey = (agentId: string, newest: Date) => `stale:${agentId}:${newest.toISOString()}`;

/** A score move, a pact violation or stale evidence to tell subscribed channels about (queue `notify`). */
export type TrustNotice = JobPayload<typeof TRUST_NOTICE_JOB>;

export interface ScoreView {
  agentId: string;
  score: number | null;
  tier: TrustTier | null;
  source: 'computed' | 'external' | null;
  computedAt: string | null;
  /** Score history over the last 30 days, oldest first. */
  trend: { at: string; score: number }[];
  newestEvidence: string | null;
  freshness: Freshness;
  pacts: { id: string; title: string; severity: string; lastVerified: string | null; freshness: Freshness }[];
}

async function agentExists(db: DbOrTrx, agentId: string): Promise<void> {
  const row = await db.selectFrom('agents').select('id').where('id', '=', agentId).executeTakeFirst();
  if (!row) throw notFound(`unknown agent ${agentId}`);
}

/** Pacts, evaluation evidence and the Score. Every change is audited and emitted as an event. */
export class TrustService {
  /** `publisher`: tells every replica's view at once that an agent's trust changed (score, tier, newest evidence). */
  /** `settings`: the policy's trust settings, or a function answering the ones in force (live policy). */
  constructor(private readonly deps: { db: Db; clock: Clock; settings?: Live<Policy['trust']>; publisher?: PermissionChangePublisher }) {}

  private get settings(): Policy['trust'] | undefined {
    return this.deps.settings === undefined ? undefined : readLive(this.deps.settings);
  }

  private get thresholds() {
    return this.settings?.tiers ?? DEFAULT_TIER_THRESHOLDS;
  }

  private get freshness() {
    return this.settings?.freshness ?? { ageingAfterMs: 7 * 86_400_000, staleAfterMs: 30 * 86_400_000 };
  }

  /** The tier of a score under the policy's thresholds. */
  tierOf(score: number): TrustTier {
    return tierOf(score, this.thresholds);
  }

  async savePact(agentId: string, pact: PactInput, actor: string): Promise<{ created: boolean }> {
    const { db, clock } = this.deps;
    await agentExists(db, agentId);
    return db.transaction().execute(async (trx) => {
      const now = clock.now();
      const existing = await trx.selectFrom('pacts').select('id').where('agent_id', '=', agentId).where('id', '=', pact.id).forUpdate().executeTakeFirst();
      await trx
        .insertInto('pacts')
        .values({ agent_id: agentId, id: pact.id, title: pact.title, clauses: JSON.stringify(pact.clauses), severity: pact.severity, verification: pact.verification, created_at: now, updated_at: now })
        .onConflict((oc) =>
          oc.columns(['agent_id', 'id']).doUpdateSet({ title: pact.title, clauses: JSON.stringify(pact.clauses), severity: pact.severity, verification: pact.verification, updated_at: now }),
        )
        .execute();
      await appendAudit(trx, { actor, action: 'trust.pact_saved', subject: agentId, payload: pact, at: now });
      await emitEvent(trx, 'trust.pact_saved', { agentId, ...pact }, now);
      return { created: !existing };
    });
  }

  async listPacts(agentId: string) {
    await agentExists(this.deps.db, agentId);
    const rows = await this.deps.db.selectFrom('pacts').selectAll().where('agent_id', '=', agentId).orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, title: r.title, clauses: r.clauses, severity: r.severity, verification: r.verification, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() }));
  }

  /** Records an evaluation (idempotent by its id) and recomputes the Score. */
  async recordEvaluation(agentId: string, ev: EvaluationRecord, actor: string): Promise<{ created: boolean; score: ScoreView }> {
    const { db, clock } = this.deps;
    assertNotInFuture('observedAt', ev.observedAt, clock.now());
    await agentExists(db, agentId);
    const created = await db.transaction().execute((trx) => this.recordEvaluationIn(trx, agentId, ev, actor, clock.now()));
    if (created) await this.publishTrustChange(agentId);
    return { created, score: await this.scoreOf(agentId) };
  }

  /**
   * After a commit that bumped the agent's version: the views reload it now, not at their next poll.
   * Never throws. Callers that applied trust data in their own transaction call it after commit.
   */
  async publishTrustChange(agentId: string): Promise<void> {
    const publisher = this.deps.publisher;
    if (!publisher) return;
    try {
      const row = await this.deps.db.selectFrom('agents').select('version').where('id', '=', agentId).executeTakeFirst();
      if (row) await publisher.publishChanged(agentId, BigInt(row.version));
    } catch {
      // Committed: the views' version poll catches up within the staleness bound.
    }
  }

  /** The same, inside the caller's transaction (inbound webhooks dedupe and apply in one). */
  async recordEvaluationIn(trx: DbOrTrx, agentId: string, ev: EvaluationRecord, actor: string, now: Date): Promise<boolean> {
    const inserted = await trx
      .insertInto('evaluations')
      .values({
        id: ev.id,
        agent_id: agentId,
        pact_id: ev.pactId ?? null,
        dimension: ev.dimension,
        passed: ev.passed ?? null,
        score: ev.score ?? null,
        observed_at: ev.observedAt,
        source: ev.source,
        evidence_url: ev.evidenceUrl ?? null,
        received_at: now,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return false;
    const payload = { evaluationId: ev.id, pactId: ev.pactId ?? null, dimension: ev.dimension, passed: ev.passed ?? null, score: ev.score ?? null, observedAt: ev.observedAt.toISOString(), source: ev.source, evidenceUrl: ev.evidenceUrl ?? null };
    await appendAudit(trx, { actor, action: 'trust.evaluation_recorded', subject: agentId, payload, at: now });
    await emitEvent(trx, 'trust.evaluation_recorded', { agentId, ...payload }, now);
    // New evidence changes routing (evidenceOlderThan) even when the score stays: bump the agent's
    // permission version so every replica's view reloads it (storeScore bumps it on a new score).
    if (!(await this.recompute(trx, agentId, now, actor))) await assignPermissionVersion(trx, agentId);
    return true;
  }

  /** A pact violation reported by Armalo: audited, emitted, and counted as a failed check of that pact. */
  async recordViolation(trx: DbOrTrx, agentId: string, v: { eventId: string; pactId: string; severity: ViolationSeverity; description?: string; evidenceUrl?: string }, actor: string, now: Date): Promise<void> {
    const payload = { pactId: v.pactId, severity: v.severity, description: v.description ?? null, evidenceUrl: v.evidenceUrl ?? null, eventId: v.eventId };
    await appendAudit(trx, { actor, action: 'trust.pact_violated', subject: agentId, payload, at: now });
    await emitEvent(trx, 'trust.pact_violated', { agentId, ...payload }, now);
    const trigger: TrustTrigger = { kind: 'violation', eventId: v.eventId, pactId: v.pactId, severity: v.severity };
    await addOutboxJob(trx, { jobName: CONSEQUENCES_JOB, payload: { agentId, trigger } }, now);
    const notice: TrustNotice = { agentId, key: `violation:${v.eventId}`, kind: 'violation', pactId: v.pactId, severity: v.severity, description: v.description ?? null, evidenceUrl: v.evidenceUrl ?? null };
    await addOutboxJob(trx, { jobName: TRUST_NOTICE_JOB, payload: notice }, now);
    await this.recordEvaluationIn(trx, agentId, { id: `violation:${v.eventId}`, pactId: v.pactId, dimension: 'pacts', passed: false, observedAt: now, source: actor, evidenceUrl: v.evidenceUrl }, actor, now);
  }

  /** Stores a new computed score when it differs from the latest one (history stays exact). */
  async recompute(trx: DbOrTrx, agentId: string, now: Date, actor: string): Promise<boolean> {
    const evals = await trx.selectFrom('evaluations').select(['dimension', 'passed', 'score', 'observed_at']).where('agent_id', '=', agentId).execute();
    const result = computeScore(evals.map((e) => ({ dimension: e.dimension, passed: e.passed, score: e.score, observedAt: e.observed_at })), now, { thresholds: this.thresholds, weights: this.settings?.weights });
    if (result.score === null || result.tier === null) return false;
    return this.storeScore(trx, agentId, result.score, result.tier, 'computed', { raw: result.raw, decay: result.decay, dimensions: result.dimensions, evaluationsCounted: result.evaluationsCounted }, now, actor);
  }

  /** A score from an external source (Armalo's `score.changed`): stored as is. */
  async storeScore(trx: DbOrTrx, agentId: string, score: number, tier: TrustTier, source: 'computed' | 'external', inputs: unknown, now: Date, actor: string): Promise<boolean> {
    const latest = await trx.selectFrom('trust_scores').select(['score', 'tier']).where('agent_id', '=', agentId).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    if (latest && latest.score === score && latest.tier === tier) return false;
    const row = await trx.insertInto('trust_scores').values({ agent_id: agentId, score, tier, source, inputs: JSON.stringify(inputs), computed_at: now }).returning('id').executeTakeFirstOrThrow();
    // A new score or tier can change decisions (minTier grants, routing rules): bump the agent's
    // permission version so every replica's view reloads it (published after commit; a lost publish
    // is caught by the version poll).
    await assignPermissionVersion(trx, agentId);
    const payload = { score, tier, previousScore: latest?.score ?? null, previousTier: latest?.tier ?? null, source };
    await appendAudit(trx, { actor, action: 'trust.score_changed', subject: agentId, payload, at: now });
    await emitEvent(trx, 'trust.score_changed', { agentId, ...payload }, now);
    const trigger: TrustTrigger = { kind: 'score', eventId: `score:${row.id}`, score, tier, previousScore: latest?.score ?? null, previousTier: (latest?.tier as TrustTier | undefined) ?? null };
    await addOutboxJob(trx, { jobName: CONSEQUENCES_JOB, payload: { agentId, trigger } }, now);
    const notice: TrustNotice = { agentId, key: trigger.eventId, kind: 'score', score, tier, previousScore: trigger.previousScore, previousTier: trigger.previousTier };
    await addOutboxJob(trx, { jobName: TRUST_NOTICE_JOB, payload: notice }, now);
    return true;
  }

  async scoreOf(agentId: string): Promise<ScoreView> {
    const { db, clock } = this.deps;
    await agentExists(db, agentId);
    const now = clock.now();
    const history = await db
      .selectFrom('trust_scores')
      .select(['score', 'tier', 'source', 'computed_at'])
      .where('agent_id', '=', agentId)
      .where('computed_at', '>=', new Date(now.getTime() - 30 * 86_400_000))
      .orderBy('computed_at')
      .orderBy('id')
      .execute();
    const latest = history.at(-1) ?? (await db.selectFrom('trust_scores').select(['score', 'tier', 'source', 'computed_at']).where('agent_id', '=', agentId).orderBy('computed_at', 'desc').executeTakeFirst());
    const newest = await db.selectFrom('evaluations').select((eb) => eb.fn.max('observed_at').as('at')).where('agent_id', '=', agentId).executeTakeFirst();
    const newestAt = newest?.at ? new Date(newest.at as unknown as string) : null;
    const pacts = await db.selectFrom('pacts').select(['id', 'title', 'severity']).where('agent_id', '=', agentId).orderBy('id').execute();
    const lastByPact = await db.selectFrom('evaluations').select(['pact_id']).select((eb) => eb.fn.max('observed_at').as('at')).where('agent_id', '=', agentId).where('pact_id', 'is not', null).groupBy('pact_id').execute();
    return {
      agentId,
      score: latest?.score ?? null,
      tier: latest ? (latest.tier as TrustTier) : null,
      source: latest?.source ?? null,
      computedAt: latest?.computed_at.toISOString() ?? null,
      trend: history.map((h) => ({ at: h.computed_at.toISOString(), score: h.score })),
      newestEvidence: newestAt?.toISOString() ?? null,
      freshness: freshnessOf(newestAt, now, this.freshness),
      pacts: pacts.map((p) => {
        const at = lastByPact.find((l) => l.pact_id === p.id)?.at;
        const date = at ? new Date(at as unknown as string) : null;
        return { id: p.id, title: p.title, severity: p.severity, lastVerified: date?.toISOString() ?? null, freshness: freshnessOf(date, now, this.freshness) };
      }),
    };
  }

  /**
   * Once a day: recompute computed scores (decay moves them as evidence ages) and announce evidence
   * that has become stale, once per staleness (keyed by the newest evidence time), handing it to the
   * consequence rules too.
   */
  async dailyPass(): Promise<{ rescored: number; stale: number }> {
    const { db, clock } = this.deps;
    const now = clock.now();
    const agents = await db.selectFrom('evaluations').select('agent_id').select((eb) => eb.fn.max('observed_at').as('newest')).groupBy('agent_id').orderBy('agent_id').execute();
    let rescored = 0;
    let stale = 0;
    for (let start = 0; start < agents.length; start += DAILY_PAGE) {
      const page = agents.slice(start, start + DAILY_PAGE).map((row) => ({ agentId: row.agent_id, newest: new Date(row.newest as unknown as string) }));
      // Only agents whose score would change or whose evidence newly became stale get a transaction;
      // it decides again from what it reads itself, so this read only saves the work for the others.
      for (const { agentId, newest } of await this.dailyCandidates(page, now)) {
        const rescoredBefore = rescored;
        await db.transaction().execute(async (trx) => {
          const latest = await trx.selectFrom('trust_scores').select('source').where('agent_id', '=', agentId).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
          if (!latest || latest.source === 'computed') {
            if (await this.recompute(trx, agentId, now, 'system:daily')) rescored++;
          }
          const age = now.getTime() - newest.getTime();
          if (age >= this.freshness.staleAfterMs) {
            const key = staleKey(agentId, newest);
            const seen = await trx.insertInto('inbound_events').values({ id: key, type: 'evidence.stale', agent_id: agentId, received_at: now }).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
            if (Number(seen.numInsertedOrUpdatedRows ?? 0) === 0) return;
            stale++;
            const notice: TrustNotice = { agentId, key, kind: 'stale', newestEvidence: newest.toISOString(), ageDays: Math.floor(age / 86_400_000) };
            await addOutboxJob(trx, { jobName: TRUST_NOTICE_JOB, payload: notice }, now);
            const trigger: TrustTrigger = { kind: 'evidence', eventId: key, ageMs: age };
            await addOutboxJob(trx, { jobName: CONSEQUENCES_JOB, payload: { agentId, trigger } }, now);
          }
        });
        if (rescored > rescoredBefore) await this.publishTrustChange(agentId);
      }
    }
    return { rescored, stale };
  }

  /**
   * Of a page of agents with evidence, those the daily pass has work for: a computed (or no) score
   * that the evidence now scores differently (decay), or evidence that became stale without its
   * notice yet. Three reads for the whole page, where every agent used to take a transaction of its own.
   */
  private async dailyCandidates(page: { agentId: string; newest: Date }[], now: Date): Promise<{ agentId: string; newest: Date }[]> {
    if (page.length === 0) return [];
    const { db } = this.deps;
    const ids = page.map((p) => p.agentId);
    const staleKeys = page.filter((p) => now.getTime() - p.newest.getTime() >= this.freshness.staleAfterMs).map((p) => staleKey(p.agentId, p.newest));
    const [evals, latest, seen] = await Promise.all([
      db.selectFrom('evaluations').select(['agent_id', 'dimension', 'passed', 'score', 'observed_at']).where('agent_id', 'in', ids).execute(),
      sql<{ agent_id: string; score: number; tier: string; source: string }>`
        select distinct on (agent_id) agent_id, score, tier, source from trust_scores
        where agent_id = any(${ids}::text[]) order by agent_id, computed_at desc, id desc`.execute(db),
      staleKeys.length ? db.selectFrom('inbound_events').select('id').where('id', 'in', staleKeys).execute() : Promise.resolve([]),
    ]);
    const evalsOf = new Map<string, typeof evals>();
    for (const e of evals) {
      const list = evalsOf.get(e.agent_id);
      if (list) list.push(e);
      else evalsOf.set(e.agent_id, [e]);
    }
    const latestOf = new Map(latest.rows.map((r) => [r.agent_id, r]));
    const seenKeys = new Set(seen.map((r) => r.id));
    return page.filter(({ agentId, newest }) => {
      if (now.getTime() - newest.getTime() >= this.freshness.staleAfterMs && !seenKeys.has(staleKey(agentId, newest))) return true;
      const last = latestOf.get(agentId);
      if (last && last.source !== 'computed') return false;
      const result = computeScore((evalsOf.get(agentId) ?? []).map((e) => ({ dimension: e.dimension, passed: e.passed, score: e.score, observedAt: e.observed_at })), now, {
        thresholds: this.thresholds,
        weights: this.settings?.weights,
      });
      if (result.score === null || result.tier === null) return false;
      return !last || last.score !== result.score || last.tier !== result.tier;
    });
  }
}
