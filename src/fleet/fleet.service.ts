import { createHash, randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { isUniqueViolation, type Db, type DbOrTrx } from '../db/database.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Clock } from '../core/clock.js';
import { deriveStatus, type ActiveAction, type Agent } from '../domain/agent.js';
import { NO_CHANNEL_FOR_SECOND_PERSON, planAction, planLift, type ActionCommand } from '../domain/actions.js';
import { conflict, isCodedError, notFound } from '../domain/errors.js';
import { checkSelector, matchesSelector, selectorText, type FleetSelector } from '../domain/fleet-selector.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import { answerOnce, storeAnswer, type StoredAnswer } from '../db/idempotent-answers.js';
import { eventRow, lockHeadAndDrawVersions, outboxRow, type OutboxRow } from '../agents/versioned-commit.js';
import { writeFleet, type FleetActionRow } from './fleet-commit.js';
import { EVENT_FOR, LIFT_ACTION_JOB, resultOf, type ActionResult, type AgentServiceDeps, type PermissionChangePublisher } from '../agents/agents.service.js';
import type { Requester } from '../confirmations/same-person.js';
import type { JobName } from '../queue/job-contracts.js';
import {
  agentsWithOpenApprovals,
  cancelRestoreConfirmations,
  findFleetConfirmation,
  findFleetIncident,
  findOpenFleetIncident,
  heldByFleet,
  loadAgentsByIds,
  loadSelectedAgents,
  openIncidentsOf,
  selectForContain,
  unrecordedHolds,
  withoutFreshEvaluation,
  type FleetConfirmationRow,
} from './fleet.repository.js';
import { FLEET_SAMPLE } from './fleet-view.js';

/** Posts or updates a fleet incident's notice (queue `notify`). */
export const FLEET_UPDATE_JOB = 'fleet-update' satisfies JobName;
/** Records a held containment if its process did not (queue `timers`). */
export const FLEET_RECORDS_JOB = 'fleet-records' satisfies JobName;
/** When the backstop job records a held containment: long after the process that held it normally has. */
export const FLEET_RECORDS_BACKSTOP_MS = 30_000;
/** How many agent ids an answer lists (`agents`, and each list of agents left alone). */
export const FLEET_LIST = 100;
/** How long a fleet confirmation may be clicked. */
export const FLEET_APPLY_CONFIRM_MS = 5 * 60_000;
export const FLEET_RESTORE_CONFIRM_MS = 60 * 60_000;

export type FleetActionKind = 'contain' | 'narrow' | 'restore';

/** A fleet action as REST and chat ask for it. */
export interface FleetCommand {
  action: FleetActionKind;
  selector: FleetSelector;
  /** Scope globs to suspend (narrow only). */
  scopes?: string[];
  reason: string;
  actor: string;
  ttlMs?: number;
}

/** An agent the selector matched that the action leaves alone, and why. */
export interface LeftAlone {
  agentId: string;
  reason: string;
}

/** What a dry run answers: the set a real run would act on now. */
export interface FleetPreview {
  dryRun: true;
  action: FleetActionKind;
  selector: FleetSelector;
  /** Agents the action would change. */
  count: number;
  /** The first of them, in id order. */
  sample: string[];
  /** Agents the selector matches (before leaving any alone). */
  matched: number;
  /** Agents left alone (already contained, revoked, nothing to narrow), first 100. */
  unchanged: LeftAlone[];
  unchangedCount: number;
  /** Restore: the fleet incident it would lift. */
  incidentId?: string | null;
  /** Restore: agents the policy's freshEvaluation keeps held, first 100. */
  stillHeld?: LeftAlone[];
  stillHeldCount?: number;
  /** Internal: every id the run would act on (chat binds a confirmation to it). */
  ids: string[];
}

/** What a real run answers. */
export interface FleetResult {
  dryRun: false;
  action: FleetActionKind;
  selector: FleetSelector;
  count: number;
  /** The fleet incident (opened by contain/narrow, lifted by restore); null when nothing changed. */
  incidentId: string | null;
  /** The first 100 agents acted on, in id order. */
  agents: string[];
  matched: number;
  unchanged: LeftAlone[];
  unchangedCount: number;
  /** Restore: agents the policy's freshEvaluation keeps held (they stay contained), first 100. */
  stillHeld?: LeftAlone[];
  stillHeldCount?: number;
  /** The permission version this committed (the highest of its agents'); absent when nothing changed. */
  version?: string;
  replayed?: boolean;
}

/** A fleet action waiting for a click. */
export interface FleetAwaiting {
  status: 'awaiting_confirmation';
  confirmationId: string;
  expiresAt: string;
  incidentId: string | null;
  count: number;
  stillHeld?: LeftAlone[];
  stillHeldCount?: number;
}

export interface FleetServiceDeps {
  db: Db;
  clock: Clock;
  publisher: PermissionChangePublisher;
  onOutboxWrite?: () => void;
  approvals?: AgentServiceDeps['approvals'];
  /** The policy's restore rule (read at each call: a live reload swaps it). */
  restoreRule: () => { secondPerson: boolean; freshEvaluation: boolean };
  /** Agents per write statement (default `FLEET_WRITE_PART`; tests make it small to cross parts). */
  writePart?: number;
  logger?: Logger;
  /**
   * Whether a containment's records are written right after its hold commits, in this process
   * (default). Tests turn it off to see the hold alone; the `fleet-records` job then records it.
   */
  recordAtOnce?: boolean;
}

export interface ApplyOptions {
  idempotencyKey?: string;
  /** The set a confirmation was asked about: refused unless the set resolved now is exactly it. */
  expect?: string[];
  /** The confirmation this run claims, in the same transaction. */
  claim?: { id: string; actor: string };
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** What a committed fleet action tells the replicas: its highest version, and its agents as they now stand. */
interface Published {
  agentId: string;
  version: bigint;
  written: Agent[];
  /** Agents whose open approvals the action cancelled. */
  approvalsOf: string[];
  /** The fleet hold this commit released. */
  released?: string;
}

/**
 * An agent as a fleet write left it, as a read would build it: its actions in force (by time), the
 * status they give, the version and time of the write; grants unchanged, trust left for the view
 * (undefined: not read here).
 */
function standing(agent: Agent, version: bigint, now: Date, activeActions: ActiveAction[]): Agent {
  const sorted = activeActions.sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime());
  return { ...agent, status: agent.status === 'decommissioned' ? agent.status : deriveStatus(sorted), version, updatedAt: now, activeActions: sorted };
}
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

type Classified = { agent: Agent; plan: ReturnType<typeof planAction> } | { agent: Agent; left: string; already?: boolean };
type Acting = Extract<Classified, { plan: unknown }>;

const REVOKED_LEFT = 'revoked: only restore can change it';

function setChanged(selector: FleetSelector, then: number, now: number): string {
  return `the agents selected by ${selectorText(selector)} changed since this was asked (${then} then, ${now} now); nothing was changed. Ask again to act on the current set`;
}

/**
 * Fleet actions: contain, narrow or restore every agent a selector matches, as ONE fleet incident.
 *
 * Each agent's action is recorded exactly as a single action would be (an `agent_actions` row, the
 * same `agent.contain`/`agent.narrow`/`agent.restore` audit entry and event, its own permission
 * version, its own per-agent incident), and linked to the fleet incident (`fleet_incident_id` on the
 * action and on the per-agent incident it opened). The set is resolved from Postgres inside the
 * action's transaction (a narrow's and a restore's under row locks), so the set answered is the set
 * recorded. A containment is first committed as a hold on the set, which every replica applies at
 * once, and its agents' records follow in a second transaction (`holdAndRecord`).
 */
export class FleetService {
  /** Held containments whose records this process is writing. */
  private readonly recording = new Map<string, Promise<boolean>>();

  constructor(private readonly deps: FleetServiceDeps) {}

  /** The set a real run would act on now, changing nothing. */
  async preview(cmd: FleetCommand): Promise<FleetPreview> {
    const selector = checkSelector(cmd.selector);
    await this.recordPendingHolds();
    const now = this.deps.clock.now();
    if (cmd.action === 'restore') return this.previewRestore({ ...cmd, selector });
    const agents = (await loadSelectedAgents(this.deps.db, selector)).filter((a) => matchesSelector(a, selector));
    const classified = agents.map((a) => classify(a, cmd, now));
    return previewOf(cmd.action, selector, classified);
  }

  private async previewRestore(cmd: FleetCommand): Promise<FleetPreview> {
    const incident = await findOpenFleetIncident(this.deps.db, selectorText(cmd.selector));
    if (!incident) throw conflict(noFleetIncident(cmd.selector));
    const held = await heldByFleet(this.deps.db, incident.id);
    const blocked = this.deps.restoreRule().freshEvaluation ? await withoutFreshEvaluation(this.deps.db, held.map((h) => h.agentId)) : new Map<string, Date>();
    const ids = held.map((h) => h.agentId).filter((id) => !blocked.has(id));
    const stillHeld = [...blocked].map(([agentId, since]) => ({ agentId, reason: freshReason(since) })).sort((a, b) => byId(a.agentId, b.agentId));
    return {
      dryRun: true,
      action: 'restore',
      selector: cmd.selector,
      count: ids.length,
      sample: ids.slice(0, FLEET_SAMPLE),
      matched: held.length,
      unchanged: [],
      unchangedCount: 0,
      incidentId: incident.id,
      stillHeld: stillHeld.slice(0, FLEET_LIST),
      stillHeldCount: stillHeld.length,
      ids,
    };
  }

  /**
   * Contain or narrow every matching agent, as one fleet incident. With `expect`, refuses (and
   * changes nothing) unless the set resolved now is exactly that set: what a confirmation was
   * asked about. With `claim`, marks that confirmation confirmed in the same transaction.
   * A containment is held first and recorded right after (`holdAndRecord`); a narrow in one commit.
   */
  async apply(cmd: FleetCommand, options: ApplyOptions = {}): Promise<FleetResult> {
    if (cmd.action === 'restore') throw new Error('use restore() for a fleet restore');
    const selector = checkSelector(cmd.selector);
    const { db } = this.deps;
    const { idempotencyKey } = options;
    if (idempotencyKey) {
      const before = await db.selectFrom('fleet_incidents').select('result').where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
      if (before) return { ...(before.result as FleetResult), replayed: true };
    }
    // A containment whose records are still being written holds its agents: finish it first, so
    // this action sees them as they are recorded (fleet actions take turns).
    await this.recordPendingHolds();
    try {
      return cmd.action === 'contain' ? await this.holdAndRecord(cmd, selector, options) : await this.applyInOneCommit(cmd, selector, options);
    } catch (err) {
      if (idempotencyKey && isUniqueViolation(err, 'fleet_incidents_idempotency_uq')) {
        const before = await db.selectFrom('fleet_incidents').select('result').where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
        if (before) return { ...(before.result as FleetResult), replayed: true };
      }
      throw err;
    }
  }

  /**
   * A containment by selector in two commits, so that every replica denies the whole set within
   * the time-to-effect bound however large it is:
   * 1. **The hold** (this call, one small transaction): the set resolved now (without reading
   *    grants), the fleet incident naming it with `hold_version`, one `fleet.contain` audit entry
   *    (the selector, the count and a digest of the ids), and a backstop job. Every replica's view
   *    loads the hold and treats each held agent as contained (its `keepInContainment` grants
   *    still allowed, as a contain does). The answer's `version` is this commit's.
   * 2. **The records** (`recordHold`, started here at once in the background, and by the backstop
   *    job if this process dies first): each agent's contain, exactly as `applyInOneCommit`
   *    writes it, and the release of the hold, in one transaction. Idempotent: the hold's row lock
   *    and its release decide who records it.
   */
  private async holdAndRecord(cmd: FleetCommand, selector: FleetSelector, options: ApplyOptions): Promise<FleetResult> {
    const { db, clock } = this.deps;
    const out = await db.transaction().execute(async (trx): Promise<{ result: FleetResult; hold?: { id: string; version: bigint; first: string } }> => {
      if (options.claim) {
        const replay = await claimFleetConfirmation(trx, options.claim.id, options.claim.actor, clock.now());
        if (replay) return { result: { ...replay, replayed: true } };
      }
      const candidates = await selectForContain(trx, selector);
      const now = clock.now();
      const actingIds = candidates.filter((c) => !c.contained && !c.revoked).map((c) => c.id);
      if (options.expect && !sameSet(actingIds, options.expect)) throw conflict(setChanged(selector, options.expect.length, actingIds.length));
      const left = candidates.filter((c) => c.contained || c.revoked).map((c) => ({ agentId: c.id, reason: c.contained ? 'already contained' : REVOKED_LEFT }));
      const base = { dryRun: false as const, action: 'contain' as const, selector, matched: candidates.length, unchanged: left.slice(0, FLEET_LIST), unchangedCount: left.length };
      if (actingIds.length === 0) {
        const result: FleetResult = { ...base, count: 0, incidentId: null, agents: [] };
        if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
        return { result };
      }
      const fleetId = randomUUID();
      const head = await lockHeadAndDrawVersions(trx, 1);
      const version = head.versions[0]!;
      const result: FleetResult = { ...base, count: actingIds.length, incidentId: fleetId, agents: actingIds.slice(0, FLEET_LIST), version: version.toString() };
      const digest = createHash('sha256').update(actingIds.join('\n')).digest('hex');
      await writeFleet(trx, {
        fleetIncidentId: fleetId,
        actor: cmd.actor,
        reason: cmd.reason,
        now,
        head,
        actions: [],
        opened: [],
        closed: [],
        lifts: [],
        states: [],
        audit: [{ action: 'fleet.contain', subject: fleetId, payload: { fleetIncidentId: fleetId, selector, count: actingIds.length, agentIdsSha256: digest, ttlMs: cmd.ttlMs ?? null, version: version.toString() } }],
        outbox: [outboxRow(FLEET_RECORDS_JOB, { fleetIncidentId: fleetId }, now, new Date(now.getTime() + FLEET_RECORDS_BACKSTOP_MS))],
      });
      await insertFleetIncident(trx, { id: fleetId, cmd, selector, actingIds, now, idempotencyKey: options.idempotencyKey, result, holdVersion: version });
      if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
      return { result, hold: { id: fleetId, version, first: actingIds[0]! } };
    });
    if (out.hold) {
      this.deps.onOutboxWrite?.();
      // Every replica (this one first, before the answer) reads the hold: the set is denied from here on.
      await this.deps.publisher.publishChanged(out.hold.first, out.hold.version).catch(() => undefined);
      if (this.deps.recordAtOnce !== false) this.recordInBackground(out.hold.id);
    }
    return out.result;
  }

  /**
   * Writes a held containment's per-agent records and releases its hold, in one transaction
   * (step 2 of `holdAndRecord`). Acts on the held agents still to contain (one contained, revoked
   * or decommissioned meanwhile is left alone), each planned as of the hold (a ttl runs from it).
   * Answers false when there was nothing to do: recorded already, or not a hold.
   */
  async recordHold(fleetIncidentId: string): Promise<boolean> {
    const { db, clock } = this.deps;
    const out = await db.transaction().execute(async (trx): Promise<{ published?: Published } | undefined> => {
      const incident = await findFleetIncident(trx, fleetIncidentId, { forUpdate: true });
      if (!incident || incident.hold_version === null || incident.hold_released_version !== null) return undefined;
      const cmd: FleetCommand = { action: 'contain', selector: incident.selector as FleetSelector, reason: incident.reason, actor: incident.actor, ttlMs: incident.ttl_ms === null ? undefined : Number(incident.ttl_ms) };
      const agents = await loadAgentsByIds(trx, incident.agent_ids, { forUpdate: true });
      const acting = agents.flatMap((agent) => {
        if (agent.status === 'decommissioned') return [];
        const c = classify(agent, cmd, incident.opened_at);
        return 'plan' in c ? [c] : [];
      });
      const now = clock.now();
      if (acting.length === 0) {
        const head = await lockHeadAndDrawVersions(trx, 1);
        await trx.updateTable('fleet_incidents').set({ hold_released_version: head.versions[0]!.toString(), agent_count: 0, agent_ids: '[]' }).where('id', '=', incident.id).execute();
        await addOutboxJob(trx, { jobName: FLEET_UPDATE_JOB, payload: { fleetIncidentId: incident.id, event: 'opened' } }, now);
        return { published: { agentId: incident.agent_ids[0] ?? incident.id, version: head.versions[0]!, written: [], approvalsOf: [], released: incident.id } };
      }
      // The containment began with the hold: its actions and incidents date from then (a restore's
      // freshEvaluation counts evaluations since), its audit entries from now.
      const recorded = await this.recordActions(trx, { fleetId: incident.id, cmd, acting, now, since: incident.opened_at });
      const actingIds = acting.map((c) => c.agent.id);
      await trx
        .updateTable('fleet_incidents')
        .set({ hold_released_version: recorded.top.toString(), agent_count: actingIds.length, agent_ids: JSON.stringify(actingIds) })
        .where('id', '=', incident.id)
        .execute();
      return { published: { ...recorded.published, released: incident.id } };
    });
    if (!out) return false;
    if (out.published) await this.afterCommit(out.published);
    return true;
  }

  /** Records every held containment not recorded yet (each waits for a recording already under way). */
  private async recordPendingHolds(): Promise<void> {
    for (const id of await unrecordedHolds(this.deps.db)) await (this.recording.get(id) ?? this.recordHold(id));
  }

  private recordInBackground(id: string): void {
    const running = this.recordHold(id)
      .catch((err: unknown) => {
        // The hold stays in force (every replica keeps denying); the backstop job records it.
        this.deps.logger?.warn({ err: (err as Error).message, fleetIncidentId: id }, 'recording a fleet containment failed; the fleet-records job will retry');
        return false;
      })
      .finally(() => this.recording.delete(id));
    this.recording.set(id, running);
  }

  /** Resolves once every recording this process started has ended (stop, and tests). */
  async settled(): Promise<void> {
    while (this.recording.size > 0) await Promise.all([...this.recording.values()]);
  }

  /** A fleet narrow in one commit: the set resolved under row locks, every agent's action written with it. */
  private async applyInOneCommit(cmd: FleetCommand, selector: FleetSelector, options: ApplyOptions): Promise<FleetResult> {
    const { db, clock } = this.deps;
    const kind = cmd.action as 'contain' | 'narrow';
    const out = await db.transaction().execute(async (trx): Promise<{ result: FleetResult; published?: Published }> => {
      if (options.claim) {
        const replay = await claimFleetConfirmation(trx, options.claim.id, options.claim.actor, clock.now());
        if (replay) return { result: { ...replay, replayed: true } };
      }
      // Locked in id order and read after the lock (a fresh snapshot in READ COMMITTED), then
      // checked once more: the set acted on is the set of agents that match while we hold them.
      const agents = (await loadSelectedAgents(trx, selector, { forUpdate: true })).filter((a) => matchesSelector(a, selector));
      const now = clock.now();
      const classified = agents.map((a) => classify(a, cmd, now));
      const acting = classified.filter((c): c is Acting => 'plan' in c);
      if (options.expect && !sameSet(acting.map((c) => c.agent.id), options.expect)) throw conflict(setChanged(selector, options.expect.length, acting.length));
      const left = leftAlone(classified);
      const base = { dryRun: false as const, action: kind, selector, matched: agents.length, unchanged: left.slice(0, FLEET_LIST), unchangedCount: left.length };
      if (acting.length === 0) {
        const result: FleetResult = { ...base, count: 0, incidentId: null, agents: [] };
        if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
        return { result };
      }
      const fleetId = randomUUID();
      const actingIds = acting.map((c) => c.agent.id);
      const recorded = await this.recordActions(trx, { fleetId, cmd, acting, now });
      const result: FleetResult = { ...base, count: acting.length, incidentId: fleetId, agents: actingIds.slice(0, FLEET_LIST), version: recorded.top.toString() };
      await insertFleetIncident(trx, { id: fleetId, cmd, selector, actingIds, now, idempotencyKey: options.idempotencyKey, result, holdVersion: null });
      if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
      return { result, published: recorded.published };
    });
    if (out.published) await this.afterCommit(out.published);
    return out.result;
  }

  /**
   * Every acting agent's contain or narrow, recorded as a single action records it (see the class
   * comment), in the caller's transaction: per-agent incidents opened, restore confirmations and
   * (contain) open approval requests cancelled, one version each, the fleet notice queued.
   */
  private async recordActions(trx: Transaction<Database>, a: { fleetId: string; cmd: FleetCommand; acting: Acting[]; now: Date; since?: Date }): Promise<{ top: bigint; published: Published }> {
    const { fleetId, cmd, acting, now } = a;
    const since = a.since ?? now;
    const kind = cmd.action as 'contain' | 'narrow';
    const actingIds = acting.map((c) => c.agent.id);
    const open = await openIncidentsOf(trx, actingIds);
    const actionIds = new Map(actingIds.map((id) => [id, randomUUID()]));
    // One incident per agent from its first restriction until restore, as a single action opens:
    // agents without one get theirs now, linked to the fleet incident.
    const fresh = actingIds.filter((id) => !open.has(id)).map((agentId) => ({ id: randomUUID(), agentId, actionId: actionIds.get(agentId)! }));
    await cancelRestoreConfirmations(trx, fresh.map((f) => f.agentId), { actor: cmd.actor, reason: `fleet incident ${fleetId} opened`, now });
    const incidentOf = new Map([...[...open].map(([agentId, i]) => [agentId, i.id] as const), ...fresh.map((f) => [f.agentId, f.id] as const)]);
    const cancelled = new Map<string, string[]>();
    if (kind === 'contain' && this.deps.approvals) {
      // Every agent's requests in one go, audited after: see `cancelPendingForAgents`.
      const withOpen = await agentsWithOpenApprovals(trx, actingIds);
      for (const [agentId, ids] of await this.deps.approvals.cancelPendingForAgents(trx, [...withOpen].sort(), cmd.actor, now)) cancelled.set(agentId, ids);
    }
    const actionCmd: ActionCommand = { kind, scopes: cmd.scopes, reason: cmd.reason, actor: cmd.actor, ttlMs: cmd.ttlMs };
    // Late, after every agent row lock: the versions, under the audit head lock (commit order).
    const head = await lockHeadAndDrawVersions(trx, acting.length);
    const parts = acting.map(({ agent, plan }, i) => {
      const id = actionIds.get(agent.id)!;
      const result: ActionResult = {
        ...resultOf(agent.id, actionCmd, plan, id, now, false),
        incidentId: incidentOf.get(agent.id) ?? null,
        pendingApprovalsCancelled: cancelled.get(agent.id) ?? [],
        version: head.versions[i]!.toString(),
      };
      const lift = plan.expiresAt ? [outboxRow(LIFT_ACTION_JOB, { actionId: id, agentId: agent.id }, now, plan.expiresAt)] : [];
      return agentPart(agent.id, { id, kind, scopes: plan.scopes, ttlMs: cmd.ttlMs ?? null, expiresAt: plan.expiresAt, touched: plan.grantsTakenAway, result }, fleetId, now, lift);
    });
    const top = highest(head.versions);
    // The fleet notice, and (with a ttl) its refresh once the ttl ran out.
    const expiresAt = acting[0]!.plan.expiresAt;
    const fleetJobs = [outboxRow(FLEET_UPDATE_JOB, { fleetIncidentId: fleetId, event: 'opened' }, now)];
    if (expiresAt) fleetJobs.push(outboxRow(FLEET_UPDATE_JOB, { fleetIncidentId: fleetId, event: 'refresh' }, now, new Date(expiresAt.getTime() + 5_000)));
    await writeFleet(trx, {
      fleetIncidentId: fleetId,
      actor: cmd.actor,
      reason: cmd.reason,
      now,
      since,
      head,
      actions: parts.map((p) => p.action),
      opened: fresh,
      closed: [],
      lifts: [],
      states: acting.map((c, i) => ({ id: c.agent.id, status: c.plan.statusAfter, version: head.versions[i]! })),
      audit: parts.map((p) => p.audit),
      outbox: [...parts.flatMap((p) => p.outbox), ...fleetJobs],
    }, this.deps.writePart);
    // Each agent as it now stands, for this replica's view (it stores them without reading 9,000 agents back).
    const written = acting.map(({ agent, plan }, i) =>
      standing(agent, head.versions[i]!, now, [
        ...agent.activeActions,
        { id: actionIds.get(agent.id)!, kind, scopes: plan.scopes, reason: cmd.reason, actor: cmd.actor, createdAt: since, expiresAt: plan.expiresAt, touched: plan.grantsTakenAway },
      ]),
    );
    return { top, published: { agentId: actingIds[head.versions.indexOf(top)]!, version: top, written, approvalsOf: [...cancelled.keys()] } };
  }

  /**
   * Restore by the same selector: lifts exactly what the newest open fleet incident with this
   * selector still holds (each agent's fleet contain or narrow; agents contained by other incidents,
   * and other restrictions of the same agents, stay). Agents the policy's `freshEvaluation` still
   * blocks stay held and are listed. Closes the fleet incident once none of its actions is in force.
   * With `bound`, only those agents (the set a confirmation was asked about) are restored.
   */
  async restore(cmd: FleetCommand, options: { incidentId?: string; bound?: string[]; claim?: { id: string; actor: string }; answerKey?: string } = {}): Promise<FleetResult> {
    const selector = checkSelector(cmd.selector);
    const { db, clock } = this.deps;
    await this.recordPendingHolds();
    const out = await db.transaction().execute(async (trx): Promise<{ result: FleetResult; published?: Published }> => {
      if (options.claim) {
        const replay = await claimFleetConfirmation(trx, options.claim.id, options.claim.actor, clock.now());
        if (replay) return { result: { ...replay, replayed: true } };
      }
      const incident = options.incidentId ? await findFleetIncident(trx, options.incidentId, { forUpdate: true }) : await findOpenFleetIncident(trx, selectorText(selector), { forUpdate: true });
      if (!incident || incident.status !== 'open') throw conflict(options.incidentId ? `fleet incident ${options.incidentId} has ended; nothing was changed` : noFleetIncident(selector));
      let held = await heldByFleet(trx, incident.id);
      if (options.bound) {
        const bound = new Set(options.bound);
        held = held.filter((h) => bound.has(h.agentId));
      }
      // Locked in id order, then read again: what is still in force now that we hold them.
      const agents = new Map((await loadAgentsByIds(trx, held.map((h) => h.agentId), { forUpdate: true })).map((a) => [a.id, a]));
      const inForce = new Set((await heldByFleet(trx, incident.id)).map((h) => h.actionId));
      held = held.filter((h) => inForce.has(h.actionId));
      const now = clock.now();
      const blocked = this.deps.restoreRule().freshEvaluation ? await withoutFreshEvaluation(trx, held.map((h) => h.agentId)) : new Map<string, Date>();
      const stillHeld = [...blocked].map(([agentId, since]) => ({ agentId, reason: freshReason(since) })).sort((a, b) => byId(a.agentId, b.agentId));
      const lifting = held.filter((h) => !blocked.has(h.agentId));
      const open = await openIncidentsOf(trx, lifting.map((h) => h.agentId));
      const base = { dryRun: false as const, action: 'restore' as const, selector, matched: held.length, unchanged: [], unchangedCount: 0, stillHeld: stillHeld.slice(0, FLEET_LIST), stillHeldCount: stillHeld.length };
      const restoreCmd: ActionCommand = { kind: 'restore', reason: cmd.reason, actor: cmd.actor };
      const planned = lifting.flatMap((h) => {
        const agent = agents.get(h.agentId);
        if (!agent || agent.status === 'decommissioned') return [];
        // Only the fleet's own action is lifted: a narrow made before it by someone else stays.
        const lift = planLift(agent, h.actionId, now);
        return [{ agent, held: h, plan: { ...lift, kind: 'restore' as const, grantsTakenAway: [] } }];
      });
      if (planned.length === 0) {
        // Nothing of it is in force any more (lifted by its ttl, or agent by agent): it ends here.
        if (inForce.size === 0) await trx.updateTable('fleet_incidents').set({ status: 'closed', closed_at: now, closed_by: cmd.actor }).where('id', '=', incident.id).execute();
        const result: FleetResult = { ...base, count: 0, incidentId: incident.id, agents: [] };
        if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
        if (options.answerKey !== undefined) await storeAnswer(trx, options.answerKey, { status: 201, body: result });
        return { result };
      }
      // An agent active again ends its own incident, and the restore confirmations asked during it (as closeIncident does for one).
      const closing = planned.filter((p) => p.plan.statusAfter === 'active' && open.has(p.agent.id));
      await cancelRestoreConfirmations(trx, closing.map((p) => p.agent.id), { actor: cmd.actor, reason: 'incident ended', now });
      const head = await lockHeadAndDrawVersions(trx, planned.length);
      const lifts: { actionId: string; byActionId: string }[] = [];
      const parts = planned.map(({ agent, held: h, plan }, i) => {
        const id = randomUUID();
        const result: ActionResult = { ...resultOf(agent.id, restoreCmd, plan, id, now, false), incidentId: open.get(agent.id)?.id ?? null, version: head.versions[i]!.toString() };
        lifts.push({ actionId: h.actionId, byActionId: id });
        return agentPart(agent.id, { id, kind: 'restore', scopes: [], ttlMs: null, expiresAt: null, touched: plan.grantsGivenBack, result }, incident.id, now, []);
      });
      const top = highest(head.versions);
      const restoredIds = planned.map((p) => p.agent.id);
      const result: FleetResult = { ...base, count: planned.length, incidentId: incident.id, agents: restoredIds.slice(0, FLEET_LIST), version: top.toString() };
      const run = { id: randomUUID(), actor: cmd.actor, restored: planned.length, held: stillHeld.slice(0, 20).map((s) => s.agentId), heldCount: stillHeld.length, at: now.toISOString() };
      await writeFleet(trx, {
        fleetIncidentId: incident.id,
        actor: cmd.actor,
        reason: cmd.reason,
        now,
        head,
        actions: parts.map((p) => p.action),
        opened: [],
        closed: closing.map((p) => open.get(p.agent.id)!.id),
        lifts,
        states: planned.map((p, i) => ({ id: p.agent.id, status: p.plan.statusAfter, version: head.versions[i]! })),
        audit: parts.map((p) => p.audit),
        outbox: [...parts.flatMap((p) => p.outbox), outboxRow(FLEET_UPDATE_JOB, { fleetIncidentId: incident.id, event: 'restore', run }, now)],
      }, this.deps.writePart);
      // Closed once none of its actions is in force (those kept held, or outside a confirmation's set, stay).
      if ((await heldByFleet(trx, incident.id)).length === 0) await trx.updateTable('fleet_incidents').set({ status: 'closed', closed_at: now, closed_by: cmd.actor }).where('id', '=', incident.id).execute();
      if (options.claim) await storeConfirmationResult(trx, options.claim.id, result);
      if (options.answerKey !== undefined) await storeAnswer(trx, options.answerKey, { status: 201, body: result });
      const written = planned.map(({ agent, held: h }, i) => standing(agent, head.versions[i]!, now, agent.activeActions.filter((a) => a.id !== h.actionId)));
      return { result, published: { agentId: restoredIds[head.versions.indexOf(top)]!, version: top, written, approvalsOf: [] } };
    });
    if (out.published) await this.afterCommit(out.published);
    return out.result;
  }

  /**
   * A restore by selector asked for with an API token: applied at once (201), or, under the policy's
   * `restore.secondPerson`, asked of a person in the fleet incident's thread (202): a token is not a
   * person, and any holder of a restore role confirms, once, for the whole set. With `answerKey`, a
   * retry answers what the first request did (the same result, or the same confirmation) and
   * neither acts nor asks again.
   */
  async restoreOverApi(cmd: FleetCommand, requester: Requester, options: { answerKey?: string; incidentsChannel: boolean }): Promise<StoredAnswer<FleetResult | FleetAwaiting>> {
    const { answerKey } = options;
    return answerOnce<FleetResult | FleetAwaiting>(this.deps.db, answerKey, async () => {
      const preview = await this.preview(cmd);
      if (!this.deps.restoreRule().secondPerson || preview.count === 0) return { status: 201, body: await this.restore(cmd, { answerKey }) };
      if (!options.incidentsChannel) {
        throw conflict(NO_CHANNEL_FOR_SECOND_PERSON);
      }
      return this.askRestoreConfirmation(cmd, requester, preview, answerKey);
    });
  }

  /**
   * Asks a second person to confirm the restore of the previewed set (posted in the fleet
   * incident's thread; one confirmation covers the whole set). With `answerKey`, the answer is
   * stored with the request, in its transaction.
   */
  async askRestoreConfirmation(cmd: FleetCommand, requester: Requester, preview: FleetPreview, answerKey?: string): Promise<StoredAnswer<FleetAwaiting>> {
    const awaiting = (asked: { id: string; expiresAt: string }): FleetAwaiting => ({
      status: 'awaiting_confirmation',
      confirmationId: asked.id,
      expiresAt: asked.expiresAt,
      incidentId: preview.incidentId ?? null,
      count: preview.count,
      stillHeld: preview.stillHeld ?? [],
      stillHeldCount: preview.stillHeldCount ?? 0,
    });
    const asked = await this.requestConfirmation({
      kind: 'second_person',
      cmd,
      requester,
      agentIds: preview.ids,
      incidentId: preview.incidentId ?? null,
      ttlMs: FLEET_RESTORE_CONFIRM_MS,
      answer: answerKey === undefined ? undefined : { key: answerKey, body: awaiting },
    });
    return { status: 202, body: awaiting(asked) };
  }

  /**
   * Records a fleet action waiting for a click, bound to the set resolved now (and, for a restore,
   * to its fleet incident). A second-person request is posted in the fleet incident's thread.
   */
  async requestConfirmation(c: {
    kind: 'apply' | 'second_person';
    cmd: FleetCommand;
    requester: Requester;
    agentIds: string[];
    incidentId: string | null;
    ttlMs: number;
    /** Stores the answer this request gives under an idempotency key, in the same transaction. */
    answer?: { key: string; body: (asked: { id: string; expiresAt: string }) => FleetAwaiting };
  }): Promise<{ id: string; expiresAt: string }> {
    const { db, clock } = this.deps;
    const now = clock.now();
    const id = randomUUID();
    const expiresAt = new Date(now.getTime() + c.ttlMs);
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('fleet_confirmations')
        .values({
          id,
          kind: c.kind,
          action: c.cmd.action,
          selector: JSON.stringify(checkSelector(c.cmd.selector)),
          scopes: JSON.stringify(c.cmd.scopes ?? []),
          reason: c.cmd.reason,
          ttl_ms: c.cmd.ttlMs ?? null,
          fleet_incident_id: c.incidentId,
          agent_ids: JSON.stringify([...c.agentIds].sort(byId)),
          requested_by: c.cmd.actor,
          requested_platform: c.requester.platform,
          requested_user_id: c.requester.userId,
          requested_emails: JSON.stringify(c.requester.emails),
          requested_person: c.requester.personKey,
          created_at: now,
          expires_at: expiresAt,
        })
        .execute();
      if (c.kind === 'second_person' && c.incidentId) {
        await addOutboxJob(trx, { jobName: FLEET_UPDATE_JOB, payload: { fleetIncidentId: c.incidentId, event: 'confirmation', confirmationId: id } }, now);
      }
      if (c.answer) await storeAnswer(trx, c.answer.key, { status: 202, body: c.answer.body({ id, expiresAt: expiresAt.toISOString() }) });
    });
    this.deps.onOutboxWrite?.();
    return { id, expiresAt: expiresAt.toISOString() };
  }

  /** Runs what a confirmation asked for, claiming it in the same transaction (two clicks, one action). */
  async runConfirmation(row: FleetConfirmationRow, actor: string, reason: string): Promise<FleetResult> {
    const cmd: FleetCommand = { action: row.action, selector: row.selector as FleetSelector, scopes: row.scopes.length ? row.scopes : undefined, reason, actor, ttlMs: row.ttl_ms === null ? undefined : Number(row.ttl_ms) };
    const claim = { id: row.id, actor };
    if (row.action === 'restore') return this.restore(cmd, { incidentId: row.fleet_incident_id ?? undefined, bound: row.agent_ids, claim });
    return this.apply(cmd, { expect: row.agent_ids, claim });
  }

  /** A fleet confirmation as `GET /v1/confirmations/{id}` shows it (`agentId` null: it covers a set). */
  async confirmationView(id: string) {
    const row = await findFleetConfirmation(this.deps.db, id);
    if (!row) return undefined;
    const now = this.deps.clock.now();
    const status = row.outcome === 'confirmed' ? 'confirmed' : row.outcome === 'cancelled' ? 'cancelled' : row.expires_at.getTime() <= now.getTime() ? 'expired' : 'pending';
    return {
      id: row.id,
      status,
      agentId: null,
      kind: row.action,
      selector: row.selector as FleetSelector,
      count: row.agent_ids.length,
      requestedBy: row.requested_by,
      ...(row.decided_by && row.decided_at ? { decidedBy: row.decided_by, decidedAt: row.decided_at.toISOString() } : {}),
      expiresAt: row.expires_at.toISOString(),
      incidentId: row.fleet_incident_id,
      ...(row.result ? { result: row.result as FleetResult } : {}),
    };
  }

  /** Cancels a pending fleet confirmation; false when it was no longer pending. */
  async cancelConfirmation(id: string, actor: string): Promise<boolean> {
    const { db, clock } = this.deps;
    return db.transaction().execute(async (trx) => {
      const now = clock.now();
      const row = await trx.updateTable('fleet_confirmations').set({ decided_at: now, decided_by: actor, outcome: 'cancelled' }).where('id', '=', id).where('decided_at', 'is', null).returning(['fleet_incident_id', 'kind']).executeTakeFirst();
      if (row?.kind === 'second_person' && row.fleet_incident_id) {
        await addOutboxJob(trx, { jobName: FLEET_UPDATE_JOB, payload: { fleetIncidentId: row.fleet_incident_id, event: 'confirmation', confirmationId: id } }, now);
      }
      return row !== undefined;
    });
  }

  private async afterCommit(published: Published): Promise<void> {
    this.deps.onOutboxWrite?.();
    // One publish for the whole set: a replica that hears it reads every agent above its version,
    // so it catches up with all of them in one read (a lost publish is caught by the version poll).
    // This replica stores the agents as it wrote them instead of reading them back (publishWritten).
    const { publisher } = this.deps;
    const released = published.released ? [published.released] : [];
    if (publisher.publishWritten && published.written.length > 0) await publisher.publishWritten(published.written, { approvalsOf: published.approvalsOf, released }).catch(() => undefined);
    else await publisher.publishChanged(published.agentId, published.version).catch(() => undefined);
  }
}

function classify(agent: Agent, cmd: FleetCommand, now: Date): Classified {
  if (cmd.action === 'contain' && agent.activeActions.some((a) => a.kind === 'contain')) return { agent, left: 'already contained', already: true };
  if (agent.status === 'revoked') return { agent, left: REVOKED_LEFT };
  try {
    return { agent, plan: planAction(agent, { kind: cmd.action as 'contain' | 'narrow', scopes: cmd.scopes, reason: cmd.reason, actor: cmd.actor, ttlMs: cmd.ttlMs }, now) };
  } catch (err) {
    if (isCodedError(err)) return { agent, left: err.message };
    throw err;
  }
}

function leftAlone(classified: Classified[]): LeftAlone[] {
  return classified.flatMap((c) => ('left' in c ? [{ agentId: c.agent.id, reason: c.left }] : []));
}

function previewOf(action: FleetActionKind, selector: FleetSelector, classified: Classified[]): FleetPreview {
  const ids = classified.filter((c) => 'plan' in c).map((c) => c.agent.id);
  const left = leftAlone(classified);
  return { dryRun: true, action, selector, count: ids.length, sample: ids.slice(0, FLEET_SAMPLE), matched: classified.length, unchanged: left.slice(0, FLEET_LIST), unchangedCount: left.length, ids };
}

const freshReason = (since: Date) => `no fresh evaluation since its incident began at ${since.toISOString()} (the policy's restore.freshEvaluation): it stays held`;

function noFleetIncident(selector: FleetSelector): string {
  return `no open fleet incident was opened by the selector ${selectorText(selector)}: a restore by selector lifts exactly what a contain or narrow by the same selector holds. Nothing was changed`;
}

/**
 * Claims a pending fleet confirmation inside the action's transaction. Answers the stored result
 * when it was already confirmed (a double click), throws when it may not be used any more.
 */
async function claimFleetConfirmation(trx: DbOrTrx, id: string, actor: string, now: Date): Promise<FleetResult | undefined> {
  const row = await findFleetConfirmation(trx, id, { forUpdate: true });
  if (!row) throw notFound(`unknown confirmation ${id}`);
  if (row.outcome === 'confirmed') {
    if (row.result) return row.result as FleetResult;
    throw conflict(`this confirmation was already confirmed by ${row.decided_by}`);
  }
  if (row.outcome === 'cancelled') throw conflict(`this confirmation was cancelled by ${row.decided_by}${row.decided_reason ? ` (${row.decided_reason})` : ''}`);
  if (row.expires_at.getTime() <= now.getTime()) throw conflict(`this confirmation expired at ${row.expires_at.toISOString()}; ask again`);
  await trx.updateTable('fleet_confirmations').set({ decided_at: now, decided_by: actor, outcome: 'confirmed' }).where('id', '=', id).execute();
  if (row.kind === 'second_person' && row.fleet_incident_id) {
    await addOutboxJob(trx, { jobName: FLEET_UPDATE_JOB, payload: { fleetIncidentId: row.fleet_incident_id, event: 'confirmation', confirmationId: id } }, now);
  }
  return undefined;
}

async function storeConfirmationResult(trx: DbOrTrx, id: string, result: FleetResult): Promise<void> {
  await trx.updateTable('fleet_confirmations').set({ result: JSON.stringify(result) }).where('id', '=', id).execute();
}

/**
 * One agent's part of a fleet action, as a single action records it: its action row with the
 * answer (carrying its version), its audit entry and its event (the answer and the fleet
 * incident), plus `extra` outbox rows (its ttl lift).
 */
function agentPart(agentId: string, action: Omit<FleetActionRow, 'agentId' | 'incidentId' | 'result'> & { result: ActionResult }, fleetIncidentId: string, now: Date, extra: OutboxRow[]) {
  const { dryRun: _dryRun, ...payload } = action.result;
  const audited = { ...payload, fleetIncidentId };
  return {
    action: { ...action, agentId, incidentId: action.result.incidentId },
    audit: { action: `agent.${action.kind}`, subject: agentId, payload: audited },
    outbox: [eventRow(EVENT_FOR[action.kind], { ...audited, agentId }, now), ...extra],
  };
}

const highest = (versions: bigint[]) => versions.reduce((a, b) => (b > a ? b : a));

/** The fleet incident's row: the selector, the action, the exact set acted on, and the answer given. */
async function insertFleetIncident(
  trx: DbOrTrx,
  f: { id: string; cmd: FleetCommand; selector: FleetSelector; actingIds: string[]; now: Date; idempotencyKey: string | undefined; result: FleetResult; holdVersion: bigint | null },
): Promise<void> {
  await trx
    .insertInto('fleet_incidents')
    .values({
      id: f.id,
      action: f.cmd.action as 'contain' | 'narrow',
      selector: JSON.stringify(f.selector),
      selector_key: selectorText(f.selector),
      scopes: JSON.stringify(f.cmd.scopes ?? []),
      reason: f.cmd.reason,
      actor: f.cmd.actor,
      ttl_ms: f.cmd.ttlMs ?? null,
      agent_count: f.actingIds.length,
      agent_ids: JSON.stringify(f.actingIds),
      status: 'open',
      opened_at: f.now,
      idempotency_key: f.idempotencyKey ?? null,
      result: JSON.stringify(f.result),
      hold_version: f.holdVersion === null ? null : f.holdVersion.toString(),
    })
    .execute();
}
