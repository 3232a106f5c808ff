import { createHash } from 'node:crypto';
import type { ApiToken, TokenScope } from '../config/env.js';
import { CodedError, ErrorCode } from '../domain/errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

/** Who is calling: the token's name (the audit actor) and what it may do. */
export interface ApiPrincipal {
  readonly name: string;
  readonly scope: TokenScope;
}

/**
 * What a route needs. `platform`: decisions, approval requests, reading agents and scores (a
 * `platform` or `agent=` token will do, an agent token for its own agent only). `admin`: everything
 * else. `true` is read as `admin`, so a route nobody classified stays closed to narrower tokens.
 */
export type RouteAuth = 'admin' | 'platform' | true;

/** How a scope is written in ARMALO_API_TOKENS, for messages. */
export const describeScope = (scope: TokenScope) => (scope.kind === 'agent' ? `agent=${scope.agentId}` : scope.kind);

/** May a token with this scope call a route that needs `needs`? Per-agent limits are checked separately. */
export function scopeAllows(scope: TokenScope, needs: RouteAuth): boolean {
  return scope.kind === 'admin' || needs === 'platform';
}

/** The 403 for a route this token's scope does not reach; it names the scope needed. */
export function scopeRefusal(principal: ApiPrincipal, method: string, path: string): CodedError {
  return new CodedError(
    ErrorCode.Forbidden,
    `this token (scope ${describeScope(principal.scope)}) may not call ${method} ${path}: it needs a token with scope admin`,
  );
}

/**
 * Throws 403 unless the token may act for this agent: an `agent=<id>` token reaches its own agent
 * only; admin and platform tokens reach every agent. Cheap enough for the decision path.
 */
export function assertAgentInScope(principal: ApiPrincipal | undefined, agentId: string): void {
  const scope = principal?.scope;
  if (scope?.kind === 'agent' && scope.agentId !== agentId) {
    throw new CodedError(
      ErrorCode.Forbidden,
      `this token (scope agent=${scope.agentId}) may only be used for agent ${scope.agentId}, not for agent ${agentId}`,
    );
  }
}

/**
 * Bearer tokens, compared by their SHA-256: a lookup keyed by the digest never compares the
 * secret itself byte by byte, so response time tells an attacker nothing about a near miss.
 */
export class TokenAuthenticator {
  private readonly byDigest: Map<string, ApiPrincipal>;
  /**
   * Headers already proven valid, so the hot path skips the digest. Only successes are cached
   * (a wrong token is always hashed), and only a caller who already holds the token can hit it.
   */
  private readonly known = new Map<string, ApiPrincipal>();

  constructor(tokens: readonly ApiToken[]) {
    // One frozen principal per token: requests share it, so the hot path allocates nothing for it.
    this.byDigest = new Map(tokens.map((t) => [digest(t.token), Object.freeze({ name: t.name, scope: t.scope })]));
  }

  /** The token's principal, or undefined when the header is missing, malformed or unknown. */
  authenticate(header: string | undefined): ApiPrincipal | undefined {
    if (!header) return undefined;
    const cached = this.known.get(header);
    if (cached !== undefined) return cached;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return undefined;
    const principal = this.byDigest.get(digest(match[1]!));
    if (principal !== undefined) {
      if (this.known.size >= 1000) this.known.clear();
      this.known.set(header, principal);
    }
    return principal;
  }
}

/**
 * For routes addressed by a record id (an approval request, a confirmation): an `agent=` token
 * reaches only records of its own agent. `agentOf` loads the record's agent id (undefined: no such
 * record, answered 404 by the caller's `unknown`); other tokens skip the lookup entirely.
 */
export async function assertRecordInScope(
  principal: ApiPrincipal | undefined,
  agentOf: () => Promise<string | undefined>,
  unknown: () => Error,
): Promise<void> {
  if (principal?.scope.kind !== 'agent') return;
  const agentId = await agentOf();
  if (agentId === undefined) throw unknown();
  assertAgentInScope(principal, agentId);
}
