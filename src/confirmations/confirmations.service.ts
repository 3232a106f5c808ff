import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { ActionResult, AgentService } from '../agents/agents.service.js';
import { findOpenIncident, incidentAwaitingEvaluation, loadAgent } from '../agents/agents.repository.js';
import { freshEvaluationRefusal, NO_CHANNEL_FOR_SECOND_PERSON } from '../domain/actions.js';
import type { ChatIdentity } from '../chat/authorization.js';
import { conflict, notFound } from '../domain/errors.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import type { Policy } from '../policy/policy.schema.js';
import { findConfirmation, insertConfirmation, statusOf, type ConfirmationKind, type ConfirmationStatus } from './confirmations.repository.js';
import { apiRequester, type Requester } from './same-person.js';
import type { JobName } from '../queue/job-contracts.js';
import { decommissionedMessage } from '../agents/registration-batch.js';
import { answerOnce, storeAnswer, type StoredAnswer } from '../db/idempotent-answers.js';

export const REVOKE_CONFIRM_MS = 5 * 60_000;
export const RESTORE_CONFIRM_MS = 60 * 60_000;
/** Posts a restore's confirmation request in the incident thread (queue `notify`). */
export const CONFIRMATION_REQUEST_JOB = 'confirmation-request' satisfies JobName;

/** A confirmation as `GET /v1/confirmations/{id}` shows it. */
export interface ConfirmationView {
  id: string;
  status: ConfirmationStatus;
  agentId: string;
  kind: ConfirmationKind;
  requestedBy: string;
  decidedBy?: string;
  decidedAt?: string;
  /** Why it was cancelled when nobody clicked Cancel (e.g. its incident ended). */
  reason?: string;
  expiresAt: string;
  incidentId: string | null;
}

/** The 202 answer of a restore over the API that waits for a person (stored for retries with its key). */
export interface AwaitingConfirmation {
  status: 'awaiting_confirmation';
  confirmationId: string;
  expiresAt: string;
  incidentId: string | null;
  /** A retry with the same `Idempotency-Key`: the confirmation asked the first time. */
  replayed?: boolean;
}

const awaitingConfirmation = (confirmationId: string, expiresAt: string, incidentId: string | null): AwaitingConfirmation => ({ status: 'awaiting_confirmation', confirmationId, expiresAt, incidentId });

export type ApiRestoreOutcome = { applied: ActionResult } | { awaiting: AwaitingConfirmation };

/**
 * Two-step actions: revoke (its requester confirms) and restore under `secondPerson` (another
 * person confirms in the incident thread). A confirmation is bound to the incident and the
 * restrictions in force when it was asked (see claimConfirmation).
 */
export class ConfirmationService {
  constructor(private readonly deps: { db: Db; clock: Clock; policy: Policy; agents: AgentService }) {}

  /** The chat user with every email the directory resolved for them (Slack or Teams). */
  async withResolvedEmails(who: ChatIdentity): Promise<ChatIdentity> {
    const rows = await this.deps.db.selectFrom('chat_identities').select('email').where('platform', '=', who.platform).where('user_id', '=', who.userId).execute();
    return { ...who, emails: [...new Set([...who.emails, ...rows.map((r) => r.email)].map((e) => e.toLowerCase()))] };
  }

  /**
   * Asks for a confirmation. With `answerKey`, its 202 answer is stored under that key in the same
   * transaction (a concurrent request with the key makes this one fail on it and ask nothing).
   */
  async request(c: { kind: ConfirmationKind; agentId: string; actor: string; requester: Requester; payload: Record<string, unknown>; ttlMs: number; answerKey?: string }): Promise<ConfirmationView> {
    const { db, clock } = this.deps;
    const now = clock.now();
    const id = randomUUID();
    await db.transaction().execute(async (trx) => {
      // Locked so the incident and the restrictions recorded are the ones in force together.
      const agent = await loadAgent(trx, c.agentId, { forUpdate: true });
      if (!agent) throw notFound(`unknown agent ${c.agentId}`);
      // Checked again under the lock: the caller's dry run ran before it, and a decommission or a
      // restore may have committed in between (no card is posted for something that cannot be confirmed).
      if (agent.status === 'decommissioned') throw conflict(decommissionedMessage(agent, 'there is nothing left to act on'));
      if (c.kind === 'restore' && agent.activeActions.length === 0) throw conflict(`agent ${agent.id} is active; there is nothing to restore`);
      const incident = await findOpenIncident(trx, c.agentId);
      const expiresAt = new Date(now.getTime() + c.ttlMs);
      await insertConfirmation(trx, {
        id,
        kind: c.kind,
        agentId: c.agentId,
        actor: c.actor,
        requester: c.requester,
        payload: c.payload,
        now,
        expiresAt,
        incidentId: incident?.id ?? null,
        actionIds: agent.activeActions.map((a) => a.id),
        agentVersion: agent.version,
      });
      if (c.answerKey !== undefined) await storeAnswer(trx, c.answerKey, { status: 202, body: awaitingConfirmation(id, expiresAt.toISOString(), incident?.id ?? null) });
      // A restore needs a second person: the request goes into the incident's thread for them.
      if (c.kind === 'restore') await addOutboxJob(trx, { jobName: CONFIRMATION_REQUEST_JOB, payload: { confirmationId: id } }, now);
    });
    return (await this.get(id))!;
  }

  async get(id: string): Promise<ConfirmationView | undefined> {
    const row = await findConfirmation(this.deps.db, id);
    if (!row) return undefined;
    const status = statusOf(row, this.deps.clock.now());
    return {
      id: row.id,
      status,
      agentId: row.agent_id,
      kind: row.kind,
      requestedBy: row.requested_by,
      ...(row.decided_by && row.decided_at ? { decidedBy: row.decided_by, decidedAt: row.decided_at.toISOString() } : {}),
      ...(status === 'cancelled' && row.decided_reason ? { reason: row.decided_reason } : {}),
      expiresAt: row.expires_at.toISOString(),
      incidentId: row.incident_id,
    };
  }

  /**
   * Under `restore.freshEvaluation`, an agent comes back only with evidence newer than the incident:
   * an evaluation observed after the open incident began. Returns why not, or undefined.
   */
  async missingFreshEvaluation(agentId: string): Promise<string | undefined> {
    if (!this.deps.policy.permissions.restore.freshEvaluation) return undefined;
    const since = await incidentAwaitingEvaluation(this.deps.db, agentId);
    return since ? `${freshEvaluationRefusal(agentId, since)} Nothing was changed.` : undefined;
  }

  /**
   * A restore asked for with an API token. The policy binds tokens as it binds people: fresh
   * evaluation first; under `secondPerson` a token is not a person, so the restore waits for one
   * (any holder of a restore role) to confirm in the incident thread.
   */
  async restoreOverApi(agentId: string, reason: string, tokenName: string, actor: string, idempotencyKey?: string): Promise<ApiRestoreOutcome> {
    const { agents, db } = this.deps;
    // A retry of a restore that was applied answers that restore (the checks below would refuse it: nothing left to restore).
    const replay = idempotencyKey ? await agents.replayed(idempotencyKey) : undefined;
    if (replay) return { applied: replay };
    // A retry of one that waits for a person answers the confirmation asked the first time: one card, one question.
    const answer = await answerOnce<AwaitingConfirmation | ActionResult>(db, idempotencyKey, () => this.askOrRestore(agentId, reason, tokenName, actor, idempotencyKey)).catch(async (err: unknown) => {
      // A concurrent retry that restored at once (no second person) leaves nothing to restore for this one: answer that restore.
      const applied = idempotencyKey ? await agents.replayed(idempotencyKey).catch(() => undefined) : undefined;
      if (applied) return { status: 201, body: applied };
      throw err;
    });
    return answer.status === 202 ? { awaiting: answer.body as AwaitingConfirmation } : { applied: answer.body as ActionResult };
  }

  /** The restore asked for over the API, as its first answer: 201 applied, or 202 asked of a person. */
  private async askOrRestore(agentId: string, reason: string, tokenName: string, actor: string, idempotencyKey: string | undefined): Promise<StoredAnswer<AwaitingConfirmation | ActionResult>> {
    const { agents, policy, db } = this.deps;
    const rule = policy.permissions.restore;
    // Unknown agent (404) and nothing to restore (409) answer the same as a direct restore.
    await agents.act(agentId, { kind: 'restore', reason, actor }, { dryRun: true });
    if (rule.freshEvaluation) {
      const since = await incidentAwaitingEvaluation(db, agentId);
      if (since) throw conflict(freshEvaluationRefusal(agentId, since));
    }
    // Checked again under the agent's lock: an incident opened since would need its own evaluation.
    if (!rule.secondPerson) return { status: 201, body: await agents.act(agentId, { kind: 'restore', reason, actor }, { freshEvaluation: rule.freshEvaluation, idempotencyKey }) };
    if (!policy.channels.incidents) {
      throw conflict(NO_CHANNEL_FOR_SECOND_PERSON);
    }
    const asked = await this.request({ kind: 'restore', agentId, actor, requester: apiRequester(tokenName), payload: { reason }, ttlMs: RESTORE_CONFIRM_MS, answerKey: idempotencyKey });
    return { status: 202, body: awaitingConfirmation(asked.id, asked.expiresAt, asked.incidentId) };
  }
}
