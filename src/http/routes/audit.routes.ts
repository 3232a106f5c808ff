import type { Db } from '../../db/database.js';
import { listAudit, verifyAudit } from '../../audit/audit.repository.js';
import { auditQuerySchema, auditVerifyQuerySchema } from '../../api/schemas.js';
import type { Clock } from '../../core/clock.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';

export function addAuditRoutes(router: Router, deps: { db: Db; clock?: Clock }): void {
  router.add({
    method: 'GET',
    path: '/v1/audit',
    auth: 'admin',
    handler: async (ctx) => {
      const query = parseInput(auditQuerySchema, Object.fromEntries(ctx.query), 'query');
      const rows = await listAudit(deps.db, { subject: query.agentId, beforeSeq: query.before, limit: query.limit });
      return {
        status: 200,
        body: {
          entries: rows.map((r) => ({
            seq: r.seq,
            at: r.at.toISOString(),
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            payload: r.payload,
            prevHash: r.prev_hash,
            hash: r.hash,
          })),
          nextBefore: rows.length === query.limit ? rows[rows.length - 1]!.seq : null,
        },
      };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/audit/verify',
    auth: 'admin',
    handler: async (ctx) => {
      const query = parseInput(auditVerifyQuerySchema, Object.fromEntries(ctx.query), 'query');
      return { status: 200, body: await verifyAudit(deps.db, { full: query.full === 'true', now: deps.clock?.now() }) };
    },
  });
}
