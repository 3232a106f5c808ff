import { sql } from 'kysely';
import { createHash, randomUUID } from 'node:crypto';
import { isUniqueViolation, type Db, type DbOrTrx } from '../db/database.js';
import type { ApprovalStatus } from '../db/schema.js';
import type { Clock } from '../core/clock.js';
import { loadAgent } from '../agents/agents.repository.js';
import { loadAgentAsSeen } from '../fleet/fleet-hold.js';
import { decommissionedMessage } from '../agents/registration-batch.js';
import { appendAudit } from '../audit/audit.repository.js';
import { computeRoute, escalate, isApproved, isPerson, isReachable, policyPeople, type Person, type RouteRequirement, type RouteSnapshot } from '../domain/approval-route.js';
import { derivedFrom } from '../policy/policy-holder.js';
import { consumeApproval } from './open-approvals.repository.js';
import { toApprovalView } from './approval-view.js';
import { conflict, CodedError, ErrorCode, notFound } from '../domain/errors.js';
import type { EventType } from '../domain/events.js';
import { addOutboxJob, emitEvent } from '../outbox/outbox.repository.js';
import type { Policy } from '../policy/policy.schema.js';
import type { Agent } from '../domain/agent.js';
import { routeInputOf } from '../domain/decide.js';
import type { APPROVAL_TIMER_KINDS, JobName } from '../queue/job-contracts.js';

export const APPROVAL_TIMER_JOB = 'approval-timer' satisfies JobName;
export const APPROVAL_CARDS_JOB = 'approval-cards' satisfies JobName;
export const APPROVAL_CALLBACK_JOB = 'approval-callback' satisfies JobName;
/** Removes a finished request's pending reminder/escalation/expiry jobs from the queue. */
export const APPROVAL_TIMERS_CANCEL_JOB = 'approval-timers-cancel' satisfies JobName;

export type TimerKind = (typeof APPROVAL_TIMER_KINDS)[number];

export interface ApprovalRequestInput {
  agentId: string;
  action: string;
  context: Record<string, unknown>;
  justification: string;
  idempotencyKey?: string;
  callbackUrl?: string;
}

/** Who clicked: a chat user with the emails the directory resolved for them. */
export interface Approver {
  actor: string;
  /** Where the decision was made (`console`: the web console, by a chat person). */
  platform: 'slack' | 'teams' | 'api' | 'console';
  slack?: string;
  teams?: string;
  emails: string[];
}

export interface ApprovalView {
  id: string;
  agentId: string;
  action: string;
  context: Record<string, unknown>;
  justification: string;
  requestedBy: string;
  status: ApprovalStatus;
  route: {
    ruleId: string;
    matched: string[];
    quorum: number;
    requirements: { ruleId: string; roles: string[]; count: number; approvers: string[] }[];
    escalated: boolean;
    channel: string | null;
    /** Why each matching rule matched: rules after the first tightened the route. */
    why: Record<string, string[]>;
    trust: { score: number | null; tier: string | null; evidenceAgeDays: number | null };
  };
  decisions: { by: string; decision: 'approve' | 'deny'; reason: string | null; at: string; via: string }[];
  createdAt: string;
  expiresAt: string;
  decidedAt: string | null;
  finalReason: string | null;
  grantUntil: string | null;
}

const invalid = (message: string) => new CodedError(ErrorCode.InvalidInput, message);

/**
 * The job id of a request's reminder, escalation or expiry: a UUID derived from the request id and
 * the kind, so the same timer always has the same id (BullMQ ignores an add whose id it holds).
 */
export function approvalTimerJobId(requestId: string, kind: TimerKind): string {
  const hex = createHash('sha256').update(`approval-timer:${requestId}:${kind}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Approval requests: created by agents through the API, routed by the policy, decided by people in
 * chat. Every transition locks the request row, so concurrent clicks produce one final state.
 */
export class ApprovalService {
  /** Everyone in the CURRENT policy (re-derived when a reload replaces the roles). */
  private readonly currentPeople = derivedFrom(
    () => this.deps.policy.roles,
    () => policyPeople(this.deps.policy),
  );

  constructor(
    private readonly deps: {
      db: Db;
      clock: Clock;
      policy: Policy;
      callbackHosts?: readonly string[];
      /**
       * Called after a commit that changed an agent's approval requests (created, ended), so every
       * replica's view reloads them (the decision path reads them from memory). Must not throw.
       */
      onChanged?: (agentId: string) => Promise<void>;
    },
  ) {}

  private get people(): Person[] {
    return this.currentPeople();
  }

  /** ARMALO_CALLBACK_HOSTS: the hosts callbacks may go to, internal ones included (empty: public addresses only). */
  get callbackHosts(): readonly string[] {
    return this.deps.callbackHosts ?? [];
  }

  /** True when the policy has routing rules at all (the decision path skips the check otherwise). */
  get hasRouting(): boolean {
    return this.deps.policy.routing.some((r) => r.approvers.length > 0);
  }

  /** The route a request would take, or null: from the agent as loaded (its trust data included). */
  routeFor(agent: Agent, action: string, context: Record<string, unknown>, requester?: string): RouteSnapshot | null {
    return computeRoute(
      this.deps.policy,
      routeInputOf(agent, action, context, this.deps.clock.now()),
      (p) => isPerson(p, { text: agent.owner }) || (requester !== undefined && isPerson(p, { text: requester })),
    );
  }

  async create(input: ApprovalRequestInput, requester: string): Promise<{ created: boolean; request: ApprovalView }> {
    const { db, clock } = this.deps;
    if (input.idempotencyKey) {
      const existing = await db.selectFrom('approval_requests').select('id').where('requested_by', '=', requester).where('idempotency_key', '=', input.idempotencyKey).executeTakeFirst();
      if (existing) return { created: false, request: (await this.get(existing.id))! };
    }
    const agent = await loadAgentAsSeen(db, input.agentId);
    if (!agent) throw notFound(`unknown agent ${input.agentId}`);
    if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'it cannot be approved for anything'));
    if (agent.status === 'contained' || agent.status === 'revoked') {
      throw conflict(`agent ${agent.id} is ${agent.status}: approval requests are refused until it is restored`);
    }
    const route = this.routeFor(agent, input.action, input.context, requester);
    if (!route) {
      // A request no rule covers is refused rather than sent to a default route: a security policy
      // should say who approves, not leave it to us. (Documented in docs/approvals.md.)
      throw invalid(`no routing rule in the policy covers ${input.action} for agent ${agent.id} (risk tier ${agent.riskTier}); add one to the policy`);
    }
    if (!isReachable(route)) {
      throw invalid(`the route (${route.ruleId}) cannot reach its quorum without the agent's owner or the requester, who may not approve; fix the policy's roles`);
    }
    const now = clock.now();
    const id = randomUUID();
    try {
      await db.transaction().execute(async (trx) => {
        // The agent's row is held (shared) until the request commits, and its status read again
        // under it: a contain or revoke (which holds the row for update until it commits) either
        // finished first, and the request is refused here, or waits for this one, and then sees
        // the request and cancels it. Without it, a request checked just before a contain committed
        // could stay pending on a contained agent.
        const locked = await trx.selectFrom('agents').select('status').where('id', '=', agent.id).forShare().executeTakeFirst();
        if (locked?.status === 'decommissioned') throw conflict(`agent ${agent.id} was decommissioned; it cannot be approved for anything`);
        if (locked && (locked.status === 'contained' || locked.status === 'revoked')) {
          throw conflict(`agent ${agent.id} is ${locked.status}: approval requests are refused until it is restored`);
        }
        await trx
          .insertInto('approval_requests')
          .values({
            id,
            agent_id: agent.id,
            action: input.action,
            context: JSON.stringify(input.context),
            justification: input.justification,
            requested_by: requester,
            idempotency_key: input.idempotencyKey ?? null,
            callback_url: input.callbackUrl ?? null,
            status: 'pending',
            route: JSON.stringify(route),
            created_at: now,
            expires_at: new Date(now.getTime() + route.expireAfterMs),
          })
          .execute();
        const payload = { requestId: id, action: input.action, context: input.context, justification: input.justification, rule: route.ruleId, matched: route.matched };
        await appendAudit(trx, { actor: requester, action: 'approval.requested', subject: agent.id, payload, at: now });
        await emitEvent(trx, 'approval.requested', { agentId: agent.id, ...payload }, now);
        await addOutboxJob(trx, { jobName: APPROVAL_CARDS_JOB, payload: { requestId: id } }, now);
        const timers: [TimerKind, number | null][] = [
          ['remind', route.remindAfterMs],
          ['escalate', route.escalateAfterMs],
          ['expire', route.expireAfterMs],
        ];
        for (const [kind, after] of timers) {
          if (after === null) continue;
          // A deterministic id: the sweep can re-add a timer Redis lost under the same job id.
          await addOutboxJob(trx, { jobName: APPROVAL_TIMER_JOB, payload: { requestId: id, kind }, runAt: new Date(now.getTime() + after) }, now, approvalTimerJobId(id, kind));
        }
      });
    } catch (err) {
      // A concurrent request with the same idempotency key won: answer with it.
      if (isUniqueViolation(err) && input.idempotencyKey) return this.create(input, requester);
      throw err;
    }
    await this.changed(agent.id);
    return { created: true, request: (await this.get(id))! };
  }

  async get(id: string, db: DbOrTrx = this.deps.db): Promise<ApprovalView | undefined> {
    const row = await db.selectFrom('approval_requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const decisions = await db.selectFrom('approval_decisions').selectAll().where('request_id', '=', id).orderBy('at').execute();
    return toApprovalView(row, decisions);
  }

  /** Waits (bounded) until the request is no longer pending; answers its state either way. */
  async waitFor(id: string, seconds: number): Promise<ApprovalView | undefined> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const view = await this.get(id);
      if (!view || view.status !== 'pending' || Date.now() >= deadline) return view;
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(10, deadline - Date.now()))));
    }
  }

  async cancel(id: string, requester: string, reason = 'cancelled by the requester'): Promise<ApprovalView> {
    const { db, clock } = this.deps;
    await db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('approval_requests').select(['status', 'requested_by', 'agent_id']).where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) throw notFound(`unknown approval request ${id}`);
      if (row.requested_by !== requester) throw new CodedError(ErrorCode.Forbidden, 'only the requester can cancel this request');
      if (row.status !== 'pending') throw conflict(`this request is already ${row.status}`);
      const now = clock.now();
      await trx.updateTable('approval_requests').set({ status: 'cancelled', decided_at: now, final_reason: reason }).where('id', '=', id).execute();
      await this.afterFinal(trx, id, row.agent_id, 'cancelled', requester, now);
      return row.agent_id;
    }).then((agentId) => this.changed(agentId));
    return (await this.get(id))!;
  }

  /**
   * Containment (contain or revoke), inside the caller's transaction: cancels every pending request of
   * the agent, and ends every approval it has not used yet (one-shot approvals not consumed, and
   * grant windows still open), so a restore does not bring back approvals given before the incident.
   * Answers the ids of the pending requests cancelled (what `pendingApprovalsCancelled` reports).
   */
  async cancelPendingForAgent(trx: DbOrTrx, agentId: string, actor: string, now: Date, why: 'contained' | 'decommissioned' = 'contained'): Promise<string[]> {
    return (await this.cancelPendingForAgents(trx, [agentId], actor, now, why)).get(agentId) ?? [];
  }

  /**
   * `cancelPendingForAgent` for many agents at once (a fleet contain): every request row is updated
   * first, in two statements, and only then are the cancellations audited one by one. An audit entry
   * takes the audit head; taken between two agents' updates, it would be held while waiting for a
   * request row an approver's click holds, while that click waits for the head to audit itself.
   * Answers the pending requests cancelled, by agent.
   */
  async cancelPendingForAgents(trx: DbOrTrx, agentIds: readonly string[], actor: string, now: Date, why: 'contained' | 'decommissioned' = 'contained'): Promise<Map<string, string[]>> {
    const cancelled = new Map<string, string[]>();
    if (agentIds.length === 0) return cancelled;
    const ids = [...agentIds];
    // The reason names each request's own agent, as the one-agent cancel always did.
    const happened = why === 'decommissioned' ? `was decommissioned by ${actor}` : `was contained or revoked by ${actor}`;
    const reason = (what: string) => sql<string>`${`agent ${why}: ${what} agent `}::text || agent_id || ${` ${happened}`}::text`;
    const pending = await trx
      .updateTable('approval_requests')
      .set({ status: 'cancelled', decided_at: now, final_reason: reason('cancelled while pending,') })
      .where('agent_id', 'in', ids)
      .where('status', '=', 'pending')
      .returning(['id', 'agent_id'])
      .execute();
    const unused = await trx
      .updateTable('approval_requests')
      .set({ status: 'cancelled', decided_at: now, final_reason: reason('approved but unused, withdrawn when') })
      .where('agent_id', 'in', ids)
      .where('status', '=', 'approved')
      .where((eb) => eb.or([eb('grant_until', '>', now), eb.and([eb('grant_until', 'is', null), eb('consumed_at', 'is', null)])]))
      .returning(['id', 'agent_id'])
      .execute();
    for (const { id, agent_id: agentId } of [...pending, ...unused]) await this.afterFinal(trx, id, agentId, 'cancelled', actor, now);
    for (const { id, agent_id: agentId } of pending) cancelled.set(agentId, [...(cancelled.get(agentId) ?? []), id]);
    return cancelled;
  }

  /** The person on the route this approver is, or why they may not decide. */
  private personFor(route: RouteSnapshot, who: Approver, row: { requested_by: string; agent_owner: string; escalated: boolean }): Person {
    const matches = (p: Person) => isPerson(p, { slack: who.slack, teams: who.teams }) || who.emails.some((e) => isPerson(p, { email: e })) || isPerson(p, { text: who.actor });
    const policyPerson = this.people.find(matches);
    if (row.requested_by === who.actor || (policyPerson && isPerson(policyPerson, { text: row.requested_by }))) {
      throw new CodedError(ErrorCode.Forbidden, 'you made this request; someone else must decide it');
    }
    if (isPerson(policyPerson ?? { key: '', emails: who.emails, slack: who.slack ? [who.slack] : [], teams: who.teams ? [who.teams] : [], roles: [] }, { text: row.agent_owner })) {
      throw new CodedError(ErrorCode.Forbidden, 'you own this agent; someone else must decide its requests');
    }
    const person = Object.values(route.people).find(matches);
    const filled = person ? route.requirements.filter((r) => r.people.includes(person.key)) : [];
    if (!person || filled.length === 0) {
      throw new CodedError(ErrorCode.Forbidden, `you are not on this request's route (${route.requirements.map((r) => r.roles.join('/')).join(' + ')})`);
    }
    // The route keeps the people it was made with, but the power to act comes from the policy in
    // force now: someone removed from the role since may no longer decide.
    // An escalation widened the first requirement to the escalateTo roles.
    const rolesOf = (r: RouteRequirement) => (row.escalated && r === route.requirements[0] ? [...r.roles, ...route.escalateTo] : r.roles);
    const heldNow = policyPerson?.roles ?? [];
    if (!filled.some((r) => rolesOf(r).some((role) => heldNow.includes(role)))) {
      const allowed = [...new Set(filled.flatMap(rolesOf))];
      // Name the roles they held when the request was made (the ones they lost), else every allowed one.
      const lost = allowed.filter((role) => person.roles.includes(role));
      const roles = lost.length > 0 ? lost : allowed;
      throw new CodedError(ErrorCode.Forbidden, `you are no longer in role ${roles.join(' or ')} under the current policy; someone who is must decide this request`);
    }
    return person;
  }

  /** Requests this person decided, newest first. */
  async decidedBy(actor: string, limit = 10): Promise<ApprovalView[]> {
    const rows = await this.deps.db.selectFrom('approval_decisions').select('request_id').where('actor', '=', actor).orderBy('at', 'desc').limit(limit).execute();
    const views = await Promise.all(rows.map((r) => this.get(r.request_id)));
    return views.filter((v): v is ApprovalView => v !== undefined);
  }

  /**
   * Pending requests this person may decide and has not decided yet, oldest first. Three queries
   * for any number of pending requests; only the ones returned are loaded in full.
   */
  async waitingOn(who: Approver, limit = 20): Promise<ApprovalView[]> {
    const { db } = this.deps;
    const rows = await db.selectFrom('approval_requests').select(['id', 'agent_id', 'requested_by', 'route', 'expires_at', 'escalated_at']).where('status', '=', 'pending').orderBy('created_at').limit(500).execute();
    if (rows.length === 0) return [];
    const now = this.deps.clock.now().getTime();
    const [owners, decided] = await Promise.all([
      db.selectFrom('agents').select(['id', 'owner']).where('id', 'in', [...new Set(rows.map((r) => r.agent_id))]).execute(),
      db.selectFrom('approval_decisions').select(['request_id', 'person_key']).where('request_id', 'in', rows.map((r) => r.id)).execute(),
    ]);
    const ids: string[] = [];
    for (const row of rows) {
      if (ids.length >= limit) break;
      if (row.expires_at.getTime() <= now) continue;
      let person: Person;
      try {
        person = this.personFor(row.route, who, { requested_by: row.requested_by, agent_owner: owners.find((o) => o.id === row.agent_id)?.owner ?? '', escalated: row.escalated_at !== null });
      } catch (err) {
        if (err instanceof CodedError) continue;
        throw err;
      }
      if (decided.some((d) => d.request_id === row.id && d.person_key === person.key)) continue;
      ids.push(row.id);
    }
    const views = await Promise.all(ids.map((id) => this.get(id)));
    return views.filter((v): v is ApprovalView => v !== undefined);
  }

  /** Throws the same refusal `decide` would, without deciding (used before opening the denial form). */
  async checkDecider(id: string, who: Approver): Promise<ApprovalView> {
    const row = await this.deps.db.selectFrom('approval_requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`unknown approval request ${id}`);
    if (row.status !== 'pending') throw conflict(`this request is already ${row.status}`);
    const agent = await loadAgent(this.deps.db, row.agent_id);
    const person = this.personFor(row.route, who, { requested_by: row.requested_by, agent_owner: agent?.owner ?? '', escalated: row.escalated_at !== null });
    const already = await this.deps.db.selectFrom('approval_decisions').select('decision').where('request_id', '=', id).where('person_key', '=', person.key).executeTakeFirst();
    if (already) throw conflict('you have already decided this request');
    return (await this.get(id))!;
  }

  /** Approve or deny. One person decides once; concurrent clicks serialize on the row lock. */
  async decide(id: string, who: Approver, decision: 'approve' | 'deny', reason: string | null): Promise<{ view: ApprovalView; final: boolean }> {
    const { db, clock } = this.deps;
    if (decision === 'deny' && !reason?.trim()) throw invalid('a denial needs a reason');
    const out = await db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('approval_requests').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) throw notFound(`unknown approval request ${id}`);
      if (row.status !== 'pending') throw conflict(`this request is already ${row.status}`);
      const now = clock.now();
      if (row.expires_at.getTime() <= now.getTime()) throw conflict('this request has expired');
      const agent = await loadAgent(trx, row.agent_id);
      const person = this.personFor(row.route, who, { requested_by: row.requested_by, agent_owner: agent?.owner ?? '', escalated: row.escalated_at !== null });
      const inserted = await trx
        .insertInto('approval_decisions')
        .values({ request_id: id, person_key: person.key, decision, reason: reason?.trim() || null, actor: who.actor, via: who.platform, at: now })
        .onConflict((oc) => oc.columns(['request_id', 'person_key']).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw conflict('you have already decided this request');
      const payload = { requestId: id, decision, reason, by: who.actor, via: who.platform };
      await appendAudit(trx, { actor: who.actor, action: 'approval.decision', subject: row.agent_id, payload, at: now });
      await emitEvent(trx, 'approval.decision', { agentId: row.agent_id, ...payload }, now);
      let final: ApprovalStatus | null = null;
      if (decision === 'deny') final = 'denied';
      else {
        const approvers = (await trx.selectFrom('approval_decisions').select('person_key').where('request_id', '=', id).where('decision', '=', 'approve').execute()).map((d) => d.person_key);
        if (isApproved(row.route, approvers)) final = 'approved';
      }
      if (final) {
        const grantUntil = final === 'approved' && row.route.grantForMs ? new Date(now.getTime() + row.route.grantForMs) : null;
        await trx
          .updateTable('approval_requests')
          .set({ status: final, decided_at: now, final_reason: final === 'denied' ? `denied by ${who.actor}: ${reason}` : `approved (last by ${who.actor})`, grant_until: grantUntil })
          .where('id', '=', id)
          .execute();
        await this.afterFinal(trx, id, row.agent_id, final, who.actor, now);
      } else {
        await addOutboxJob(trx, { jobName: APPROVAL_CARDS_JOB, payload: { requestId: id } }, now);
      }
      return { final: final !== null, agentId: row.agent_id };
    });
    if (out.final) await this.changed(out.agentId);
    return { view: (await this.get(id))!, final: out.final };
  }

  /** A timer fired: remind, escalate or expire. Idempotent: a request that is no longer pending is left alone. */
  async timer(id: string, kind: TimerKind): Promise<string> {
    const { db, clock } = this.deps;
    let expiredFor: string | undefined;
    const outcome = await db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('approval_requests').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row || row.status !== 'pending') return 'not_pending';
      const now = clock.now();
      if (kind === 'expire') {
        if (row.expires_at.getTime() > now.getTime()) return 'not_due';
        await trx.updateTable('approval_requests').set({ status: 'expired', decided_at: now, final_reason: `expired at ${row.expires_at.toISOString()} without a decision` }).where('id', '=', id).execute();
        await this.afterFinal(trx, id, row.agent_id, 'expired', 'system:timer', now);
        expiredFor = row.agent_id;
        return 'expired';
      }
      if (kind === 'remind') {
        // Once: a timer rebuilt after Redis lost its data (or re-run) must not remind again.
        if (row.reminded_at) return 'already_reminded';
        await trx.updateTable('approval_requests').set({ reminded_at: now }).where('id', '=', id).execute();
      }
      if (kind === 'escalate') {
        if (row.escalated_at) return 'already_escalated';
        const escalatePeople = this.people.filter((p) => p.roles.some((r) => row.route.escalateTo.includes(r)) && row.route.people[p.key] !== undefined).map((p) => p.key);
        const route = escalate(row.route, escalatePeople);
        await trx.updateTable('approval_requests').set({ escalated_at: now, route: JSON.stringify(route) }).where('id', '=', id).execute();
        await appendAudit(trx, { actor: 'system:timer', action: 'approval.escalated', subject: row.agent_id, payload: { requestId: id, to: row.route.escalateTo }, at: now });
        await emitEvent(trx, 'approval.escalated', { agentId: row.agent_id, requestId: id, to: row.route.escalateTo }, now);
      }
      // Reminders and escalations both show up on the cards.
      await addOutboxJob(trx, { jobName: APPROVAL_CARDS_JOB, payload: kind === 'remind' ? { requestId: id, remind: true } : { requestId: id, escalated: true } }, now);
      return kind === 'remind' ? 'reminded' : 'escalated';
    });
    if (expiredFor) await this.changed(expiredFor);
    return outcome;
  }

  /** Tells the views; a failure only delays them until their next poll. */
  private async changed(agentId: string): Promise<void> {
    await this.deps.onChanged?.(agentId).catch(() => undefined);
  }

  /**
   * The timers a pending request still needs, from Postgres alone (for the sweep to re-add after Redis
   * lost its delayed jobs): reminder unless sent, escalation unless done, expiry always. Ids are the
   * deterministic ones the request was created with, so re-adding is a no-op for a timer Redis still
   * holds. Pages through pending requests oldest first.
   */
  async pendingTimers(after: { createdAt: Date; id: string } | null, limit = 500): Promise<{ timers: { jobId: string; requestId: string; kind: TimerKind; runAt: Date }[]; next: { createdAt: Date; id: string } | null }> {
    const { db } = this.deps;
    let query = db
      .selectFrom('approval_requests')
      .select(['id', 'route', 'created_at', 'expires_at', 'escalated_at', 'reminded_at'])
      .where('status', '=', 'pending')
      .orderBy('created_at')
      .orderBy('id')
      .limit(limit);
    if (after) query = query.where((eb) => eb.or([eb('created_at', '>', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '>', after.id)])]));
    const rows = await query.execute();
    if (rows.length === 0) return { timers: [], next: null };
    // (A request made before timer ids were deterministic may get a second copy of a timer under the
    // new id: harmless, since every timer is idempotent in Postgres: reminded_at, escalated_at, status.)
    const idOf = approvalTimerJobId;
    const timers: { jobId: string; requestId: string; kind: TimerKind; runAt: Date }[] = [];
    for (const row of rows) {
      const created = row.created_at.getTime();
      if (row.route.remindAfterMs !== null && !row.reminded_at) timers.push({ jobId: idOf(row.id, 'remind'), requestId: row.id, kind: 'remind', runAt: new Date(created + row.route.remindAfterMs) });
      if (row.route.escalateAfterMs !== null && !row.escalated_at) timers.push({ jobId: idOf(row.id, 'escalate'), requestId: row.id, kind: 'escalate', runAt: new Date(created + row.route.escalateAfterMs) });
      timers.push({ jobId: idOf(row.id, 'expire'), requestId: row.id, kind: 'expire', runAt: row.expires_at });
    }
    const last = rows[rows.length - 1]!;
    return { timers, next: rows.length < limit ? null : { createdAt: last.created_at, id: last.id } };
  }

  private async afterFinal(trx: DbOrTrx, id: string, agentId: string, status: ApprovalStatus, actor: string, now: Date): Promise<void> {
    const type = `approval.${status}` as EventType;
    await appendAudit(trx, { actor, action: type, subject: agentId, payload: { requestId: id, status }, at: now });
    await emitEvent(trx, type, { agentId, requestId: id, status }, now);
    await addOutboxJob(trx, { jobName: APPROVAL_CARDS_JOB, payload: { requestId: id } }, now);
    await addOutboxJob(trx, { jobName: APPROVAL_TIMERS_CANCEL_JOB, payload: { requestId: id } }, now);
    const row = await trx.selectFrom('approval_requests').select('callback_url').where('id', '=', id).executeTakeFirst();
    if (row?.callback_url) await addOutboxJob(trx, { jobName: APPROVAL_CALLBACK_JOB, payload: { requestId: id } }, now);
  }

  /**
   * The decision path's one statement: uses up the first still-unused of these single-use approvals
   * (found in the replica's view), exactly once across replicas. Answers its id, or undefined when
   * another request got there first.
   */
  async consume(agentId: string, candidateIds: readonly string[]): Promise<string | undefined> {
    return consumeApproval(this.deps.db, agentId, candidateIds, this.deps.clock.now());
  }
}
