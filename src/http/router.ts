import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiPrincipal, RouteAuth } from './auth.js';

export interface RequestContext {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON body (routes that take one), else undefined. */
  body: unknown;
  /** The API token's name, on authenticated routes. */
  tokenName: string | undefined;
  /** The API token's name and scope, on authenticated routes (routes check per-agent limits with it). */
  token: ApiPrincipal | undefined;
  /** The body as received, on `rawBody` routes. */
  rawBody?: string;
  /** The request itself, unread, on `streamBody` routes (the handler reads the body as it goes). */
  req?: IncomingMessage;
  requestId: string;
}

export interface HttpResult {
  status: number;
  body?: unknown;
  /** The JSON body already serialized (the decision path builds its answer's text directly). */
  json?: string;
  /** Plain text instead of JSON (e.g. Prometheus exposition). */
  text?: string;
  /** Binary content (e.g. a PDF); give its content-type in headers. */
  buffer?: Buffer;
  headers?: Record<string, string>;
}

export type Handler = (ctx: RequestContext) => HttpResult | Promise<HttpResult>;

/**
 * What a `raw` route gets besides the request: on a route with `auth`, the token was checked (and its
 * scope, and a `{agentId}` path parameter against it) before the route saw the request.
 */
export interface RawContext {
  params: Record<string, string>;
  query: URLSearchParams;
  token: ApiPrincipal | undefined;
  requestId: string;
}

export interface Route {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** `/v1/agents/{agentId}`: literal segments and `{name}` parameters. */
  path: string;
  /**
   * Which API tokens may call it: `false` none needed; `'platform'` platform and agent tokens too
   * (an `agent=` token only for its own agent: a `{agentId}` path parameter is checked for every
   * route, the body or the stored record by the handler); `'admin'` (or `true`) admin tokens only.
   */
  auth: false | RouteAuth;
  /** A POST that may come without a body (e.g. `…/cancel`). */
  bodyOptional?: boolean;
  /** The handler gets the raw body (signed webhooks verify the exact bytes). */
  rawBody?: boolean;
  /** The largest body this route reads, in bytes (default MAX_BODY_BYTES, 64 KB). */
  bodyLimit?: number;
  /** The handler reads the body itself from `ctx.req` (a stream too large to hold, e.g. an NDJSON import). */
  streamBody?: boolean;
  handler?: Handler;
  /**
   * A platform adapter that reads the request itself (Slack's signature covers the raw body,
   * so it must see the bytes untouched).
   */
  raw?: (req: IncomingMessage, res: ServerResponse, ctx: RawContext) => void;
}

interface CompiledRoute extends Route {
  segments: string[];
}

export type Match = { route: Route; params: Record<string, string> } | { allowed: string[] } | undefined;

/** The parameters of a route without any (shared, so frozen). */
const NO_PARAMS: Record<string, string> = Object.freeze({});

/** A small, allocation-light router: the decision path runs through it thousands of times a second. */
export class Router {
  private readonly routes: CompiledRoute[] = [];
  /** Routes without parameters, by path then method, with their match made once: nothing allocated, for the hot paths. */
  private readonly exact = new Map<string, Map<string, { route: Route; params: Record<string, string> }>>();

  add(route: Route): this {
    this.routes.push({ ...route, segments: route.path.split('/').filter(Boolean) });
    if (!route.path.includes('{')) {
      let byMethod = this.exact.get(route.path);
      if (!byMethod) this.exact.set(route.path, (byMethod = new Map()));
      byMethod.set(route.method, Object.freeze({ route, params: NO_PARAMS }));
    }
    return this;
  }

  /**
   * The route without parameters at exactly this path, if any. A request target that equals one
   * of our literal paths needs no URL parsing (the server's fast path for the decision endpoint).
   */
  matchExact(method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    return this.exact.get(path)?.get(method);
  }

  match(method: string, path: string): Match {
    const exact = this.exact.get(path)?.get(method);
    if (exact) return exact;
    const parts = path.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const route of this.routes) {
      if (route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const seg = route.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith('{')) {
          try {
            params[seg.slice(1, -1)] = decodeURIComponent(part);
          } catch {
            ok = false;
            break;
          }
        } else if (seg !== part) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (route.method === method) return { route, params };
      allowed.push(route.method);
    }
    return allowed.length ? { allowed } : undefined;
  }
}
