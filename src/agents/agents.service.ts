import { randomUUID } from 'node:crypto';
import { isDeadlock, isUniqueViolation, type Db, type DbOrTrx } from '../db/database.js';
import { holdOn } from '../fleet/fleet.repository.js';
import type { Clock } from '../core/clock.js';
import type { Agent, TouchedGrant } from '../domain/agent.js';
import { grantStatus } from '../domain/agent.js';
import { freshEvaluationRefusal, planAction, planLift, type ActionCommand, type ActionPlan } from '../domain/actions.js';
import { conflict, notFound } from '../domain/errors.js';
import type { EventType } from '../domain/events.js';
import { appendAudit } from '../audit/audit.repository.js';
import { addOutboxJob, emitEvent } from '../outbox/outbox.repository.js';
import { claimConfirmation } from '../confirmations/confirmations.repository.js';
import {
  closeIncident,
  findActionByIdempotencyKey,
  findOpenIncident,
  incidentAwaitingEvaluation,
  liftActions,
  loadAgent,
  loadAgentForAction,
  writeActionRows,
  nextPermissionVersion,
  setAgentState,
  markDecommissioned,
  removeAllGrants,
  type AgentRegistration,
} from './agents.repository.js';
import { cancelOpenRestoreConfirmations } from '../confirmations/confirmations.repository.js';
import type { JobName, JobPayload } from '../queue/job-contracts.js';
import { agentsWithHeldEvents, applyRegistrations, decommissionedMessage, RegistrationRaced, registerNewAgents, ROWS_UNDER_HEAD_LOCK_MAX, type EventRecording, type RegistrationBatch, type RegistrationItem, type RegistrationOutcome } from './registration-batch.js';
import { tracing } from '../observability/tracing.js';
import { WriteBatcher } from './write-batcher.js';
import { closeFleetIncidentIfLifted, fleetIncidentOfAction } from '../fleet/fleet.repository.js';
import { commitVersionedChanges, eventRow, outboxRow, type OutboxRow } from './versioned-commit.js';

/** Told after a commit that changed an agent's permissions, so every replica's view updates. */
export interface PermissionChangePublisher {
  publishChanged(agentId: string, version: bigint): Promise<void>;
  /**
   * Optional: after a commit that drew exactly these agents' versions and no other, the agents as
   * they now stand (a registration batch or a fleet action builds them from what it wrote): the
   * local view stores them without reading them back. Trust fields left undefined (a fleet action
   * does not read them) are the view's own; `approvalsOf` names agents whose open approvals the
   * commit changed; `released` names fleet holds the commit released (the view forgets them once
   * it stores the agents). Without it, `publishChanged` of the highest version is used.
   */
  publishWritten?(agents: readonly Agent[], options?: { approvalsOf?: readonly string[]; released?: readonly string[] }): Promise<void>;
  /** Optional: the agent as this replica's view holds it (a hint only: the view may lag). */
  get?(agentId: string): Agent | undefined;
}

export interface AgentServiceDeps {
  db: Db;
  clock: Clock;
  publisher: PermissionChangePublisher;
  /** Called after commit when outbox rows were written, to wake the relay early. */
  onOutboxWrite?: () => void;
  /** Called after a registration (or update) commits; never throws. */
  onRegistered?: (agentId: string) => Promise<unknown>;
  /**
   * This process is its own outbox relay and has no events webhook: registrations write their
   * events as already published (the relay would only mark them so). Not with tracing on, whose
   * relay gives each row a span.
   */
  eventsRecordedOnly?: boolean;
  /** How concurrent registrations share transactions (defaults: `REGISTRATION_BATCH_*`). */
  batching?: { maxBatch?: number; concurrency?: number };
  /** Containing or revoking an agent cancels its pending approval requests. */
  approvals?: {
    cancelPendingForAgent(trx: DbOrTrx, agentId: string, actor: string, now: Date, why?: 'contained' | 'decommissioned'): Promise<string[]>;
    cancelPendingForAgents(trx: DbOrTrx, agentIds: readonly string[], actor: string, now: Date, why?: 'contained' | 'decommissioned'): Promise<Map<string, string[]>>;
  };
}

/** Most concurrent registrations one transaction takes. */
export const REGISTRATION_BATCH_MAX = 64;
/**
 * Registration batches in flight at once per process. One: a batch of new agents is one statement
 * (`registerNewAgents`), so there is nothing to overlap, and the calls that arrive meanwhile make
 * the next batch larger (writes part of `bench/scale.ts`, 16 clients, five paired runs: one batch
 * at a time did 1.05-1.43x the registrations per second of two).
 */
export const REGISTRATION_BATCH_CONCURRENCY = 1;

export const LIFT_ACTION_JOB = 'lift-action' satisfies JobName;
/** Tells the chat platforms to post or update an incident's notice (queue `notify`). */
export const INCIDENT_UPDATE_JOB = 'incident-update' satisfies JobName;

export type IncidentUpdate = JobPayload<typeof INCIDENT_UPDATE_JOB>;

/** A break-glass restore: a loud notice in the incidents channel and a direct message to the other restorers. */
export const BREAK_GLASS_NOTICE_JOB = 'break-glass' satisfies JobName;

export type BreakGlassNotice = JobPayload<typeof BREAK_GLASS_NOTICE_JOB>;

/** Tells the chat platforms an agent was decommissioned (queue `notify`). */
export const DECOMMISSION_NOTICE_JOB = 'agent-decommissioned' satisfies JobName;

export type DecommissionNotice = JobPayload<typeof DECOMMISSION_NOTICE_JOB>;

export interface DecommissionResult {
  agentId: string;
  status: 'decommissioned';
  statusBefore: Agent['status'];
  decommissionedAt: string;
  decommissionedBy: string;
  reason: string;
  grantsRemoved: TouchedGrant[];
  approvalRequestsCancelled: string[];
  /** The incident that was open and is now closed, if any. */
  incidentClosed: string | null;
  /** The permission version this committed (absent on a replay). */
  version?: string;
  /** True when the agent was already decommissioned: this is that earlier result, nothing changed. */
  replayed: boolean;
}

function decommissionResultOf(
  agent: Agent,
  record: { at: Date; by: string; reason: string },
  grantsRemoved: TouchedGrant[],
  cancelled: string[],
  incident: string | null,
  replayed: boolean,
): DecommissionResult {
  return {
    agentId: agent.id,
    status: 'decommissioned',
    statusBefore: replayed ? 'decommissioned' : agent.status,
    decommissionedAt: record.at.toISOString(),
    decommissionedBy: record.by,
    reason: record.reason,
    grantsRemoved,
    approvalRequestsCancelled: cancelled,
    incidentClosed: incident,
    replayed,
  };
}

export interface ActionResult {
  dryRun: boolean;
  action: {
    id: string | null;
    kind: ActionCommand['kind'];
    agentId: string;
    reason: string;
    actor: string;
    createdAt: string;
    expiresAt: string | null;
    scopes: string[];
  };
  statusBefore: Agent['status'];
  statusAfter: Agent['status'];
  grantsSuspended: TouchedGrant[];
  grantsRevoked: TouchedGrant[];
  grantsRestored: TouchedGrant[];
  liftedActions: string[];
  /** Approval requests this action cancels (approvals arrive with the approvals capability). */
  pendingApprovalsCancelled: string[];
  /** The incident this action opened, joined or closed. */
  incidentId: string | null;
  /** True when the same request (same idempotency key) was applied before: this is that answer. */
  replayed?: boolean;
  /** A restore through the break-glass path: one person, no confirmation (policy `permissions.breakGlass`). */
  breakGlass?: true;
  /**
   * The permission version this action committed (decimal string; absent on a dry run). A decision
   * with `atLeastVersion` set to it is answered only by a replica that already sees this action.
   */
  version?: string;
}

export const EVENT_FOR: Record<ActionCommand['kind'], EventType> = {
  narrow: 'agent.narrowed',
  contain: 'agent.contained',
  revoke: 'agent.revoked',
  restore: 'agent.restored',
};

export function resultOf(agentId: string, cmd: ActionCommand, plan: ActionPlan, id: string | null, now: Date, dryRun: boolean): ActionResult {
  return {
    dryRun,
    action: {
      id,
      kind: cmd.kind,
      agentId,
      reason: cmd.reason,
      actor: cmd.actor,
      createdAt: now.toISOString(),
      expiresAt: plan.expiresAt?.toISOString() ?? null,
      scopes: plan.scopes,
    },
    statusBefore: plan.statusBefore,
    statusAfter: plan.statusAfter,
    grantsSuspended: cmd.kind === 'revoke' ? [] : plan.grantsTakenAway,
    grantsRevoked: cmd.kind === 'revoke' ? plan.grantsTakenAway : [],
    grantsRestored: plan.grantsGivenBack,
    liftedActions: plan.lifts.map((a) => a.id),
    pendingApprovalsCancelled: [],
    incidentId: null,
  };
}

/** Use cases on agents: register, act (narrow/contain/revoke/restore), lift an expired action. */
export class AgentService {
  private readonly registrations: WriteBatcher<RegistrationItem, RegistrationOutcome>;

  constructor(private readonly deps: AgentServiceDeps) {
    this.registrations = new WriteBatcher((items) => this.registerBatch(items), {
      maxBatch: deps.batching?.maxBatch ?? REGISTRATION_BATCH_MAX,
      concurrency: deps.batching?.concurrency ?? REGISTRATION_BATCH_CONCURRENCY,
      key: (item) => item.reg.id,
    });
  }

  /**
   * Registers or updates one agent (PUT /v1/agents/{id}). Concurrent calls share transactions
   * (`WriteBatcher`): each answer comes after the shared commit, with the agent's own version;
   * a refused registration (409) fails only its own caller.
   */
  async register(reg: AgentRegistration, actor: string): Promise<{ created: boolean; changed: boolean; agent: Agent }> {
    const outcome = await this.registrations.submit({ reg, actor });
    if (!outcome.ok) throw outcome.error;
    return { created: outcome.created, changed: outcome.changed, agent: outcome.agent };
  }

  /**
   * Registers distinct agents in one transaction (one head-lock hold, one audit entry per agent
   * that changed), publishes the changes once, then applies webhook events held for them. When
   * the batch fails as a whole, each registration is tried on its own, so an error reaches only
   * the registration that caused it (and is thrown: it is not a refusal).
   */
  async registerMany(items: RegistrationItem[]): Promise<RegistrationOutcome[]> {
    try {
      return await this.registerBatch(items);
    } catch (err) {
      if (items.length <= 1) throw err;
      const outcomes: RegistrationOutcome[] = [];
      for (const item of items) outcomes.push(...(await this.registerBatch([item])));
      return outcomes;
    }
  }

  private eventRecording(): EventRecording {
    return { recordedOnly: this.deps.eventsRecordedOnly === true && !tracing };
  }

  private async registerBatch(items: RegistrationItem[]): Promise<RegistrationOutcome[]> {
    const { db, clock } = this.deps;
    let batch: RegistrationBatch | null = null;
    // Agents this replica's view has never seen are most likely new: try them in one statement
    // (`registerNewAgents`), which writes nothing if one exists after all; then the ordinary path.
    const { publisher } = this.deps;
    if (publisher.get && items.length <= ROWS_UNDER_HEAD_LOCK_MAX && items.every((i) => publisher.get!(i.reg.id) === undefined)) {
      batch = await registerNewAgents(db, items, clock.now(), this.eventRecording()).catch((err: unknown) => {
        // Created by another writer meanwhile (unique violation), or a deadlock Postgres broke:
        // nothing was written; the ordinary path locks and reads what is there now.
        if (isUniqueViolation(err) || isDeadlock(err)) return null;
        throw err;
      });
    }
    for (let attempt = 1; !batch; attempt++) {
      try {
        batch = await db.transaction().execute((trx) => applyRegistrations(trx, items, clock.now(), this.eventRecording()));
        break;
      } catch (err) {
        // Another writer created one of these agents after our read: nothing committed; the next
        // attempt reads (and checks) that agent. Agents are never deleted, so one retry settles it.
        // Or Postgres broke a deadlock by failing this transaction: a small batch takes the head
        // lock before writing a new agent's row, an import's part writes it before, so the two
        // registering the same new agent at once can wait on each other; nothing committed either.
        if (!(err instanceof RegistrationRaced || isDeadlock(err)) || attempt >= 3) throw err;
      }
    }
    const { outcomes } = batch;
    const changed: Agent[] = [];
    const registered: string[] = [];
    for (const o of outcomes) {
      if (!o.ok) continue;
      registered.push(o.agent.id);
      if (o.changed) changed.push(o.agent);
    }
    await this.afterWritten(changed);
    // After the commit: webhook events held for these agents (unknown when they came) apply now.
    if (this.deps.onRegistered && registered.length > 0) {
      // Read in the batch's write when it wrote anything. If even this read fails (Postgres away),
      // the held events stay held: the sweep applies them (every 30 s), so nothing is lost by not
      // trying each agent here; likewise for an event held between that read and the commit.
      const held = batch.held ?? (await agentsWithHeldEvents(db, registered).catch(() => []));
      for (const id of held) await this.deps.onRegistered(id);
    }
    return outcomes;
  }

  /**
   * Narrow, contain, revoke or restore. With dryRun, reports the blast radius and changes nothing.
   * With `confirmation`, the action is what that confirmation asked for: it is claimed in the same
   * transaction, after the agent row is locked, and the action is refused if it may not be used.
   */
  async act(agentId: string, cmd: ActionCommand, options: { dryRun?: boolean; idempotencyKey?: string; confirmation?: { id: string }; freshEvaluation?: boolean } = {}): Promise<ActionResult> {
    const { db, clock } = this.deps;
    const { idempotencyKey } = options;
    if (idempotencyKey && !options.dryRun) {
      const before = await this.replayed(idempotencyKey);
      if (before) return before;
    }
    if (options.dryRun) {
      const agent = await loadAgent(db, agentId);
      if (!agent) throw notFound(`unknown agent ${agentId}`);
      if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'there is nothing left to act on'));
      if (cmd.kind === 'restore' && agent.activeActions.length === 0) await refuseIfHeld(db, agentId);
      const now = clock.now();
      const result = resultOf(agentId, cmd, planAction(agent, cmd, now), null, now, true);
      if (cmd.kind === 'contain' || cmd.kind === 'revoke') {
        const pending = await db.selectFrom('approval_requests').select('id').where('agent_id', '=', agentId).where('status', '=', 'pending').execute();
        result.pendingApprovalsCancelled = pending.map((p) => p.id);
      }
      return result;
    }
    type Applied = { result: ActionResult; version: bigint } | { replayed: ActionResult };
    const out = await this.applyOnce(idempotencyKey, () => db.transaction().execute(async (trx): Promise<Applied> => {
      // The row lock makes two responders acting at once take turns: the second sees the first's
      // result. The read after it brings the open incident and whether approvals are open too.
      const subject = await loadAgentForAction(trx, agentId);
      if (!subject) throw notFound(`unknown agent ${agentId}`);
      const { agent, openIncidentId } = subject;
      if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'there is nothing left to act on'));
      // Held by a containment by selector whose records are being written: a restore would find nothing yet.
      if (cmd.kind === 'restore' && agent.activeActions.length === 0) await refuseIfHeld(trx, agentId);
      // A request with the same key that committed while we waited for the lock: its answer, not a second action.
      const prior = idempotencyKey ? await findActionByIdempotencyKey(trx, idempotencyKey) : undefined;
      if (prior) return { replayed: { ...(prior.result as ActionResult), replayed: true } };
      // The policy's restore.freshEvaluation, under the lock: the caller checked before asking, but an
      // incident opened since (a ttl lift, then a new contain) needs an evaluation of its own.
      if (options.freshEvaluation && cmd.kind === 'restore' && openIncidentId) {
        const since = await incidentAwaitingEvaluation(trx, agentId);
        if (since) throw conflict(freshEvaluationRefusal(agentId, since));
      }
      const now = clock.now();
      if (options.confirmation) {
        await claimConfirmation(trx, options.confirmation.id, { agentId, openIncidentId, activeActionIds: agent.activeActions.map((a) => a.id), actor: cmd.actor, now });
      }
      const plan = planAction(agent, cmd, now);
      const id = randomUUID();
      // One incident per agent from the first restriction until restore: every step joins it.
      const opens = !openIncidentId && cmd.kind !== 'restore' ? randomUUID() : null;
      const incidentId = openIncidentId ?? opens;
      const result: ActionResult = { ...resultOf(agentId, cmd, plan, id, now, false), incidentId, ...(cmd.breakGlass && cmd.kind === 'restore' ? { breakGlass: true as const } : {}) };
      // Only an agent with open approval requests pays for cancelling them (a read, an audit entry and notices each).
      if ((cmd.kind === 'contain' || cmd.kind === 'revoke') && this.deps.approvals) {
        result.pendingApprovalsCancelled = subject.hasOpenApprovals ? await this.deps.approvals.cancelPendingForAgent(trx, agentId, cmd.actor, now) : [];
      }
      // Every row of the action, the audit head's lock and the version in one statement (the stored
      // answer carries the version); then the audit entry and the event (which carry it too) and the
      // outbox rows, under that lock, held from there to the commit.
      const written = await writeActionRows(trx, {
        action: {
          id,
          agentId,
          kind: cmd.kind,
          scopes: plan.scopes,
          reason: cmd.reason,
          actor: cmd.actor,
          ttlMs: cmd.ttlMs ?? null,
          expiresAt: plan.expiresAt,
          touched: cmd.kind === 'restore' ? plan.grantsGivenBack : plan.grantsTakenAway,
          now,
          incidentId,
          idempotencyKey: idempotencyKey ?? null,
          result,
        },
        lifts: plan.lifts.map((a) => a.id),
        status: plan.statusAfter,
        openIncident: opens,
        closeIncident: incidentId && plan.statusAfter === 'active' ? incidentId : null,
      });
      // A cancelled restore confirmation's request in the incident thread shows the outcome.
      const jobs: OutboxRow[] = written.cancelled.map((confirmationId) => outboxRow('confirmation-request', { confirmationId }, now));
      if (plan.expiresAt) jobs.push(outboxRow(LIFT_ACTION_JOB, { actionId: id, agentId }, now, plan.expiresAt));
      if (incidentId) {
        const update: IncidentUpdate = { incidentId, actionId: id, event: 'action' };
        jobs.push(outboxRow(INCIDENT_UPDATE_JOB, update, now));
      }
      if (result.breakGlass) {
        const notice: BreakGlassNotice = { agentId, actionId: id, actor: cmd.actor, reason: cmd.reason, incidentId, at: now.toISOString() };
        jobs.push(outboxRow(BREAK_GLASS_NOTICE_JOB, notice, now));
      }
      const versioned = (v: bigint) => {
        const { dryRun: _dryRun, ...auditPayload } = { ...result, version: v.toString() };
        return auditPayload;
      };
      const [version] = await commitVersionedChanges(
        trx,
        [
          {
            agentId,
            audit: (v) => ({ actor: cmd.actor, action: `agent.${cmd.kind}`, subject: agentId, payload: versioned(v), at: now }),
            outbox: (v) => [eventRow(EVENT_FOR[cmd.kind], { ...versioned(v), agentId }, now), ...jobs],
          },
        ],
        written.head,
      );
      result.version = version!.toString();
      return { result, version: version! };
    }));
    if ('replayed' in out) return out.replayed;
    await this.afterCommit(agentId, out.version);
    return out.result;
  }

  /** The answer of the action taken with this idempotency key, as a replay (`replayed: true`); undefined when none was. */
  async replayed(idempotencyKey: string): Promise<ActionResult | undefined> {
    const before = await findActionByIdempotencyKey(this.deps.db, idempotencyKey);
    return before ? { ...(before.result as ActionResult), replayed: true } : undefined;
  }

  /**
   * Runs an action; when a concurrent request with the same idempotency key won the race (unique
   * index), answers with that request's result instead of an error.
   */
  private async applyOnce<T>(key: string | undefined, run: () => Promise<T>): Promise<T | { replayed: ActionResult }> {
    try {
      return await run();
    } catch (err) {
      if (key && isUniqueViolation(err, 'agent_actions_idempotency_uq')) {
        const before = await findActionByIdempotencyKey(this.deps.db, key);
        if (before) return { replayed: { ...(before.result as ActionResult), replayed: true } };
      }
      throw err;
    }
  }

  /**
   * Retires an agent for good: every grant is removed and every action in force lifted, its pending
   * and approved-but-unused approval requests are cancelled, open restore confirmations end, an open
   * incident closes, and decisions answer `deny` with `agent_decommissioned`. The row, its id and its
   * history (audit, evaluations, packets, incidents) stay. Audited, announced as an event and in the
   * incidents channel. Idempotent: a second call answers the first one's result with `replayed`.
   */
  async decommission(agentId: string, input: { actor: string; reason: string }): Promise<DecommissionResult> {
    const { db, clock } = this.deps;
    const out = await db.transaction().execute(async (trx) => {
      const agent = await loadAgent(trx, agentId, { forUpdate: true });
      if (!agent) throw notFound(`unknown agent ${agentId}`);
      if (agent.status === 'decommissioned' && agent.decommissioned) {
        return { result: decommissionResultOf(agent, agent.decommissioned, [], [], null, true), version: null };
      }
      const now = clock.now();
      const grantsRemoved = await removeAllGrants(trx, agentId, input.actor, now);
      const lifted = agent.activeActions.map((a) => a.id);
      await liftActions(trx, lifted, { actor: input.actor, reason: `agent decommissioned: ${input.reason}`, byActionId: null, now });
      const cancelled = this.deps.approvals ? await this.deps.approvals.cancelPendingForAgent(trx, agentId, input.actor, now, 'decommissioned') : [];
      await cancelOpenRestoreConfirmations(trx, agentId, { actor: input.actor, reason: 'agent decommissioned', now });
      const incident = await findOpenIncident(trx, agentId);
      if (incident) await closeIncident(trx, incident.id, input.actor, now);
      const version = await nextPermissionVersion(trx);
      await markDecommissioned(trx, agentId, { version, actor: input.actor, reason: input.reason, now });
      const record = { at: now, by: input.actor, reason: input.reason };
      const result = decommissionResultOf(agent, record, grantsRemoved, cancelled, incident?.id ?? null, false);
      result.version = version.toString();
      const { replayed: _replayed, ...payload } = result;
      await appendAudit(trx, { actor: input.actor, action: 'agent.decommissioned', subject: agentId, payload, at: now });
      await emitEvent(trx, 'agent.decommissioned', { ...payload, agentId }, now);
      const notice: DecommissionNotice = { agentId, actor: input.actor, reason: input.reason, at: now.toISOString() };
      await addOutboxJob(trx, { jobName: DECOMMISSION_NOTICE_JOB, payload: notice }, now);
      return { result, version };
    });
    if (out.version !== null) await this.afterCommit(agentId, out.version);
    return out.result;
  }

  /**
   * Lifts an action whose ttl has run out (from the lift job, or the sweep when that job was lost).
   * Idempotent: an action already lifted (by a restore, or by an earlier run of the same job) or
   * not yet due is left alone and reported as such.
   */
  async liftExpired(actionId: string, agentId: string): Promise<'lifted' | 'not_in_force' | 'not_due'> {
    const { db, clock } = this.deps;
    const out = await db.transaction().execute(async (trx) => {
      const agent = await loadAgent(trx, agentId, { forUpdate: true });
      const action = agent?.activeActions.find((a) => a.id === actionId);
      if (!agent || !action) return { outcome: 'not_in_force' as const };
      const now = clock.now();
      if (!action.expiresAt || action.expiresAt.getTime() > now.getTime()) return { outcome: 'not_due' as const };
      const plan = planLift(agent, actionId, now);
      const actor = 'system:ttl';
      const reason = `ttl of ${action.kind} ${actionId} ran out`;
      await liftActions(trx, [actionId], { actor, reason, byActionId: null, now });
      const version = await nextPermissionVersion(trx);
      await setAgentState(trx, agentId, plan.statusAfter, version, actor, now);
      const payload = {
        actionId,
        kind: action.kind,
        statusBefore: plan.statusBefore,
        statusAfter: plan.statusAfter,
        grantsRestored: plan.grantsGivenBack,
        expiresAt: action.expiresAt.toISOString(),
      };
      await appendAudit(trx, { actor, action: 'agent.action_expired', subject: agentId, payload, at: now });
      await emitEvent(trx, 'agent.action_expired', { agentId, ...payload }, now);
      const incident = await findOpenIncident(trx, agentId);
      if (incident) {
        if (plan.statusAfter === 'active') await closeIncident(trx, incident.id, actor, now);
        const update: IncidentUpdate = { incidentId: incident.id, actionId, event: 'expired' };
        await addOutboxJob(trx, { jobName: INCIDENT_UPDATE_JOB, payload: update }, now);
      }
      return { outcome: 'lifted' as const, version };
    });
    if (out.outcome === 'lifted') await this.afterCommit(agentId, out.version);
    // Part of a fleet action: the fleet incident ends with the last of its agents lifted, as a single
    // incident does. Checked after each lift commits (the call after the last one sees them all), and
    // again when a retried lift finds it done, so a crash in between does not leave it open.
    if (out.outcome !== 'not_due') {
      const fleetIncidentId = await fleetIncidentOfAction(db, actionId);
      if (fleetIncidentId) await closeFleetIncidentIfLifted(db, fleetIncidentId, 'system:ttl', clock.now());
    }
    return out.outcome;
  }

  /**
   * After a batch committed: one publish, of its highest version. A replica's catch-up reads every
   * agent above the version it holds, so that one message brings it the whole batch (versions are
   * drawn in commit order, see `commitVersionedChanges`).
   */
  private async afterCommitMany(changes: readonly { agentId: string; version: bigint }[]): Promise<void> {
    if (changes.length === 0) return;
    let last = changes[0]!;
    for (const c of changes) if (c.version > last.version) last = c;
    await this.afterCommit(last.agentId, last.version);
  }

  /** After a registration batch committed: its agents, built from what it wrote, each with the version it drew. */
  private async afterWritten(agents: readonly Agent[]): Promise<void> {
    if (agents.length === 0) return;
    const { publisher } = this.deps;
    if (!publisher.publishWritten) return this.afterCommitMany(agents.map((a) => ({ agentId: a.id, version: a.version })));
    this.deps.onOutboxWrite?.();
    // Publishing can fail (Redis down); replicas then catch up through their version poll.
    await publisher.publishWritten(agents).catch(() => undefined);
  }

  private async afterCommit(agentId: string, version: bigint): Promise<void> {
    this.deps.onOutboxWrite?.();
    // Publishing can fail (Redis down); replicas then catch up through their version poll.
    await this.deps.publisher.publishChanged(agentId, version).catch(() => undefined);
  }
}

/** The agent as the REST API and chat show it: status, grants with their effective state. */
export function presentAgent(agent: Agent, now: Date) {
  return {
    id: agent.id,
    name: agent.name,
    owner: agent.owner,
    riskTier: agent.riskTier,
    status: agent.status,
    // Score and tier arrive with the trust-data capability; until then they are unknown, not zero.
    score: null,
    tier: null,
    grants: agent.grants.map((g) => {
      const s = grantStatus(agent, g, now);
      return {
        id: g.id,
        scope: g.scope,
        constraints: g.constraints,
        keepInContainment: g.keepInContainment,
        expiresAt: g.expiresAt?.toISOString() ?? null,
        state: s.state,
        heldBy: s.heldBy ? { actionId: s.heldBy.id, kind: s.heldBy.kind } : null,
        grantedBy: g.grantedBy,
        grantedAt: g.grantedAt.toISOString(),
      };
    }),
    activeActions: agent.activeActions.map((a) => ({
      id: a.id,
      kind: a.kind,
      scopes: a.scopes,
      reason: a.reason,
      actor: a.actor,
      createdAt: a.createdAt.toISOString(),
      expiresAt: a.expiresAt?.toISOString() ?? null,
      grants: a.touched,
    })),
    updatedAt: agent.updatedAt.toISOString(),
    version: agent.version.toString(),
    ...(agent.decommissioned ? { decommissioned: { at: agent.decommissioned.at.toISOString(), by: agent.decommissioned.by, reason: agent.decommissioned.reason } } : {}),
  };
}

/** A restore of an agent a fleet hold holds before its contain is written: refused, saying so (not "nothing to restore"). */
async function refuseIfHeld(db: DbOrTrx, agentId: string): Promise<void> {
  const hold = await holdOn(db, agentId);
  if (hold) {
    throw conflict(`agent ${agentId} is held by the fleet containment ${hold.id} (${hold.reason}), whose records are being written: retry in a few seconds, or restore by the same selector`);
  }
}
