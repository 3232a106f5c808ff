import {
  consoleSessionDeleteQuerySchema,
  consoleSessionIdSchema,
  consoleSessionListQuerySchema,
  consoleSessionRevokeInputSchema,
  type ApproverIdentity,
} from '../../api/schemas.js';
import { encodeCursor } from '../../core/cursor.js';
import { notFound } from '../../domain/errors.js';
import type { ConsoleSessions } from '../../console/console-sessions.js';
import { queryObject } from '../query.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';

/** How a person given to the API is written back (and names them in the audit entry). */
const personText = (p: ApproverIdentity) => (p.kind === 'email' ? p.id : `${p.kind}:${p.id}`);

/**
 * The web console's sessions for administrators (admin tokens only): list the open ones, end one,
 * or end every session of a person (a lost laptop, someone leaving). Each revocation that ends a
 * session writes one audit entry in the same transaction; the ended session's next page or post
 * is treated as signed out.
 */
export function addConsoleSessionRoutes(router: Router, deps: { sessions: ConsoleSessions }): void {
  router.add({
    method: 'GET',
    path: '/v1/console/sessions',
    auth: 'admin',
    handler: async (ctx) => {
      const query = parseInput(consoleSessionListQuerySchema, queryObject(ctx.query), 'query');
      const after = query.cursor?.at !== undefined ? { at: query.cursor.at, id: query.cursor.id } : undefined;
      const page = await deps.sessions.list(query.person ? { person: query.person } : {}, { limit: query.limit, ...(after ? { after } : {}) });
      return { status: 200, body: { items: page.items, nextCursor: page.nextAfter ? encodeCursor('sessions', page.nextAfter) : null } };
    },
  });

  router.add({
    method: 'DELETE',
    path: '/v1/console/sessions/{sessionId}',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(consoleSessionIdSchema, ctx.params.sessionId, 'session id');
      const query = parseInput(consoleSessionDeleteQuerySchema, queryObject(ctx.query), 'query');
      const result = await deps.sessions.revokeSession(id, { actor: apiActor(ctx.tokenName), reason: query.reason ?? 'revoked over the API' });
      if (!result) throw notFound(`unknown console session ${id}`);
      return { status: 200, body: result };
    },
  });

  router.add({
    method: 'POST',
    path: '/v1/console/sessions:revoke',
    auth: 'admin',
    handler: async (ctx) => {
      const body = parseInput(consoleSessionRevokeInputSchema, ctx.body, 'body');
      const person = personText(body.person);
      const result = await deps.sessions.revokePerson(body.person, { actor: apiActor(ctx.tokenName), reason: body.reason, subject: person, scope: 'person' });
      return { status: 200, body: { person, ...result } };
    },
  });
}
