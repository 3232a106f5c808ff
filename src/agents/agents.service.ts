import { randomUUID } from 'node:crypto';
import type { Db, DbOrTrx } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { Agent, TouchedGrant } from '../domain/agent.js';
import { grantStatus } from '../domain/agent.js';
import { planAction, planLift, type ActionCommand, type ActionPlan } from '../domain/actions.js';
import { conflict, notFound } from '../domain/errors.js';
import { wideningChanges } from '../domain/widening.js';
import type { EventType } from '../domain/events.js';
import { appendAudit } from '../audit/audit.repository.js';
import { addOutboxJob, emitEvent } from '../outbox/outbox.repository.js';
import { claimConfirmation } from '../confirmations/confirmations.repository.js';
import {
  closeIncident,
  findActionByIdempotencyKey,
  findOpenIncident,
  openIncident,
  insertAction,
  liftActions,
  loadAgent,
  assignPermissionVersion,
  nextPermissionVersion,
  saveRegistration,
  setAgentState,
  markDecommissioned,
  removeAllGrants,
  type AgentRegistration,
} from './agents.repository.js';
import { cancelOpenRestoreConfirmations } from '../confirmations/confirmations.repository.js';
import type { JobName, JobPayload } from '../queue/job-contracts.js';

/** Told after a commit that changed an agent's permissions, so every replica's view updates. */
export interface PermissionChangePublisher {
  publishChanged(agentId: string, version: bigint): Promise<void>;
}

export interface AgentServiceDeps {
  db: Db;
  clock: Clock;
  publisher: PermissionChangePublisher;
  /** Called after commit when outbox rows were written, to wake the relay early. */
  onOutboxWrite?: () => void;
  /** Called after a registration (or update) commits; never throws. */
  onRegistered?: (agentId: string) => Promise<unknown>;
  /** Containing or revoking an agent cancels its pending approval requests. */
  approvals?: {
    cancelPendingForAgent(trx: DbOrTrx, agentId: string, actor: string, now: Date, why?: 'contained' | 'decommissioned'): Promise<string[]>;
  };
}

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

function decommissionedMessage(agent: Agent, what: string): string {
  const d = agent.decommissioned;
  return `agent ${agent.id} was decommissioned${d ? ` by ${d.by} at ${d.at.toISOString()}` : ''}; ${what}`;
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
  constructor(private readonly deps: AgentServiceDeps) {}

  async register(reg: AgentRegistration, actor: string): Promise<{ created: boolean; changed: boolean; agent: Agent }> {
    const { db, clock } = this.deps;
    const result = await db.transaction().execute(async (trx) => {
      const now = clock.now();
      const before = await loadAgent(trx, reg.id, { forUpdate: true });
      if (before?.status === 'decommissioned') throw conflict(decommissionedMessage(before, 'its id stays reserved: register the agent under a new id'));
      if (before && sameRegistration(before, reg)) return { created: false, changed: false, agent: before, version: null };
      // A held agent gets nothing back through registration: restore (which follows the policy) is the way out.
      if (before && (before.status === 'contained' || before.status === 'revoked')) {
        const widening = wideningChanges(before, reg);
        if (widening.length) {
          throw conflict(`agent ${reg.id} is ${before.status}: this update would widen it (${widening.map((w) => w.message).join('; ')}); nothing changed. Narrowing updates are allowed; restore the agent first to widen it`, widening);
        }
      }
      await saveRegistration(trx, reg, actor, now, before?.version ?? 0n, before?.status ?? 'active');
      // Late, after the rows are written: the version is drawn under the audit head lock (commit order),
      // which every writer shares, so it is held for as little as possible.
      const saved = (await loadAgent(trx, reg.id))!;
      const version = await assignPermissionVersion(trx, reg.id);
      const agent = { ...saved, version };
      const type: EventType = before ? 'agent.updated' : 'agent.registered';
      const payload = {
        name: reg.name,
        owner: reg.owner,
        riskTier: reg.riskTier,
        grants: reg.grants.map((g) => ({ ...g, expiresAt: g.expiresAt?.toISOString() ?? null })),
        ...(before ? { grantsRemoved: before.grants.filter((g) => !reg.grants.some((n) => n.scope === g.scope)).map((g) => g.scope) } : {}),
      };
      await appendAudit(trx, { actor, action: type, subject: reg.id, payload, at: now });
      await emitEvent(trx, type, { agentId: reg.id, actor, ...payload }, now);
      return { created: !before, changed: true, agent, version };
    });
    if (result.version !== null) await this.afterCommit(reg.id, result.version);
    // After the commit: webhook events held for this agent (it was unknown when they came) apply now.
    await this.deps.onRegistered?.(reg.id);
    return { created: result.created, changed: result.changed, agent: result.agent };
  }

  /**
   * Narrow, contain, revoke or restore. With dryRun, reports the blast radius and changes nothing.
   * With `confirmation`, the action is what that confirmation asked for: it is claimed in the same
   * transaction, after the agent row is locked, and the action is refused if it may not be used.
   */
  async act(agentId: string, cmd: ActionCommand, options: { dryRun?: boolean; idempotencyKey?: string; confirmation?: { id: string } } = {}): Promise<ActionResult> {
    const { db, clock } = this.deps;
    const { idempotencyKey } = options;
    if (idempotencyKey && !options.dryRun) {
      const before = await findActionByIdempotencyKey(db, idempotencyKey);
      if (before) return { ...(before.result as ActionResult), replayed: true };
    }
    if (options.dryRun) {
      const agent = await loadAgent(db, agentId);
      if (!agent) throw notFound(`unknown agent ${agentId}`);
      if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'there is nothing left to act on'));
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
      // The row lock makes two responders acting at once take turns: the second sees the first's result.
      const agent = await loadAgent(trx, agentId, { forUpdate: true });
      if (!agent) throw notFound(`unknown agent ${agentId}`);
      if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'there is nothing left to act on'));
      // A request with the same key that committed while we waited for the lock: its answer, not a second action.
      const prior = idempotencyKey ? await findActionByIdempotencyKey(trx, idempotencyKey) : undefined;
      if (prior) return { replayed: { ...(prior.result as ActionResult), replayed: true } };
      const now = clock.now();
      const openIncidentId = (await findOpenIncident(trx, agentId))?.id ?? null;
      if (options.confirmation) {
        await claimConfirmation(trx, options.confirmation.id, { agentId, openIncidentId, activeActionIds: agent.activeActions.map((a) => a.id), actor: cmd.actor, now });
      }
      const plan = planAction(agent, cmd, now);
      const id = randomUUID();
      // One incident per agent from the first restriction until restore: every step joins it.
      let incidentId = openIncidentId;
      if (!incidentId && cmd.kind !== 'restore') {
        incidentId = randomUUID();
        await openIncident(trx, incidentId, agentId, id, now, cmd.actor);
      }
      if (incidentId && plan.statusAfter === 'active') await closeIncident(trx, incidentId, cmd.actor, now);
      const result: ActionResult = { ...resultOf(agentId, cmd, plan, id, now, false), incidentId, ...(cmd.breakGlass && cmd.kind === 'restore' ? { breakGlass: true as const } : {}) };
      if ((cmd.kind === 'contain' || cmd.kind === 'revoke') && this.deps.approvals) {
        result.pendingApprovalsCancelled = await this.deps.approvals.cancelPendingForAgent(trx, agentId, cmd.actor, now);
      }
      // Late, after the other row locks: the version is drawn under the audit head lock (commit order).
      const version = await nextPermissionVersion(trx);
      result.version = version.toString();
      await insertAction(trx, {
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
      });
      await liftActions(trx, plan.lifts.map((a) => a.id), { actor: cmd.actor, reason: cmd.reason, byActionId: id, now });
      await setAgentState(trx, agentId, plan.statusAfter, version, cmd.actor, now);
      const { dryRun: _dryRun, ...auditPayload } = result;
      await appendAudit(trx, { actor: cmd.actor, action: `agent.${cmd.kind}`, subject: agentId, payload: auditPayload, at: now });
      await emitEvent(trx, EVENT_FOR[cmd.kind], { ...auditPayload, agentId }, now);
      if (plan.expiresAt) {
        await addOutboxJob(trx, { jobName: LIFT_ACTION_JOB, payload: { actionId: id, agentId }, runAt: plan.expiresAt }, now);
      }
      if (incidentId) {
        const update: IncidentUpdate = { incidentId, actionId: id, event: 'action' };
        await addOutboxJob(trx, { jobName: INCIDENT_UPDATE_JOB, payload: update }, now);
      }
      if (result.breakGlass) {
        const notice: BreakGlassNotice = { agentId, actionId: id, actor: cmd.actor, reason: cmd.reason, incidentId, at: now.toISOString() };
        await addOutboxJob(trx, { jobName: BREAK_GLASS_NOTICE_JOB, payload: notice }, now);
      }
      return { result, version };
    }));
    if ('replayed' in out) return out.replayed;
    await this.afterCommit(agentId, out.version);
    return out.result;
  }

  /**
   * Runs an action; when a concurrent request with the same idempotency key won the race (unique
   * index), answers with that request's result instead of an error.
   */
  private async applyOnce<T>(key: string | undefined, run: () => Promise<T>): Promise<T | { replayed: ActionResult }> {
    try {
      return await run();
    } catch (err) {
      const pgErr = err as { code?: string; constraint?: string };
      if (key && pgErr.code === '23505' && pgErr.constraint === 'agent_actions_idempotency_uq') {
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
   * Lifts an action whose ttl has run out. Idempotent: an action already lifted (by a restore,
   * or by an earlier run of the same job) or not yet due is left alone and reported as such.
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
    return out.outcome;
  }

  private async afterCommit(agentId: string, version: bigint): Promise<void> {
    this.deps.onOutboxWrite?.();
    // Publishing can fail (Redis down); replicas then catch up through their version poll.
    await this.deps.publisher.publishChanged(agentId, version).catch(() => undefined);
  }
}

function sameRegistration(agent: Agent, reg: AgentRegistration): boolean {
  if (agent.name !== reg.name || agent.owner !== reg.owner || agent.riskTier !== reg.riskTier) return false;
  if (agent.grants.length !== reg.grants.length) return false;
  return reg.grants.every((n) => {
    const g = agent.grants.find((x) => x.scope === n.scope);
    return (
      g !== undefined &&
      g.keepInContainment === n.keepInContainment &&
      (g.expiresAt?.getTime() ?? null) === (n.expiresAt?.getTime() ?? null) &&
      JSON.stringify(sortKeys(g.constraints)) === JSON.stringify(sortKeys(n.constraints))
    );
  });
}

function sortKeys(o: object): object {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
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
