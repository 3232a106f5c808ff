import type { Selectable } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { ConfirmationsTable } from '../db/schema.js';
import { conflict, notFound } from '../domain/errors.js';
import { requesterFromActor, type Requester } from './same-person.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';

export type ConfirmationRow = Selectable<ConfirmationsTable>;
export type ConfirmationKind = ConfirmationsTable['kind'];
export type ConfirmationStatus = 'pending' | 'confirmed' | 'cancelled' | 'expired';

export async function insertConfirmation(
  trx: DbOrTrx,
  c: {
    id: string;
    kind: ConfirmationKind;
    agentId: string;
    actor: string;
    requester: Requester;
    payload: Record<string, unknown>;
    now: Date;
    expiresAt: Date;
    incidentId: string | null;
    actionIds: string[];
    agentVersion: bigint;
  },
): Promise<void> {
  await trx
    .insertInto('confirmations')
    .values({
      id: c.id,
      kind: c.kind,
      agent_id: c.agentId,
      requested_by: c.actor,
      payload: JSON.stringify(c.payload),
      created_at: c.now,
      expires_at: c.expiresAt,
      requested_platform: c.requester.platform,
      requested_user_id: c.requester.userId,
      requested_emails: JSON.stringify(c.requester.emails),
      requested_person: c.requester.personKey,
      incident_id: c.incidentId,
      action_ids: JSON.stringify(c.actionIds),
      agent_version: c.agentVersion.toString(),
    })
    .execute();
}

export async function findConfirmation(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<ConfirmationRow | undefined> {
  let q = db.selectFrom('confirmations').selectAll().where('id', '=', id);
  if (options.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

export function statusOf(row: Pick<ConfirmationRow, 'outcome' | 'expires_at'>, now: Date): ConfirmationStatus {
  if (row.outcome === 'confirmed') return 'confirmed';
  if (row.outcome === 'cancelled') return 'cancelled';
  return row.expires_at.getTime() <= now.getTime() ? 'expired' : 'pending';
}

/**
 * Cancels the agent's open restore confirmations, in the caller's transaction: called when its
 * incident ends or a new one opens, so a button asked about one incident can never lift another.
 * Revoke confirmations stay: a revoke only ever takes more away, and only its requester can click it.
 */
export async function cancelOpenRestoreConfirmations(trx: DbOrTrx, agentId: string, by: { actor: string; reason: string; now: Date }): Promise<string[]> {
  const rows = await trx
    .updateTable('confirmations')
    .set({ decided_at: by.now, decided_by: by.actor, outcome: 'cancelled', decided_reason: by.reason })
    .where('agent_id', '=', agentId)
    .where('kind', '=', 'restore')
    .where('decided_at', 'is', null)
    .returning('id')
    .execute();
  for (const r of rows) await announceDecided(trx, r.id, by.now);
  return rows.map((r) => r.id);
}

/**
 * A restore confirmation was decided: its request in the incident thread is updated (the outcome in
 * place of the buttons), by the same job that posted it, committed with the decision.
 */
export async function announceDecided(trx: DbOrTrx, id: string, now: Date): Promise<void> {
  await addOutboxJob(trx, { jobName: 'confirmation-request', payload: { confirmationId: id } }, now);
}

/** Why a confirmation bound to an incident cannot be used any more, or undefined. */
export function incidentEnded(row: Pick<ConfirmationRow, 'kind' | 'incident_id'>, openIncidentId: string | null): string | undefined {
  if (row.kind !== 'restore' || row.incident_id === null || row.incident_id === openIncidentId) return undefined;
  return `This confirmation was for incident ${row.incident_id}, which has ended${openIncidentId ? ` (incident ${openIncidentId} is open now)` : ''}. Ask again if it still applies`;
}

/**
 * Marks a confirmation confirmed inside the action's transaction, after the agent row is locked:
 * so the checks (still pending, not expired, the same incident, no newer restriction) and the
 * action itself see one state. Throws a coded error (the action then rolls back) when it may not.
 */
export async function claimConfirmation(
  trx: DbOrTrx,
  id: string,
  at: { agentId: string; openIncidentId: string | null; activeActionIds: string[]; actor: string; now: Date },
): Promise<ConfirmationRow> {
  const row = await findConfirmation(trx, id, { forUpdate: true });
  if (!row || row.agent_id !== at.agentId) throw notFound(`unknown confirmation ${id}`);
  const ended = incidentEnded(row, at.openIncidentId);
  if (ended) throw conflict(ended);
  const status = statusOf(row, at.now);
  if (status === 'confirmed') throw conflict(`this confirmation was already confirmed by ${row.decided_by}`);
  if (status === 'cancelled') throw conflict(`this confirmation was cancelled by ${row.decided_by}${row.decided_reason ? ` (${row.decided_reason})` : ''}`);
  if (status === 'expired') throw conflict(`this confirmation expired at ${row.expires_at.toISOString()}; ask again`);
  if (row.kind === 'restore' && row.requested_platform !== null) {
    // A restriction added after the question was asked is new information: whoever confirms must see it.
    const asked = new Set(row.action_ids);
    const newer = at.activeActionIds.filter((a) => !asked.has(a));
    if (newer.length) throw conflict(`the incident changed after this restore was asked (action ${newer.join(', ')} was added since); ask again if it still applies`);
  }
  await trx.updateTable('confirmations').set({ decided_at: at.now, decided_by: at.actor, outcome: 'confirmed' }).where('id', '=', id).execute();
  if (row.kind === 'restore') await announceDecided(trx, id, at.now);
  return row;
}

/** Who asked, from the row; rows made before 0008 only have the actor string. */
export function requesterOfRow(row: ConfirmationRow): Requester {
  if (row.requested_platform === null || row.requested_user_id === null) return requesterFromActor(row.requested_by);
  return { platform: row.requested_platform, userId: row.requested_user_id, emails: row.requested_emails, personKey: row.requested_person };
}
