import type { IncomingMessage, ServerResponse } from 'node:http';
import { agentIdSchema } from '../api/schemas.js';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { RoutingRules } from '../domain/decide.js';
import { CodedError, ErrorCode, invalidInput } from '../domain/errors.js';
import { assertAgentInScope } from '../http/auth.js';
import type { RawContext, Router } from '../http/router.js';
import type { Logger } from '../observability/logger.js';
import type { PermissionView } from '../permissions/permission-view.js';
import { StreamHub } from './stream-hub.js';
import type { Live } from '../policy/policy-holder.js';

export interface StreamDeps {
  view: PermissionView;
  db: Db;
  clock: Clock;
  logger: Logger;
  /** The policy's routing rules, or a function answering the ones in force (live policy). */
  routing: Live<RoutingRules>;
  /** Registers the hub's shutdown with the app's (it ends every open stream). */
  onStop?: (stop: () => Promise<void>) => void;
  /** How many recent changes a resume can be served from (default 10,000). */
  replayBufferSize?: number;
  /** How often a fresh view sends a heartbeat comment (default 1 s). */
  heartbeatMs?: number;
  /** How far back a resume replays request changes (see StreamHubOptions.resumeWindowMs). */
  resumeWindowMs?: number;
}

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.InvalidInput]: 400,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.Unavailable]: 503,
};

/** A resume position: a version as a decimal string (anything else is "unknown", answered with a snapshot). */
const VERSION = /^\d{1,19}$/;

/** `GET /v1/stream` (docs/stream.md): the permission state of the token's agents as Server-Sent Events. */
export function addStreamRoutes(router: Router, deps: StreamDeps): StreamHub {
  const hub = new StreamHub({
    view: deps.view,
    db: deps.db,
    clock: deps.clock,
    logger: deps.logger,
    routing: deps.routing,
    ...(deps.replayBufferSize !== undefined ? { replayBufferSize: deps.replayBufferSize } : {}),
    ...(deps.heartbeatMs !== undefined ? { heartbeatMs: deps.heartbeatMs } : {}),
    ...(deps.resumeWindowMs !== undefined ? { resumeWindowMs: deps.resumeWindowMs } : {}),
  });
  deps.onStop?.(async () => hub.stop());
  router.add({
    method: 'GET',
    path: '/v1/stream',
    auth: 'platform',
    raw: (req, res, ctx) => {
      let request: { agentId: string | undefined; lastEventId: bigint | undefined };
      try {
        request = readStreamRequest(req, ctx, deps.view);
      } catch (err) {
        if (!(err instanceof CodedError)) throw err;
        sendError(res, err, ctx.requestId);
        return;
      }
      hub.open(res, request.agentId, request.lastEventId, ctx.requestId).catch((err: unknown) => {
        deps.logger.error({ err, requestId: ctx.requestId }, 'starting a change stream failed');
        if (!res.headersSent) sendError(res, new CodedError(ErrorCode.Unavailable, 'the change stream could not start; retry'), ctx.requestId);
        else res.destroy();
      });
    },
  });
  return hub;
}

/** Checks the query, the token's reach and the view before anything is streamed; throws a CodedError. */
function readStreamRequest(req: IncomingMessage, ctx: RawContext, view: PermissionView): { agentId: string | undefined; lastEventId: bigint | undefined } {
  for (const key of ctx.query.keys()) {
    if (key !== 'agentId') throw invalidInput(`unknown query parameter "${key.slice(0, 64)}": the stream takes only agentId`);
  }
  const ids = ctx.query.getAll('agentId');
  if (ids.length > 1) throw invalidInput('give agentId at most once');
  let agentId: string | undefined;
  if (ids.length === 1) {
    const checked = agentIdSchema.safeParse(ids[0]);
    if (!checked.success) throw invalidInput(`agentId: ${checked.error.issues[0]?.message ?? 'not a valid agent id'}`);
    agentId = checked.data;
    assertAgentInScope(ctx.token, agentId);
  }
  const scope = ctx.token?.scope;
  if (scope?.kind === 'agent') agentId = scope.agentId;
  if (!view.isFresh()) {
    throw new CodedError(ErrorCode.Unavailable, 'view_stale: this replica cannot confirm its permission view is current; retry, or connect to another replica');
  }
  const header = req.headers['last-event-id'];
  const lastEventId = typeof header === 'string' && VERSION.test(header.trim()) ? BigInt(header.trim()) : undefined;
  return { agentId, lastEventId };
}

/** The same JSON error the rest of the API answers with. */
function sendError(res: ServerResponse, err: CodedError, requestId: string): void {
  const status = HTTP_STATUS[err.code] ?? 400;
  const body = JSON.stringify({ error: { code: err.code, message: err.message, requestId } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': requestId,
    ...(status === 503 ? { 'retry-after': '1' } : {}),
  });
  res.end(body);
}
