import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sql } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../observability/logger.js';
import type { Policy } from '../policy/policy.schema.js';
import type { Router } from '../http/router.js';
import { HttpError, readRawBody } from '../http/body.js';
import type { ApprovalService, Approver } from '../approvals/approvals.service.js';
import type { TrustService } from '../trust/trust.service.js';
import type { PacketService } from '../packets/packets.service.js';
import type { PacketRenderers } from '../http/routes/packets.routes.js';
import { actorOf, type ChatCommands } from '../chat/chat-commands.js';
import { authorize, rolesOf, type ChatIdentity, type Permission } from '../chat/authorization.js';
import type { ChatReply } from '../chat/reply.js';
import { CodedError, ErrorCode } from '../domain/errors.js';
import { grantStatus, AGENT_STATUSES, type AgentStatus } from '../domain/agent.js';
import { SCOPE_PATTERN } from '../domain/scope.js';
import { parseDuration } from '../domain/duration.js';
import { MAX_TTL_MS } from '../chat/command-parser.js';
import { loadAgentAsSeen } from '../fleet/fleet-hold.js';
import { listAgents } from '../agents/agent-listing.js';
import { listIncidents, loadIncidentDetail } from '../incidents/incidents.repository.js';
import { listApprovals } from '../approvals/approvals-list.repository.js';
import { listAudit, verifyAudit } from '../audit/audit.repository.js';
import { findConfirmation } from '../confirmations/confirmations.repository.js';
import { renderScoreChartSvg } from '../packets/score-chart.js';
import { loadScoreHistory } from '../packets/score-history.repository.js';
import { clientAddress } from '../http/client-address.js';
import { csrfMatches, SESSION_COOKIE, SESSION_TTL_MS, SignInLimiter, type ConsoleSession, type ConsoleSessions, type SignInLimits } from './console-sessions.js';
import { html, path, type Raw } from './html.js';
import { CONSOLE_CSS } from './styles.js';
import * as pages from './console-pages.js';

export interface ConsoleDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** The one policy object (a live reload swaps its contents): every request reads the roles in force. */
  policy: Policy;
  sessions: ConsoleSessions;
  commands: ChatCommands;
  approvals: ApprovalService;
  trust: TrustService;
  packets: PacketService;
  /** The packet renderers (loaded on first use: the PDF library is large). */
  renderers: () => Promise<PacketRenderers>;
  /** ARMALO_PUBLIC_URL: the cookie is marked Secure when it is https. */
  publicUrl: string | undefined;
  signInLimiter?: SignInLimits;
  /** Proxies in front that append to X-Forwarded-For (`ARMALO_TRUSTED_PROXY_HOPS`); 0: the socket's peer is the client. */
  trustedProxyHops?: number;
}

/**
 * Headers on every console answer. No inline script anywhere (htmx is served from our origin, its
 * configuration is a meta tag), no framing, no referrer (a sign-in link must never leak through one).
 */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
});

interface Answer {
  status: number;
  body: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

const page = (status: number, body: Raw, headers?: Record<string, string>): Answer => ({ status, body: body.value, ...(headers ? { headers } : {}) });
const redirect = (location: string, headers: Record<string, string> = {}): Answer => ({ status: 303, body: '', headers: { location, ...headers } });

/** A refusal or a bad input, with the page to show; thrown by handlers, answered by `serve`. */
class ConsoleRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new ConsoleRefusal(415, 'Send the form as application/x-www-form-urlencoded.');
  const body = await readRawBody(req, 16 * 1024);
  return new URLSearchParams(body);
}

let htmxSource: Buffer | undefined;
function htmx(): Buffer {
  // Served from our own origin, out of the htmx.org package: nothing is fetched from elsewhere.
  htmxSource ??= readFileSync(createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'));
  return htmxSource;
}

const AGENT_ACTIONS = ['contain', 'narrow', 'restore', 'revoke'] as const;
type AgentAction = (typeof AGENT_ACTIONS)[number];
/** How many of an agent's latest incidents show their timeline on its page. */
const TIMELINES_SHOWN = 3;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The console's routes on the one HTTP server (DESIGN §5 "Web console"). */
export function addConsoleRoutes(router: Router, deps: ConsoleDeps): void {
  const { db, clock, logger, policy, sessions, commands, approvals } = deps;
  const limiter = deps.signInLimiter ?? new SignInLimiter();
  const secure = deps.publicUrl?.startsWith('https:') ?? false;
  const cookie = (value: string, maxAgeSeconds: number) =>
    `${SESSION_COOKIE}=${value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;

  const send = (res: ServerResponse, a: Answer) => {
    const body = typeof a.body === 'string' ? Buffer.from(a.body) : a.body;
    res.writeHead(a.status, { ...CONSOLE_SECURITY_HEADERS, 'content-type': a.contentType ?? 'text/html; charset=utf-8', 'content-length': String(body.length), ...a.headers });
    res.end(body);
  };

  /** Runs a handler; refusals become their page, anything unknown a page with an id that is logged. */
  const serve =
    (handler: (req: IncomingMessage, ctx: { params: Record<string, string>; query: URLSearchParams }) => Promise<Answer>) =>
    (req: IncomingMessage, res: ServerResponse, ctx: { params: Record<string, string>; query: URLSearchParams }) => {
      void handler(req, ctx)
        .then((a) => send(res, a))
        .catch((err: unknown) => {
          if (err instanceof ConsoleRefusal) return send(res, page(err.status, pages.messagePage({ title: err.status === 403 ? 'Not allowed' : 'Not done', nav: 'none' }, 'error', err.message, { href: '/console', label: 'Back to the console' })));
          if (err instanceof HttpError) return send(res, page(err.status, pages.messagePage({ title: 'Not done', nav: 'none' }, 'error', `${err.message}. Nothing was changed.`)));
          const id = randomBytes(4).toString('hex');
          logger.error({ err, errorId: id, path: req.url?.split('?')[0] }, 'console request failed');
          if (!res.headersSent) send(res, page(500, pages.messagePage({ title: 'Something went wrong', nav: 'none' }, 'error', `Something went wrong on our side (error ${id}). Nothing may have changed.`)));
          else res.destroy();
        });
    };

  /** The signed-in person, or a refusal: pages answer 401 with how to sign in, posts 403. */
  const signedIn = async (req: IncomingMessage, refusal: 401 | 403): Promise<ConsoleSession> => {
    const session = await sessions.session(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new ConsoleRefusal(refusal, 'You are not signed in (or your session ended). Sign in from chat: /armalo console in Slack, or "console" to the bot in Teams.');
    return session;
  };
  const asConsole = (s: ConsoleSession): ChatIdentity => ({ ...s.who, via: 'console' });
  const frame = (s: ConsoleSession, title: string, nav: pages.NavItem): pages.PageFrame => ({
    title,
    nav,
    person: { label: `${s.who.platform}:${s.who.userId}${s.who.emails[0] ? ` (${s.who.emails[0]})` : ''}`, roles: rolesOf(policy, s.who), csrf: s.csrf },
  });
  const may = (s: ConsoleSession, permission: Permission) => authorize(policy, s.who, permission).ok;
  /** Every page shows security state: the same people who may read it in chat (any role in the policy). */
  const reader = async (req: IncomingMessage) => {
    const s = await signedIn(req, 401);
    const auth = authorize(policy, s.who, 'read');
    if (!auth.ok) throw new ConsoleRefusal(403, `Not allowed: ${auth.message}.`);
    return s;
  };
  /** A post: signed in, same-site, with the session's CSRF token; else 403 and nothing read further. */
  const poster = async (req: IncomingMessage) => {
    // Browsers say where a request comes from; a cross-site post is refused before anything else.
    if (req.headers['sec-fetch-site'] === 'cross-site') throw new ConsoleRefusal(403, 'A post from another site is refused.');
    const s = await signedIn(req, 403);
    const form = await readForm(req);
    if (!csrfMatches(s, form.get('csrf') ?? undefined)) throw new ConsoleRefusal(403, 'The form is missing its security token or it does not match your session. Reload the page and try again. Nothing was changed.');
    return { s, form };
  };
  /** Trust packets: the packet roles, or the agent's owner (the same rule as `/armalo packet`). */
  const mayPacket = (s: ConsoleSession, owner: string) => {
    const o = owner.toLowerCase();
    return may(s, 'packet') || o === s.who.userId.toLowerCase() || o === `${s.who.platform}:${s.who.userId}`.toLowerCase() || s.who.emails.some((e) => e.toLowerCase() === o);
  };
  const approverOf = (s: ConsoleSession): Approver => ({
    actor: actorOf(asConsole(s)),
    platform: 'console',
    ...(s.who.platform === 'slack' ? { slack: s.who.userId } : { teams: s.who.userId }),
    emails: s.who.emails,
  });

  // ---- static ------------------------------------------------------------------------------
  const cacheable = { 'cache-control': 'public, max-age=3600' };
  router.add({ method: 'GET', path: '/console/static/htmx.min.js', auth: false, raw: serve(async () => ({ status: 200, body: htmx(), contentType: 'text/javascript; charset=utf-8', headers: cacheable })) });
  router.add({ method: 'GET', path: '/console/static/console.css', auth: false, raw: serve(async () => ({ status: 200, body: CONSOLE_CSS, contentType: 'text/css; charset=utf-8', headers: cacheable })) });

  // ---- sign-in -----------------------------------------------------------------------------
  router.add({
    method: 'GET',
    path: '/console/login',
    auth: false,
    raw: serve(async (_req, { query }) => {
      const token = query.get('t') ?? '';
      const check = await sessions.checkLink(token);
      if (!check.ok) throw new ConsoleRefusal(400, check.message);
      return page(200, pages.signInPage(token));
    }),
  });
  router.add({
    method: 'POST',
    path: '/console/login',
    auth: false,
    raw: serve(async (req) => {
      // Behind a load balancer the socket's peer is the balancer: its failures would block everyone.
      const address = clientAddress(req, deps.trustedProxyHops ?? 0);
      if (await limiter.blocked(address)) throw new ConsoleRefusal(429, 'Too many failed sign-in attempts from here; wait a few minutes and try again.');
      const form = await readForm(req);
      const result = await sessions.redeem(form.get('t') ?? '');
      if (!result.ok) {
        await limiter.failed(address);
        throw new ConsoleRefusal(400, result.message);
      }
      return redirect('/console', { 'set-cookie': cookie(result.token, SESSION_TTL_MS / 1000) });
    }),
  });
  router.add({
    method: 'POST',
    path: '/console/logout',
    auth: false,
    raw: serve(async (req) => {
      // No CSRF token needed to sign out of this browser: the cookie is SameSite=Lax (another site's
      // post does not carry it) and the worst a forged sign-out could do is sign you out. Signing
      // out everywhere (`everywhere=1`) ends the person's other sessions too: that needs the token.
      if (req.headers['sec-fetch-site'] === 'cross-site') throw new ConsoleRefusal(403, 'A post from another site is refused.');
      const s = await signedIn(req, 403);
      const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const form = type === 'application/x-www-form-urlencoded' ? await readForm(req) : new URLSearchParams();
      const actor = actorOf(asConsole(s));
      if (form.get('everywhere') === '1') {
        if (!csrfMatches(s, form.get('csrf') ?? undefined)) throw new ConsoleRefusal(403, 'The form is missing its security token or it does not match your session. Reload the page and try again. Nothing was changed.');
        const person = `${s.who.platform}:${s.who.userId}`;
        const { ended } = await sessions.revokePerson(
          { kind: s.who.platform, id: s.who.platform === 'teams' ? s.who.userId.toLowerCase() : s.who.userId },
          { actor, reason: 'signed out everywhere', subject: person, scope: 'everywhere' },
        );
        const others = Math.max(0, ended - 1);
        const what = others === 0 ? 'You had no other open session.' : `${others} other session${others === 1 ? '' : 's'} ended as well.`;
        return page(200, pages.messagePage({ title: 'Signed out everywhere', nav: 'none' }, 'success', `You are signed out on every device. ${what} Sign in again from chat with /armalo console.`), { 'set-cookie': cookie('', 0) });
      }
      await sessions.revoke(s.id, actor);
      return page(200, pages.messagePage({ title: 'Signed out', nav: 'none' }, 'success', 'You are signed out. Sign in again from chat with /armalo console.'), { 'set-cookie': cookie('', 0) });
    }),
  });

  // ---- pages -------------------------------------------------------------------------------
  router.add({
    method: 'GET',
    path: '/console',
    auth: false,
    raw: serve(async (req, { query }) => {
      const s = await reader(req);
      const statusParam = query.get('status');
      const status = (AGENT_STATUSES as readonly string[]).includes(statusParam ?? '') ? (statusParam as AgentStatus) : undefined;
      const now = clock.now();
      const [counts, listed, open, waiting, movers] = await Promise.all([
        db.selectFrom('agents').select(['status']).select((eb) => eb.fn.countAll<string>().as('n')).groupBy('status').execute(),
        listAgents(db, status ? { status } : {}, { limit: 200 }),
        listIncidents(db, { status: 'open' }, { limit: 50 }),
        approvals.waitingOn(approverOf(s)),
        scoreMovers(db, now),
      ]);
      const body = pages.overviewBody({ counts: Object.fromEntries(counts.map((c) => [c.status, Number(c.n)])), agents: listed.agents, openIncidents: open.items, waiting, movers });
      return page(200, pages.layout(frame(s, status ? `Overview: ${status} agents` : 'Overview', 'overview'), body));
    }),
  });

  router.add({
    method: 'GET',
    path: '/console/agents/{agentId}',
    auth: false,
    raw: serve(async (req, { params }) => {
      const s = await reader(req);
      const agentId = params.agentId!;
      const agent = await loadAgentAsSeen(db, agentId);
      if (!agent) throw new ConsoleRefusal(404, `There is no agent ${agentId}.`);
      const now = clock.now();
      const [score, history, incidents, approvalList, audit, restores, packetRows] = await Promise.all([
        deps.trust.scoreOf(agentId).catch(() => null),
        loadScoreHistory(db, agentId, now, policy.trust),
        listIncidents(db, { agentId }, { limit: 20 }),
        listApprovals(db, { agentId }, { limit: 20 }),
        listAudit(db, { subject: agentId, limit: 20 }),
        db.selectFrom('confirmations').select(['id', 'requested_by', 'expires_at', 'payload']).where('agent_id', '=', agentId).where('kind', '=', 'restore').where('decided_at', 'is', null).where('expires_at', '>', now).orderBy('created_at').execute(),
        db.selectFrom('trust_packets').select(['id', 'status', 'audience', 'requested_by', 'created_at']).where('agent_id', '=', agentId).orderBy('created_at', 'desc').limit(10).execute(),
      ]);
      // Who did what in the latest incidents: the open one first, at most three (the page refreshes itself).
      const recent = [...incidents.items].sort((a, b) => Number(b.status === 'open') - Number(a.status === 'open')).slice(0, TIMELINES_SHOWN);
      const details = await Promise.all(recent.map(async (incident) => ({ incident, detail: await loadIncidentDetail(db, incident.id, now) })));
      // The trust packet's chart: the daily score of 90 days, replayed from the evidence of each day.
      const chartSvg = history.points.length
        ? renderScoreChartSvg(history.points, { from: history.from, to: now.toISOString(), title: `${agent.name}: trust score, last 90 days`, thresholds: policy.trust.tiers })
        : null;
      const abilities: pages.AgentAbilities = { packet: mayPacket(s, agent.owner), contain: may(s, 'contain'), narrow: may(s, 'narrow'), restore: may(s, 'restore'), revoke: may(s, 'revoke') };
      const data: pages.AgentPageData = {
        agent,
        grants: agent.grants.map((g) => ({ scope: g.scope, state: grantStatus(agent, g, now).state, keepInContainment: g.keepInContainment, ...(g.constraints.maxAmount !== undefined ? { maxAmount: g.constraints.maxAmount } : {}) })),
        score: score ? { score: score.score, tier: score.tier, freshness: score.freshness, newestEvidence: score.newestEvidence, pacts: score.pacts } : null,
        chartSvg,
        incidents: incidents.items,
        timelines: details.map(({ incident, detail }) => ({ incident, steps: (detail?.timeline ?? []).map((t) => ({ at: t.at, actor: t.actor, event: t.event, ...(t.reason ? { reason: t.reason } : {}) })) })),
        approvals: approvalList.items,
        audit,
        packets: abilities.packet ? packetRows.map((p) => ({ id: p.id, status: p.status, audience: p.audience, requestedBy: p.requested_by, createdAt: p.created_at.toISOString() })) : null,
        pendingRestores: restores.map((r) => ({ id: r.id, requestedBy: r.requested_by, expiresAt: r.expires_at.toISOString(), reason: String((r.payload as { reason?: unknown }).reason ?? '') })),
      };
      const body = html`${pages.agentHead(agent)}${pages.agentActions(agent, abilities, s.csrf)}${pages.agentLiveBody(data, abilities, s.csrf)}`;
      return page(200, pages.layout(frame(s, `${agent.name}`, 'none'), body));
    }),
  });

  router.add({
    method: 'GET',
    path: '/console/approvals',
    auth: false,
    raw: serve(async (req) => {
      const s = await reader(req);
      const chatActor = `${s.who.platform}:${s.who.userId}`;
      const [waiting, decidedHere, decidedInChat] = await Promise.all([approvals.waitingOn(approverOf(s)), approvals.decidedBy(actorOf(asConsole(s))), approvals.decidedBy(chatActor)]);
      const decided = [...decidedHere, ...decidedInChat.filter((v) => !decidedHere.some((d) => d.id === v.id))].sort((a, b) => (b.decidedAt ?? b.createdAt).localeCompare(a.decidedAt ?? a.createdAt));
      return page(200, pages.layout(frame(s, 'Approvals', 'approvals'), pages.approvalsBody(waiting, decided.slice(0, 20), s.csrf)));
    }),
  });
  router.add({
    method: 'GET',
    path: '/console/approvals/{requestId}/deny',
    auth: false,
    raw: serve(async (req, { params }) => {
      const s = await reader(req);
      const id = params.requestId!;
      if (!UUID.test(id)) throw new ConsoleRefusal(404, 'There is no such approval request.');
      const view = await approvals.checkDecider(id, approverOf(s)).catch((err: unknown) => refusalOf(err));
      return page(200, pages.layout(frame(s, `Deny ${view.action} for ${view.agentId}`, 'approvals'), pages.denyForm(view, s.csrf)));
    }),
  });
  router.add({
    method: 'POST',
    path: '/console/approvals/{requestId}/{decision}',
    auth: false,
    raw: serve(async (req, { params }) => {
      const { s, form } = await poster(req);
      const id = params.requestId!;
      const decision = params.decision;
      if (decision !== 'approve' && decision !== 'deny') throw new ConsoleRefusal(404, 'Approval requests are approved or denied.');
      if (!UUID.test(id)) throw new ConsoleRefusal(404, 'There is no such approval request.');
      const reason = (form.get('reason') ?? '').trim().slice(0, 2000);
      if (decision === 'deny' && reason.length < 3) throw new ConsoleRefusal(400, 'A denial needs a reason (at least 3 characters). Nothing was recorded.');
      const { view, final } = await approvals.decide(id, approverOf(s), decision, decision === 'deny' ? reason : null).catch((err: unknown) => refusalOf(err));
      const reply: ChatReply = {
        tone: 'success',
        title: `You ${decision === 'approve' ? 'approved' : 'denied'} ${view.action} for ${view.agentId}`,
        lines: [final ? ['The request is now ', { strong: view.status }, '.'] : ['More approvals are needed before it is decided.']],
      };
      return page(200, pages.layout(frame(s, 'Approvals', 'approvals'), html`${pages.replyBanner(reply)}<p><a href="/console/approvals">Back to approvals</a></p>`));
    }),
  });

  router.add({
    method: 'POST',
    path: '/console/agents/{agentId}/{action}',
    auth: false,
    raw: serve(async (req, { params }) => {
      const { s, form } = await poster(req);
      const agentId = params.agentId!;
      if (params.action === 'packet') return buildPacket(s, form, agentId);
      const action = params.action as AgentAction;
      if (!AGENT_ACTIONS.includes(action)) throw new ConsoleRefusal(404, `There is no action "${String(params.action).slice(0, 40)}" on agents.`);
      // The same rule as the chat command, checked before anything is read or written.
      const auth = authorize(policy, s.who, action);
      if (!auth.ok) throw new ConsoleRefusal(403, `Not allowed: ${auth.message}. Nothing was changed.`);
      const who = asConsole(s);
      const reason = (form.get('reason') ?? '').trim().slice(0, 2000) || 'no reason given';
      const nonce = form.get('nonce') ?? '';
      // A double-submitted form carries the same nonce: the action applies once.
      const idempotencyKey = /^[A-Za-z0-9_-]{8,64}$/.test(nonce) ? `console:${s.id}:${nonce}` : undefined;
      const confirmId = form.get('confirm');
      let reply: ChatReply;
      let extra: Raw | undefined;
      if (confirmId !== null && (action === 'revoke' || action === 'restore')) {
        if (!UUID.test(confirmId)) throw new ConsoleRefusal(400, 'That confirmation is not valid. Nothing was changed.');
        const row = await findConfirmation(db, confirmId);
        if (!row || row.agent_id !== agentId || row.kind !== action) throw new ConsoleRefusal(400, `That confirmation is not a ${action} of ${agentId}. Nothing was changed.`);
        reply = await commands.confirm(who, confirmId);
      } else {
        const ttlText = (form.get('ttl') ?? '').trim();
        const ttlMs = ttlText ? parseDuration(ttlText) : undefined;
        if (ttlText && (ttlMs === undefined || ttlMs > MAX_TTL_MS)) throw new ConsoleRefusal(400, `"${ttlText.slice(0, 20)}" is not a duration such as 30m, 2h or 1d (at most 30d). Nothing was changed.`);
        if (action === 'contain') reply = await commands.execute(who, { kind: 'contain', agentId, dryRun: false, reason, ...(ttlMs ? { ttlMs } : {}) }, { ...(idempotencyKey ? { idempotencyKey } : {}) });
        else if (action === 'narrow') {
          const scopes = [...new Set((form.get('scopes') ?? '').split(/[\s,]+/).filter(Boolean))];
          const bad = scopes.find((x) => !SCOPE_PATTERN.test(x) || x.length > 200);
          if (scopes.length === 0 || bad !== undefined || scopes.length > 50) {
            throw new ConsoleRefusal(400, bad !== undefined ? `"${bad.slice(0, 80)}" is not a scope (lowercase segments separated by ":", "*" as a wildcard). Nothing was changed.` : 'Name between 1 and 50 scopes to suspend, e.g. payments:*. Nothing was changed.');
          }
          reply = await commands.execute(who, { kind: 'narrow', agentId, scopes, dryRun: false, reason, ...(ttlMs ? { ttlMs } : {}) }, { ...(idempotencyKey ? { idempotencyKey } : {}) });
        } else {
          reply = await commands.execute(who, { kind: action, agentId, dryRun: false, reason }, { ...(idempotencyKey ? { idempotencyKey } : {}) });
          // The revoke's second step: nothing has changed until the same person confirms here.
          if (action === 'revoke' && reply.confirm) extra = pages.revokeConfirmForm(agentId, reply.confirm.id, reason, s.csrf);
        }
      }
      if (reply.tone === 'error') throw new ConsoleRefusal(refusalStatus(reply), `${typeof reply.title === 'string' ? reply.title : reply.title.map((t) => (typeof t === 'string' ? t : JSON.stringify(t))).join('')}`);
      const back = html`<p><a href="${path`/console/agents/${agentId}`}">Back to ${agentId}</a></p>`;
      return page(200, pages.layout(frame(s, `${action[0]!.toUpperCase()}${action.slice(1)} ${agentId}`, 'none'), html`${pages.replyBanner(reply)}${extra ?? ''}${back}`));
    }),
  });

  /** `Build a trust packet`: the packet job builds it; the agent page lists it with its PDF once ready. */
  const buildPacket = async (s: ConsoleSession, form: URLSearchParams, agentId: string): Promise<Answer> => {
    const agent = await db.selectFrom('agents').select(['id', 'owner']).where('id', '=', agentId).executeTakeFirst();
    if (!agent) throw new ConsoleRefusal(404, `There is no agent ${agentId}.`);
    if (!mayPacket(s, agent.owner)) throw new ConsoleRefusal(403, `Not allowed: trust packets need one of these roles: ${policy.permissions.packet.join(', ') || 'none'}, or to be the agent's owner. Nothing was built.`);
    const audience = (form.get('audience') ?? '').trim().slice(0, 200);
    const status = await deps.packets.request({ agentId, ...(audience ? { audience } : {}) }, actorOf(asConsole(s))).catch((err: unknown) => refusalOf(err));
    const reply: ChatReply = { tone: 'info', title: `Building the trust packet for ${agentId}${audience ? ` (for ${audience})` : ''}`, lines: [[`Packet ${status.id}: it is listed on the agent's page with its PDF in a few seconds.`]] };
    return page(200, pages.layout(frame(s, `Trust packet for ${agentId}`, 'none'), html`${pages.replyBanner(reply)}<p><a href="${path`/console/agents/${agentId}`}">Back to ${agentId}</a></p>`));
  };

  router.add({
    method: 'GET',
    path: '/console/packets/{packetId}/pdf',
    auth: false,
    raw: serve(async (req, { params }) => {
      const s = await reader(req);
      const id = params.packetId!;
      if (!UUID.test(id)) throw new ConsoleRefusal(404, 'There is no such trust packet.');
      const status = await deps.packets.status(id);
      if (!status) throw new ConsoleRefusal(404, 'There is no such trust packet.');
      const agent = await db.selectFrom('agents').select('owner').where('id', '=', status.agentId).executeTakeFirst();
      if (!mayPacket(s, agent?.owner ?? '')) throw new ConsoleRefusal(403, "Not allowed: trust packets are for the packet roles and the agent's owner.");
      const packet = await deps.packets.content(id);
      if (!packet) throw new ConsoleRefusal(409, `This trust packet is ${status.status}; try again when it is ready.`);
      const pdf = await (await deps.renderers()).pdf(packet);
      return { status: 200, body: pdf, contentType: 'application/pdf', headers: { 'content-disposition': `attachment; filename="trust-packet-${packet.agent.id}-${id.slice(0, 8)}.pdf"` } };
    }),
  });

  router.add({
    method: 'GET',
    path: '/console/incidents',
    auth: false,
    raw: serve(async (req) => {
      const s = await reader(req);
      const [open, closed] = await Promise.all([listIncidents(db, { status: 'open' }, { limit: 100 }), listIncidents(db, { status: 'closed' }, { limit: 100 })]);
      const now = clock.now();
      const body = pages.live(
        '/console/incidents',
        html`<h2>Open (${open.items.length})</h2><section class="card">${pages.incidentTable(open.items, now)}</section>
<h2>Closed, latest ${closed.items.length}</h2><section class="card">${pages.incidentTable(closed.items, now)}</section>`,
      );
      return page(200, pages.layout(frame(s, 'Incidents', 'incidents'), body));
    }),
  });

  router.add({
    method: 'GET',
    path: '/console/audit',
    auth: false,
    raw: serve(async (req, { query }) => {
      const s = await reader(req);
      const agent = (query.get('agent') ?? '').trim().slice(0, 128);
      const actor = (query.get('actor') ?? '').trim().slice(0, 200);
      const csv = query.get('format') === 'csv';
      let q = db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').limit(csv ? 10_000 : 200);
      if (agent) q = q.where('subject', '=', agent);
      if (actor) q = q.where('actor', '=', actor);
      const rows = await q.execute();
      if (csv) return { status: 200, body: pages.auditCsv(rows), contentType: 'text/csv; charset=utf-8', headers: { 'content-disposition': 'attachment; filename="armalo-audit.csv"' } };
      const verify = query.get('verify') === '1' ? await verifyAudit(db) : undefined;
      const filterQuery = new URLSearchParams({ ...(agent ? { agent } : {}), ...(actor ? { actor } : {}) });
      const body = html`${verify
        ? verify.ok
          ? html`<div class="banner banner-success" role="status">Audit chain verified: ${verify.entries} entries, chain intact. Head: entry ${verify.head.seq}, <code>${verify.head.hash.slice(0, 16)}…</code>${verify.from.checkpoint === null ? '' : ` (walked from the checkpoint at entry ${verify.from.seq}, which vouches for the entries before it)`}</div>`
          : html`<div class="banner banner-error" role="alert">Audit chain BROKEN at entry ${verify.firstBroken?.seq}: ${verify.firstBroken?.problem}</div>`
        : ''}
<form class="action" method="get" action="/console/audit">
<label>Agent<input type="search" name="agent" value="${agent}"></label>
<label>Actor<input type="search" name="actor" value="${actor}" placeholder="slack:U… or console:slack:U…"></label>
<button type="submit">Filter</button>
<button class="secondary" type="submit" name="verify" value="1">Verify the chain</button>
<a href="${`/console/audit?${new URLSearchParams({ ...Object.fromEntries(filterQuery), format: 'csv' }).toString()}`}">Export CSV</a>
</form>
<section class="card">${pages.auditTable(rows)}</section>`;
      return page(200, pages.layout(frame(s, 'Audit log', 'audit'), body));
    }),
  });
}

/** A coded error from a use case as the console's refusal: the use case's own words. */
function refusalOf(err: unknown): never {
  if (err instanceof CodedError) {
    const status = err.code === ErrorCode.Forbidden ? 403 : err.code === ErrorCode.NotFound ? 404 : err.code === ErrorCode.Conflict ? 409 : 400;
    throw new ConsoleRefusal(status, `${err.message}. Nothing was recorded.`);
  }
  throw err;
}

/** The status of a refused chat answer: a person the rules do not allow gets 403, anything else 400/404. */
function refusalStatus(reply: ChatReply): number {
  const title = typeof reply.title === 'string' ? reply.title : '';
  if (/^Not allowed|second person must confirm|Only the person who asked/.test(title)) return 403;
  if (/^Unknown agent/.test(title)) return 404;
  return 409;
}

/** Agents whose score moved most in the last 7 days: the last score before the week against the latest. */
async function scoreMovers(db: Db, now: Date): Promise<{ agentId: string; from: number; to: number }[]> {
  const weekAgo = new Date(now.getTime() - 7 * 86_400_000);
  const rows = await sql<{ agent_id: string; before: number | null; first: number; latest: number }>`
    with recent as (
      select agent_id, score, computed_at, id from trust_scores where computed_at >= ${weekAgo}
    ), ends as (
      select agent_id,
        (array_agg(score order by computed_at, id))[1] as first,
        (array_agg(score order by computed_at desc, id desc))[1] as latest
      from recent group by agent_id
    )
    select e.agent_id, e.first, e.latest,
      (select t.score from trust_scores t where t.agent_id = e.agent_id and t.computed_at < ${weekAgo} order by t.computed_at desc, t.id desc limit 1) as before
    from ends e`.execute(db);
  return rows.rows
    .map((r) => ({ agentId: r.agent_id, from: r.before ?? r.first, to: r.latest }))
    .filter((m) => m.from !== m.to)
    .sort((a, b) => Math.abs(b.to - b.from) - Math.abs(a.to - a.from))
    .slice(0, 5);
}
