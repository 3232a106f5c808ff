import { sql } from 'kysely';
import type { z } from 'zod';
import type { Db, DbOrTrx } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import type { TrustService } from '../trust/trust.service.js';
import { inboundEventSchema } from '../api/schemas.js';
import { assertNotInFuture } from '../domain/clock-skew.js';
import { CodedError, ErrorCode } from '../domain/errors.js';

export type InboundEvent = z.output<typeof inboundEventSchema>;

/** How many held events one sweep applies at most (the rest wait 30 s for the next). */
export const HELD_SWEEP_BATCH = 100;

/**
 * At most this many events wait for agents that are not registered: past it, a new one is refused
 * with 503 (the sender keeps it and retries), so events for agents that will never exist cannot
 * fill the database.
 */
export const HELD_LIMIT = 10_000;
/** An event held this long for an agent that was never registered is dropped (logged) by the sweep. */
export const HELD_TTL_MS = 7 * 24 * 3_600_000;

/**
 * `applied`: its effect committed now. `duplicate`: this id was applied before; nothing changed.
 * `held`: its agent is not registered yet; it is kept and applied when the agent is.
 */
export type InboundOutcome = 'applied' | 'duplicate' | 'held';

/**
 * Inbound Armalo events. The event id is the dedupe key, but it is only spent when the event is
 * applied: an event for an agent we do not know yet is held (a critical `pact.violated` that
 * arrives before the registration must not be lost, nor its resend dropped as a duplicate).
 */
export class InboundEvents {
  private readonly heldLimit: number;
  private readonly heldTtlMs: number;

  constructor(private readonly deps: { db: Db; clock: Clock; trust: TrustService; logger: Logger; heldLimit?: number; heldTtlMs?: number }) {
    this.heldLimit = deps.heldLimit ?? HELD_LIMIT;
    this.heldTtlMs = deps.heldTtlMs ?? HELD_TTL_MS;
  }

  /** Refuses times dated more than 5 minutes ahead (fresh-forever evidence), naming the field. */
  checkTimes(event: InboundEvent, now: Date): void {
    assertNotInFuture('createdAt', new Date(event.createdAt), now);
    if (event.type === 'eval.completed') assertNotInFuture('data.observedAt', new Date(event.data.observedAt), now);
  }

  /** Dedupes and applies an event in one transaction, or holds it for an agent not registered yet. */
  async receive(event: InboundEvent): Promise<InboundOutcome> {
    const { db, clock } = this.deps;
    this.checkTimes(event, clock.now());
    const outcome = await db.transaction().execute(async (trx): Promise<InboundOutcome> => {
      const now = clock.now();
      const agent = await trx.selectFrom('agents').select('id').where('id', '=', event.data.agentId).executeTakeFirst();
      if (!agent) {
        if (await alreadyApplied(trx, event.id)) return 'duplicate';
        // A resend of an event already held does not count against the limit; a new one past it is refused.
        const heldAlready = await trx.selectFrom('held_events').select('id').where('id', '=', event.id).executeTakeFirst();
        if (!heldAlready && (await heldCountReaches(trx, this.heldLimit))) {
          throw new CodedError(
            ErrorCode.Unavailable,
            `${this.heldLimit} events are already held for agents that are not registered; this one (for ${event.data.agentId}) was not kept. Register the agents, or send it again later: held events of agents never registered are dropped after ${Math.round(this.heldTtlMs / 86_400_000)} days`,
          );
        }
        // A resend while it is still held finds the row there: held again, not a duplicate.
        await trx
          .insertInto('held_events')
          .values({ id: event.id, type: event.type, agent_id: event.data.agentId, event: JSON.stringify(event), received_at: now })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        return 'held';
      }
      if (!(await spend(trx, event, now))) return 'duplicate';
      await this.apply(trx, event, now);
      return 'applied';
    });
    // Committed: the views reload the agent's new trust data now, not at their next poll.
    if (outcome === 'applied') await this.deps.trust.publishTrustChange(event.data.agentId);
    if (outcome !== 'held') return outcome;
    // The agent may have been registered while we held the event, and its hook may have looked for
    // held events before our row committed: look once more now that it has.
    await this.applyHeld(event.data.agentId);
    const row = await db.selectFrom('held_events').select('applied_at').where('id', '=', event.id).executeTakeFirst();
    return row?.applied_at ? 'applied' : 'held';
  }

  /**
   * Applies every event held for an agent, each in its own transaction, once (the row lock and the
   * dedupe table make a concurrent call skip it). Called after a registration commits; never throws:
   * the registration stands, and what could not be applied stays held for the sweep, the next
   * registration or a resend.
   */
  async applyHeld(agentId: string): Promise<number> {
    const { db, logger } = this.deps;
    let applied = 0;
    try {
      const waiting = await db.selectFrom('held_events').select('id').where('agent_id', '=', agentId).where('applied_at', 'is', null).orderBy('received_at').execute();
      for (const { id } of waiting) if (await this.applyOne(id)) applied++;
      if (applied) logger.info({ agentId, applied }, 'held webhook events applied after the agent was registered');
    } catch (err) {
      logger.error({ err, agentId }, 'cannot apply held webhook events now; they stay held and are retried by the sweep, at the next registration or resend');
    }
    return applied;
  }

  /**
   * The sweep's safety net (every 30 s): applies held events whose agent is registered by now but
   * whose registration hook could not apply them (Postgres dropped the connection, the process
   * stopped). The same path as the hook, so an event applied meanwhile is skipped; oldest first, at
   * most `limit` per call. One failing event does not stop the others; never throws.
   */
  async applyHeldForRegistered(limit = HELD_SWEEP_BATCH): Promise<number> {
    const { db, logger } = this.deps;
    let applied = 0;
    let failed = 0;
    let firstError: unknown;
    try {
      await this.dropExpired();
      const ready = await db
        .selectFrom('held_events')
        .innerJoin('agents', 'agents.id', 'held_events.agent_id')
        .select('held_events.id')
        .where('held_events.applied_at', 'is', null)
        .orderBy('held_events.received_at')
        .limit(limit)
        .execute();
      for (const { id } of ready) {
        try {
          if (await this.applyOne(id)) applied++;
        } catch (err) {
          failed++;
          firstError ??= err;
        }
      }
    } catch (err) {
      failed++;
      firstError ??= err;
    }
    if (applied) logger.info({ applied }, 'held webhook events of registered agents applied by the sweep');
    // One line per sweep, whatever the number of failures.
    if (failed) logger.error({ err: firstError, failed }, 'cannot apply held webhook events now; they stay held for the next sweep');
    return applied;
  }

  /**
   * Drops events held longer than the time-to-live for agents still not registered, with one log line
   * naming how many and for which agents (at most 20 named), so nothing disappears unnoticed.
   */
  async dropExpired(): Promise<number> {
    const { db, clock, logger } = this.deps;
    const cutoff = new Date(clock.now().getTime() - this.heldTtlMs);
    const dropped = await db
      .deleteFrom('held_events')
      .where('applied_at', 'is', null)
      .where('received_at', '<', cutoff)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('agents').select('agents.id').whereRef('agents.id', '=', 'held_events.agent_id'))))
      .returning(['id', 'agent_id'])
      .execute();
    if (dropped.length) {
      const agents = [...new Set(dropped.map((d) => d.agent_id))];
      logger.warn({ dropped: dropped.length, agents: agents.slice(0, 20), moreAgents: Math.max(0, agents.length - 20), ttlDays: this.heldTtlMs / 86_400_000 }, 'held webhook events dropped: their agents were never registered');
    }
    return dropped.length;
  }

  /** Applies one held event unless it already was (or another caller holds it now): true when applied now. */
  private async applyOne(id: string): Promise<boolean> {
    const { db, clock } = this.deps;
    const applied = await db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('held_events').select(['event', 'applied_at']).where('id', '=', id).forUpdate().skipLocked().executeTakeFirst();
      if (!row || row.applied_at) return undefined;
      const now = clock.now();
      const event = inboundEventSchema.parse(row.event);
      const fresh = await spend(trx, event, now);
      if (fresh) await this.apply(trx, event, now);
      await trx.updateTable('held_events').set({ applied_at: now }).where('id', '=', id).execute();
      return fresh ? event.data.agentId : undefined;
    });
    if (applied === undefined) return false;
    await this.deps.trust.publishTrustChange(applied);
    return true;
  }

  private async apply(trx: DbOrTrx, event: InboundEvent, now: Date): Promise<void> {
    const { trust } = this.deps;
    const actor = `armalo:${event.type}`;
    const agentId = event.data.agentId;
    // The agent's row first, as every permission change takes it (agent, then the rest, then the
    // audit head): a violation appends its audit entry (the head) before its evaluation touches the
    // agent, and without this a contain of the same agent in flight and this event waited for each other.
    await trx.selectFrom('agents').select('id').where('id', '=', agentId).forNoKeyUpdate().execute();
    switch (event.type) {
      case 'score.changed':
      case 'score.tier_changed': {
        // Deliveries can come out of order (a retried or delayed one): a score Armalo set before the
        // external score in force does not replace it. Its id is spent all the same.
        if (await newerExternalScore(trx, agentId, event.createdAt)) break;
        const tier = event.data.tier ?? trust.tierOf(event.data.score);
        await trust.storeScore(trx, agentId, event.data.score, tier, 'external', { eventId: event.id, type: event.type, createdAt: event.createdAt }, now, actor);
        break;
      }
      case 'pact.violated':
        await trust.recordViolation(trx, agentId, { eventId: event.id, ...event.data }, actor, now);
        break;
      case 'eval.completed': {
        const d = event.data;
        await trust.recordEvaluationIn(trx, agentId, { id: d.evaluationId, pactId: d.pactId, dimension: d.dimension, passed: d.passed, score: d.score, observedAt: new Date(d.observedAt), source: 'armalo', evidenceUrl: d.evidenceUrl }, actor, now);
        break;
      }
    }
  }
}

/** Whether the agent has an external score Armalo set after `createdAt`. */
async function newerExternalScore(trx: DbOrTrx, agentId: string, createdAt: string): Promise<boolean> {
  const row = await trx
    .selectFrom('trust_scores')
    .select('id')
    .where('agent_id', '=', agentId)
    .where('source', '=', 'external')
    .where(sql<boolean>`(inputs->>'createdAt')::timestamptz > ${new Date(createdAt)}`)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Whether at least `limit` events wait (stops counting at the limit). */
async function heldCountReaches(trx: DbOrTrx, limit: number): Promise<boolean> {
  const row = await trx.selectFrom('held_events').select('id').where('applied_at', 'is', null).offset(limit - 1).limit(1).executeTakeFirst();
  return row !== undefined;
}

async function alreadyApplied(trx: DbOrTrx, id: string): Promise<boolean> {
  return !!(await trx.selectFrom('inbound_events').select('id').where('id', '=', id).executeTakeFirst());
}

/** Records the event id as applied; false when it already was (a replay). */
async function spend(trx: DbOrTrx, event: InboundEvent, now: Date): Promise<boolean> {
  const fresh = await trx
    .insertInto('inbound_events')
    .values({ id: event.id, type: event.type, agent_id: event.data.agentId, received_at: now })
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  return Number(fresh.numInsertedOrUpdatedRows ?? 0) > 0;
}
