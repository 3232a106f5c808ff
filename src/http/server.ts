import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ErrorCode, isCodedError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import { isDatabaseUnavailable } from '../db/database.js';
import type { Metrics } from '../observability/metrics.js';
import { tracing } from '../observability/tracing.js';
import { assertAgentInScope, scopeAllows, scopeRefusal, type ApiPrincipal, type TokenAuthenticator } from './auth.js';
import { assertJsonBody, HttpError, parseJsonText, readBodyInto, type BodySink } from './body.js';
import { BodyDeadlineWatcher, type BodyDeadlines } from './body-deadline.js';
import type { HttpResult, RequestContext, Route, Router } from './router.js';

const STATUS_FOR: Record<ErrorCode, number> = {
  [ErrorCode.InvalidInput]: 400,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.Unavailable]: 503,
};

function errorBody(code: string, message: string, requestId: string, details?: unknown) {
  return { error: { code, message, ...(Array.isArray(details) ? { details } : {}), requestId } };
}

// Request ids: a random per-process prefix and a counter. Unique across replicas for practical
// purposes, and far cheaper than a UUID per request on the hot path.
const REQUEST_ID_PREFIX = randomBytes(6).toString('hex');
let requestCounter = 0;
const nextRequestId = () => `${REQUEST_ID_PREFIX}-${(++requestCounter).toString(36)}`;

const EMPTY_QUERY = new URLSearchParams();
/** The parameters before a route matched (never seen by a handler). */
const UNMATCHED_PARAMS: Record<string, string> = Object.freeze({});
// Paths made of unreserved characters only, without dot segments, need no URL parsing.
const SIMPLE_PATH = /^(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+\/?$|^\/$/;

/** Only origin-form targets (`/path?query`); `//host/...` and absolute URLs are refused, not reinterpreted. */
function parseTarget(target: string | undefined): { pathname: string; searchParams: URLSearchParams } {
  if (!target || !target.startsWith('/') || target.startsWith('//')) {
    throw new HttpError(400, ErrorCode.InvalidInput, 'the request path must start with a single "/"');
  }
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  if (SIMPLE_PATH.test(path)) {
    return { pathname: path, searchParams: q === -1 ? EMPTY_QUERY : new URLSearchParams(target.slice(q + 1)) };
  }
  try {
    return new URL(`http://localhost${target}`);
  } catch {
    throw new HttpError(400, ErrorCode.InvalidInput, 'the request path is not a valid URL path');
  }
}

function send(res: ServerResponse, result: HttpResult, requestId: string): void {
  if (result.buffer) {
    res.writeHead(result.status, { 'content-length': result.buffer.length, 'x-request-id': requestId, ...result.headers });
    res.end(result.buffer);
    return;
  }
  const text = result.text !== undefined;
  const payload = text ? result.text! : result.json !== undefined ? result.json : result.body === undefined ? '' : JSON.stringify(result.body);
  // A flat [name, value, …] list: the cheapest form of headers for Node to validate and write.
  const length = String(Buffer.byteLength(payload));
  const headers: string[] = text
    ? ['content-type', 'text/plain; charset=utf-8', 'content-length', length, 'x-request-id', requestId]
    : ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', length, 'x-request-id', requestId];
  if (result.headers) for (const [name, value] of Object.entries(result.headers)) {
    const i = headers.indexOf(name);
    if (i !== -1 && i % 2 === 0) headers[i + 1] = value;
    else headers.push(name, value);
  }
  res.writeHead(result.status, headers);
  res.end(payload);
}

export interface HttpServerDeps {
  router: Router;
  auth: TokenAuthenticator;
  logger: Logger;
  metrics: Metrics;
  /** How long a body may take to arrive (default: 60 s; 15 min for the streamed import). */
  bodyDeadlines?: BodyDeadlines;
}

type Deps = HttpServerDeps & { deadlines: BodyDeadlineWatcher };

/**
 * One HTTP server for everything (REST, health, metrics, and later the chat platforms). Plain
 * node:http: the decision path is hot, and a framework would cost throughput for nothing we need.
 */
export function createHttpServer(input: HttpServerDeps): Server {
  const deps: Deps = { ...input, deadlines: new BodyDeadlineWatcher(input.bodyDeadlines) };
  const server = createServer((req, res) => handle(deps, req, res));
  // Requests Node cannot even parse (bad bytes in the request line, oversized headers) still get
  // a JSON answer rather than a bare socket close.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) {
      const body = JSON.stringify({ error: { code: 'invalid_input', message: 'malformed HTTP request', requestId: randomUUID() } });
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
  // Longer than common load balancers' idle timeout, so they never reuse a socket we closed.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Bodies have a deadline per request (60 s; the streamed import 15 min), not Node's one value.
  deps.deadlines.install(server);
  return server;
}

function handle(deps: Deps, req: IncomingMessage, res: ServerResponse): void {
  new Exchange(deps, req, res).run();
}

/**
 * One request and its answer. Callbacks, not an async function: the body's end calls on, and a
 * synchronous handler (the decision path) is answered in the same turn, with no promise or
 * microtask between the request and the answer.
 */
class Exchange implements BodySink {
  /** A monotonic double in ms: no BigInt to allocate per request. */
  private readonly started = performance.now();
  private readonly requestId = nextRequestId();
  private readonly method: string;
  private routeLabel = 'unmatched';
  private status = 500;
  private route: Route | undefined;
  private params: Record<string, string> = UNMATCHED_PARAMS;
  private pathname = '';
  private query = EMPTY_QUERY;
  private token: ApiPrincipal | undefined;
  /** The body being read is JSON (else the route takes it raw). */
  private json = false;

  constructor(
    private readonly deps: Deps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    this.method = req.method ?? 'GET';
    deps.deadlines.watch(req, res, this.started);
  }

  run(): void {
    const { deps, req, res, method, requestId } = this;
    try {
      // A target that is exactly one of our literal paths (no query) needs no parsing at all.
      const exact = req.url === undefined ? undefined : deps.router.matchExact(method, req.url);
      if (exact) {
        this.pathname = req.url!;
      } else {
        const url = parseTarget(req.url);
        this.pathname = url.pathname;
        this.query = url.searchParams;
      }
      const match = exact ?? deps.router.match(method, this.pathname);
      if (!match) throw new HttpError(404, ErrorCode.NotFound, `no such endpoint: ${method} ${this.pathname}`);
      if ('allowed' in match) {
        throw new HttpError(405, ErrorCode.InvalidInput, `${method} is not allowed here; use ${match.allowed.join(' or ')}`);
      }
      const { route, params } = match;
      this.route = route;
      this.params = params;
      this.routeLabel = route.path;
      // The route template names the request's span (`http.route`); without tracing, one read of `tracing`.
      if (tracing) tracing.setRoute(method, route.path);
      if (route.raw && !route.auth) {
        this.recordOnFinish();
        route.raw(req, res, { params, query: this.query, token: undefined, requestId });
        return;
      }
      if (route.auth) {
        const authorization = req.headers.authorization;
        const token = deps.auth.authenticate(authorization);
        if (!token) {
          throw new HttpError(
            401,
            ErrorCode.Unauthorized,
            authorization ? 'the bearer token is not valid' : 'missing Authorization: Bearer <token> header',
          );
        }
        // Scope before the body is read: a refused call costs us nothing more.
        if (!scopeAllows(token.scope, route.auth)) throw scopeRefusal(token, method, route.path);
        if (params.agentId !== undefined) assertAgentInScope(token, params.agentId);
        this.token = token;
      }
      if (route.raw) {
        // An authenticated route that answers by itself (a stream, a protocol adapter).
        this.recordOnFinish();
        route.raw(req, res, { params, query: this.query, token: this.token, requestId });
        return;
      }
      if (route.rawBody) {
        readBodyInto(req, this, route.bodyLimit);
        return;
      }
      const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
      if (!route.streamBody && (method === 'PUT' || method === 'POST') && (hasBody || !route.bodyOptional)) {
        assertJsonBody(req);
        this.json = true;
        readBodyInto(req, this);
        return;
      }
      this.proceed(undefined, undefined);
    } catch (err) {
      this.fail(err);
    }
  }

  bodyArrived(text: string): void {
    try {
      if (this.json) this.proceed(parseJsonText(text), undefined);
      else this.proceed(undefined, text);
    } catch (err) {
      this.fail(err);
    }
  }

  bodyFailed(err: HttpError): void {
    this.fail(err);
  }

  /** Calls the handler (the caller catches what it throws). */
  private proceed(body: unknown, rawBody: string | undefined): void {
    const { req, route } = this;
    const { token } = this;
    const ctx: RequestContext = { method: this.method, path: this.pathname, params: this.params, query: this.query, headers: req.headers, body, tokenName: token?.name, token, requestId: this.requestId };
    if (rawBody !== undefined) ctx.rawBody = rawBody;
    if (route!.streamBody) {
      ctx.req = req;
      this.deps.deadlines.streaming(req);
    }
    const pending = route!.handler!(ctx);
    if (pending instanceof Promise) {
      pending.then(
        (result) => this.answer(result),
        (err: unknown) => this.fail(err),
      );
    } else {
      this.answer(pending);
    }
  }

  private answer(result: HttpResult): void {
    try {
      this.status = result.status;
      send(this.res, result, this.requestId);
    } catch (err) {
      this.refuse(err);
    }
    this.end();
  }

  private fail(err: unknown): void {
    this.refuse(err);
    this.end();
  }

  /** The error's answer. */
  private refuse(err: unknown): void {
    const { deps, res, requestId, method } = this;
    try {
      if (err instanceof HttpError) {
        this.status = err.status;
        const headers: Record<string, string> = err.status === 401 ? { 'www-authenticate': 'Bearer realm="armalo"' } : {};
        send(res, { status: err.status, body: errorBody(err.code, err.message, requestId, err.details), headers }, requestId);
      } else if (isCodedError(err)) {
        this.status = STATUS_FOR[err.code];
        send(res, { status: this.status, body: errorBody(err.code, err.message, requestId, err.details) }, requestId);
      } else if (isDatabaseUnavailable(err) && !res.headersSent) {
        // Postgres is away (readiness says so too): a retryable 503, not an internal error. If the
        // connection dropped during the commit, the outcome is unknown until Postgres is back: a retry
        // with the same Idempotency-Key answers the first result, or applies it once.
        this.status = 503;
        deps.logger.warn({ err: (err as Error).message, requestId, method, route: this.routeLabel }, 'request failed: Postgres unreachable');
        send(
          res,
          { status: 503, body: errorBody('unavailable', `the database cannot be reached; retry shortly (with the same Idempotency-Key for actions) (request ${requestId})`, requestId), headers: { 'retry-after': '2' } },
          requestId,
        );
      } else {
        // Unknown errors get an id that is logged and shown, never their internals.
        this.status = 500;
        deps.logger.error({ err, requestId, method, route: this.routeLabel }, 'request failed');
        if (!res.headersSent) {
          send(res, { status: 500, body: errorBody('internal', `something went wrong on our side (request ${requestId})`, requestId) }, requestId);
        } else {
          res.destroy();
        }
      }
    } catch (sendErr) {
      // Even the error's answer could not be written (the socket is gone): nothing more to say.
      deps.logger.warn({ err: (sendErr as Error).message, requestId }, 'could not answer a failed request');
      res.destroy();
    }
  }

  /** Answered: the request leaves the watch at once (held for the sweep, it would live long enough to be promoted out of the young generation). */
  private end(): void {
    this.deps.deadlines.forget(this.req);
    record(this.deps, this.method, this.routeLabel, this.status, this.started);
  }

  private recordOnFinish(): void {
    const { deps, res, method, started } = this;
    res.on('finish', () => record(deps, method, this.routeLabel, res.statusCode, started));
  }
}

function record(deps: HttpServerDeps, method: string, route: string, status: number, started: number): void {
  const seconds = (performance.now() - started) / 1000;
  const series = deps.metrics.http(method, route, status);
  series.requests.inc();
  series.duration.observe(seconds);
}
