import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostHeaderValidation, originValidation, toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, type AuthInfo } from '@modelcontextprotocol/server';
import type { ApprovalService } from '../approvals/approvals.service.js';
import { agentIdSchema } from '../api/schemas.js';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { DecisionService } from '../decisions/decision.service.js';
import { describeScope, type ApiPrincipal } from '../http/auth.js';
import type { RawContext, Router } from '../http/router.js';
import type { Logger } from '../observability/logger.js';
import type { PermissionView } from '../permissions/permission-view.js';
import type { Policy } from '../policy/policy.schema.js';
import { createArmaloMcpServer, type McpSession } from './tools.js';

export interface McpDeps {
  view: PermissionView;
  decisions: DecisionService;
  approvals: ApprovalService;
  db: Db;
  clock: Clock;
  logger: Logger;
  policy: Policy;
  /** ARMALO_PUBLIC_URL: this service's own origin. Unset: the request's Host is the own origin. */
  publicUrl?: string | undefined;
}

export const MCP_PATH = '/mcp';

/** Host names a local client (a stdio bridge on the same machine, a health check) may always use. */
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'];

/** A JSON-RPC error answer: what an MCP client understands, before the protocol handler is reached. */
function refuse(res: ServerResponse, status: number, message: string, requestId: string): void {
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-request-id': requestId, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/**
 * Browsers send `Origin`; MCP clients do not. A page on another site must never drive an agent's
 * tools with a token it got hold of (DNS rebinding, a local server): a present Origin must be this
 * service's own, compared in full (scheme, host and port) against ARMALO_PUBLIC_URL, else host and
 * port against the request's Host.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, publicUrl: string | undefined): boolean {
  if (origin === undefined) return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (parsed.origin === 'null') return false;
  if (publicUrl) return parsed.origin === new URL(publicUrl).origin;
  return host !== undefined && parsed.host === host.toLowerCase();
}

/**
 * Which agent this request acts for: an `agent=<id>` token fixes it (a different `?agentId=` is
 * refused, as REST refuses it); admin and platform tokens name it with `?agentId=<id>`.
 */
export function sessionAgent(token: ApiPrincipal, query: URLSearchParams): { agentId: string } | { status: number; message: string } {
  const asked = query.get('agentId') ?? undefined;
  if (asked !== undefined && !agentIdSchema.safeParse(asked).success) {
    return { status: 400, message: 'invalid agentId: expected 1-128 letters, digits, dots, dashes or underscores, starting with a letter or digit' };
  }
  if (token.scope.kind === 'agent') {
    if (asked !== undefined && asked !== token.scope.agentId) {
      return { status: 403, message: `this token (scope agent=${token.scope.agentId}) may only be used for agent ${token.scope.agentId}, not for agent ${asked}` };
    }
    return { agentId: token.scope.agentId };
  }
  if (asked === undefined) {
    return { status: 400, message: `a token with scope ${describeScope(token.scope)} names the agent on the URL: ${MCP_PATH}?agentId=<agent id>` };
  }
  return { agentId: asked };
}

/**
 * Streamable HTTP MCP at `/mcp` (DESIGN §5, docs/mcp.md), stateless: every HTTP request gets a fresh
 * server bound to one agent. Our server checked the bearer token and its scope before this runs
 * (the SDK checks none); here: the Origin and Host, then which agent the session is for.
 */
export function addMcpRoutes(router: Router, deps: McpDeps): void {
  const handler = createMcpHandler(
    (ctx) => {
      const session = ctx.authInfo?.extra?.armalo as McpSession | undefined;
      // Unreachable through our route (it always passes the session); fail closed all the same.
      if (!session) throw new Error('MCP request without an Armalo session');
      return createArmaloMcpServer(deps, session);
    },
    { legacy: 'stateless', onerror: (err) => deps.logger.warn({ err: err.message }, 'MCP request refused or failed') },
  );
  const serve = toNodeHandler(handler, { onerror: (err) => deps.logger.error({ err }, 'MCP handler failed') });
  // The SDK's own guards, on top of the stricter origin check below: the Host must be the public
  // host (or loopback) when ARMALO_PUBLIC_URL says what it is; a present Origin's host must match.
  const publicHost = deps.publicUrl ? new URL(deps.publicUrl).hostname : undefined;
  const validateHost = publicHost ? hostHeaderValidation([publicHost, ...LOOPBACK_HOSTS]) : undefined;

  const raw = (req: IncomingMessage, res: ServerResponse, ctx: RawContext) => {
    const token = ctx.token;
    if (!token) return refuse(res, 401, 'missing Authorization: Bearer <token> header', ctx.requestId);
    const origin = req.headers.origin;
    if (!originAllowed(origin, req.headers.host, deps.publicUrl)) {
      return refuse(res, 403, 'requests from another origin are refused: MCP is served to clients of this service only', ctx.requestId);
    }
    if (validateHost && !validateHost(req, res)) return;
    if (origin !== undefined && !originValidation([publicHost ?? new URL(`http://${req.headers.host ?? ''}`).hostname])(req, res)) return;
    const agent = sessionAgent(token, ctx.query);
    if ('status' in agent) return refuse(res, agent.status, agent.message, ctx.requestId);
    const session: McpSession = { agentId: agent.agentId, tokenName: token.name };
    // The SDK passes this through to the factory untouched. The bearer token itself stays out of it.
    const auth: AuthInfo = { token: '', clientId: token.name, scopes: [describeScope(token.scope)], extra: { armalo: session } };
    void serve(Object.assign(req, { auth }), res).catch((err: unknown) => {
      deps.logger.error({ err, requestId: ctx.requestId }, 'MCP request failed');
      if (!res.headersSent) refuse(res, 500, `something went wrong on our side (request ${ctx.requestId})`, ctx.requestId);
      else res.destroy();
    });
  };

  // POST carries every call; GET and DELETE (2025 session operations) get the SDK's own answer (405 when stateless).
  for (const method of ['POST', 'GET', 'DELETE'] as const) router.add({ method, path: MCP_PATH, auth: 'platform', raw });
}
