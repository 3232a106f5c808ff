import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { appendAudit } from '../audit/audit.repository.js';
import { invalidInput, notFound } from '../domain/errors.js';
import { freshnessOf, type Freshness } from '../domain/trust-score.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import type { Policy } from '../policy/policy.schema.js';
import { buildPacket, packetHash } from './build-packet.js';
import type { TrustPacket } from './packet.js';
import type { JobName } from '../queue/job-contracts.js';

export const BUILD_PACKET_JOB = 'build-packet' satisfies JobName;
/** Posts a built packet's summary (and the PDF) where it was asked for (queue `notify`). */
export const PACKET_DELIVERY_JOB = 'packet-delivery' satisfies JobName;

export interface PacketRequest {
  agentId: string;
  audience?: string;
  workflow?: string;
  /** Where to post the summary when it is built (a chat channel), if it was asked for in chat. */
  deliverTo?: { platform: 'slack' | 'teams'; channel: string };
}

export interface PacketStatus {
  id: string;
  agentId: string;
  status: 'building' | 'ready' | 'failed';
  requestedBy: string;
  createdAt: string;
  readyAt: string | null;
  contentHash: string | null;
  error: string | null;
}

/** The error for a workflow the policy does not name: says which ones it does. */
export function unknownWorkflow(name: string, known: string[]) {
  const shown = JSON.stringify(name.slice(0, 64));
  return invalidInput(
    known.length ? `unknown workflow ${shown}; the policy names ${known.slice(0, 20).join(', ')}${known.length > 20 ? ` and ${known.length - 20} more` : ''}` : `unknown workflow ${shown}; the policy names no workflows (add them under workflows:)`,
  );
}

/**
 * Trust packets: requested (acknowledged at once), built by a job, stored with their content hash
 * and the audit chain head they were built from, verifiable later.
 */
export class PacketService {
  constructor(private readonly deps: { db: Db; clock: Clock; policy: Policy }) {}

  async request(req: PacketRequest, requestedBy: string): Promise<PacketStatus> {
    const { db, clock } = this.deps;
    const agent = await db.selectFrom('agents').select('id').where('id', '=', req.agentId).executeTakeFirst();
    if (!agent) throw notFound(`unknown agent ${req.agentId}`);
    if (req.workflow !== undefined && !Object.hasOwn(this.deps.policy.workflows, req.workflow)) throw unknownWorkflow(req.workflow, Object.keys(this.deps.policy.workflows));
    const id = randomUUID();
    const now = clock.now();
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('trust_packets')
        .values({ id, agent_id: req.agentId, status: 'building', requested_by: requestedBy, audience: req.audience ?? null, workflow: req.workflow ?? null, deliver_to: req.deliverTo ? JSON.stringify(req.deliverTo) : null, created_at: now })
        .execute();
      await appendAudit(trx, { actor: requestedBy, action: 'packet.requested', subject: req.agentId, payload: { packetId: id, audience: req.audience ?? null, workflow: req.workflow ?? null }, at: now });
      await addOutboxJob(trx, { jobName: BUILD_PACKET_JOB, payload: { packetId: id } }, now);
    });
    return (await this.status(id))!;
  }

  /** Builds a packet (the job). Idempotent: a packet already built is left as it is. */
  async build(packetId: string): Promise<'built' | 'already_built' | 'gone'> {
    const { db, clock, policy } = this.deps;
    const row = await db.selectFrom('trust_packets').selectAll().where('id', '=', packetId).executeTakeFirst();
    if (!row) return 'gone';
    if (row.status === 'ready') return 'already_built';
    const now = clock.now();
    const packet = await buildPacket(db, policy, { id: row.id, agentId: row.agent_id, requestedBy: row.requested_by, audience: row.audience, workflow: row.workflow }, now);
    const hash = packetHash(packet);
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('trust_packets')
        .set({ status: 'ready', content: JSON.stringify(packet), content_hash: hash, audit_head_seq: packet.auditIntegrity.headSeq, audit_head_hash: packet.auditIntegrity.headHash, ready_at: now })
        .where('id', '=', packetId)
        .where('status', '=', 'building')
        .execute();
      await appendAudit(trx, { actor: 'system:packets', action: 'packet.built', subject: row.agent_id, payload: { packetId, contentHash: hash }, at: now });
      if (row.deliver_to) await addOutboxJob(trx, { jobName: PACKET_DELIVERY_JOB, payload: { packetId } }, now);
    });
    return 'built';
  }

  async status(id: string): Promise<PacketStatus | undefined> {
    const row = await this.deps.db.selectFrom('trust_packets').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      agentId: row.agent_id,
      status: row.status,
      requestedBy: row.requested_by,
      createdAt: row.created_at.toISOString(),
      readyAt: row.ready_at?.toISOString() ?? null,
      contentHash: row.content_hash,
      error: row.error,
    };
  }

  async deliveryTarget(id: string): Promise<{ platform: 'slack' | 'teams'; channel: string } | undefined> {
    const row = await this.deps.db.selectFrom('trust_packets').select('deliver_to').where('id', '=', id).executeTakeFirst();
    return (row?.deliver_to as { platform: 'slack' | 'teams'; channel: string } | null) ?? undefined;
  }

  async content(id: string): Promise<TrustPacket | undefined> {
    const row = await this.deps.db.selectFrom('trust_packets').select(['content', 'status']).where('id', '=', id).executeTakeFirst();
    return row?.status === 'ready' ? (row.content as TrustPacket) : undefined;
  }

  /** Recomputes the stored packet's hash, and says how current its evidence still is. */
  async verify(id: string): Promise<{ id: string; intact: boolean; storedHash: string | null; computedHash: string | null; builtFromAuditHead: { seq: string | null; hash: string | null }; evidenceAtBuild: Freshness | null; evidenceNow: Freshness }> {
    const { db, clock, policy } = this.deps;
    const row = await db.selectFrom('trust_packets').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`unknown trust packet ${id}`);
    const computed = row.content ? packetHash(row.content as TrustPacket) : null;
    const newest = await db.selectFrom('evaluations').select((eb) => eb.fn.max('observed_at').as('at')).where('agent_id', '=', row.agent_id).executeTakeFirst();
    const newestAt = newest?.at ? new Date(newest.at as unknown as string) : null;
    return {
      id,
      intact: row.status === 'ready' && computed !== null && computed === row.content_hash,
      storedHash: row.content_hash,
      computedHash: computed,
      builtFromAuditHead: { seq: row.audit_head_seq, hash: row.audit_head_hash },
      evidenceAtBuild: (row.content as TrustPacket | null)?.summary.evidence ?? null,
      evidenceNow: freshnessOf(newestAt, clock.now(), policy.trust.freshness),
    };
  }
}
