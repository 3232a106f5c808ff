import type { Redis } from 'ioredis';
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { sql, type ColumnType, type ExpressionBuilder } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { ChatIdentity } from '../chat/authorization.js';
import { appendAudit } from '../audit/audit.repository.js';

/** A one-time sign-in link lives this long. */
export const LOGIN_LINK_TTL_MS = 5 * 60_000;
/** A console session lives this long (no sliding: sign in from chat again after it). */
export const SESSION_TTL_MS = 8 * 3600_000;
/** At most this many sign-in links per person in LOGIN_LINK_TTL_MS (a chat account cannot mint links in bulk). */
export const MAX_LINKS_PER_WINDOW = 5;
/** The session cookie's name (DESIGN §5 "Web console"). */
export const SESSION_COOKIE = 'armalo_session';

interface ConsoleLoginTokensTable {
  token_hash: string;
  platform: 'slack' | 'teams';
  user_id: string;
  /** Read as an array, written as JSON text (jsonb). */
  emails: ColumnType<string[], string, string>;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

interface ConsoleSessionsTable {
  id: string;
  token_hash: string;
  platform: 'slack' | 'teams';
  user_id: string;
  /** Read as an array, written as JSON text (jsonb). */
  emails: ColumnType<string[], string, string>;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
}

/** The console's tables (migration 0018), kept out of the shared schema: only this folder reads them. */
export type ConsoleTables = {
  console_login_tokens: ConsoleLoginTokensTable;
  console_sessions: ConsoleSessionsTable;
};

const digest = (token: string) => createHash('sha256').update(token).digest('hex');
/** 32 random bytes, base64url: unguessable, and safe in a URL and a cookie. */
const newToken = () => randomBytes(32).toString('base64url');
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** An open console session: who it is (the chat person) and the CSRF token of its forms. */
export interface ConsoleSession {
  id: string;
  who: ChatIdentity;
  expiresAt: Date;
  /** Bound to the session: HMAC of the session token, so it needs no storage and dies with the session. */
  csrf: string;
}

/**
 * A person as an administrator names them: `slack:<user id>`, `teams:<AAD object id>` (lower case),
 * or an email address (lower case) the chat platform resolved for them at sign-in.
 */
export type SessionPerson = { kind: 'slack' | 'teams' | 'email'; id: string };

/** An open session as the admin API lists it: never the cookie or its digest. */
export interface SessionSummary {
  /** The session's public id (a random UUID, unrelated to the cookie). */
  id: string;
  /** The chat person: `slack:<user id>` or `teams:<AAD object id>`. */
  person: string;
  platform: 'slack' | 'teams';
  userId: string;
  emails: string[];
  createdAt: string;
  expiresAt: string;
}

/** What a revocation ended: the ids of the sessions that were open and are now ended. */
export interface Revocation {
  ended: number;
  sessionIds: string[];
}

/** The audit action of every revocation (admin, or a person signing out everywhere). */
export const SESSIONS_REVOKED_AUDIT = 'console.sessions_revoked';

export type IssueResult = { ok: true; url: string; expiresAt: Date } | { ok: false; message: string };
export type RedeemResult = { ok: true; token: string; session: ConsoleSession } | { ok: false; message: string };

/**
 * Sign-in links and sessions for the web console. The person is the chat person: a link is minted
 * for the identity a chat platform vouched for (a signed Slack command, a Teams activity), and the
 * session carries that identity; roles are read from the policy in force on every request.
 */
export class ConsoleSessions {
  private readonly db;

  constructor(private readonly deps: { db: Db; clock: Clock; publicUrl: string | undefined }) {
    this.db = deps.db.withTables<ConsoleTables>();
  }

  /** Mints a one-time link for this person; refused without ARMALO_PUBLIC_URL or past the rate limit. */
  async issueLink(who: ChatIdentity): Promise<IssueResult> {
    const { publicUrl, clock } = this.deps;
    if (!publicUrl) {
      return { ok: false, message: 'The web console needs this server\'s public address: set ARMALO_PUBLIC_URL (e.g. https://armalo.example.com) and restart' };
    }
    const now = clock.now();
    const recent = await this.db
      .selectFrom('console_login_tokens')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('platform', '=', who.platform)
      .where('user_id', '=', who.userId)
      .where('created_at', '>', new Date(now.getTime() - LOGIN_LINK_TTL_MS))
      .executeTakeFirst();
    if (Number(recent?.n ?? 0) >= MAX_LINKS_PER_WINDOW) {
      return { ok: false, message: `You asked for ${MAX_LINKS_PER_WINDOW} sign-in links in the last 5 minutes; use one of them or try again in a few minutes` };
    }
    const token = newToken();
    const expiresAt = new Date(now.getTime() + LOGIN_LINK_TTL_MS);
    await this.db
      .insertInto('console_login_tokens')
      .values({ token_hash: digest(token), platform: who.platform, user_id: who.userId, emails: JSON.stringify(who.emails), created_at: now, expires_at: expiresAt, used_at: null })
      .execute();
    // Old links are of no use to anyone: drop the ones expired for a day.
    await this.db.deleteFrom('console_login_tokens').where('expires_at', '<', new Date(now.getTime() - 86_400_000)).execute();
    return { ok: true, url: `${publicUrl}/console/login?t=${token}`, expiresAt };
  }

  /** Is this link still good? Read-only: the GET of the link page never spends it. */
  async checkLink(token: string): Promise<{ ok: true } | { ok: false; message: string }> {
    if (!TOKEN_SHAPE.test(token)) return { ok: false, message: 'This sign-in link is not valid.' };
    const row = await this.db.selectFrom('console_login_tokens').select(['expires_at', 'used_at']).where('token_hash', '=', digest(token)).executeTakeFirst();
    return linkProblem(row, this.deps.clock.now()) ?? { ok: true };
  }

  /**
   * Spends the link and opens a session, in one statement: of two concurrent posts of the same
   * link only one updates the row, so a link opens one session at most.
   */
  async redeem(token: string): Promise<RedeemResult> {
    if (!TOKEN_SHAPE.test(token)) return { ok: false, message: 'This sign-in link is not valid.' };
    const now = this.deps.clock.now();
    const hash = digest(token);
    return this.db.transaction().execute(async (trx) => {
      const spent = await trx
        .updateTable('console_login_tokens')
        .set({ used_at: now })
        .where('token_hash', '=', hash)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['platform', 'user_id', 'emails'])
        .executeTakeFirst();
      if (!spent) {
        const row = await trx.selectFrom('console_login_tokens').select(['expires_at', 'used_at']).where('token_hash', '=', hash).executeTakeFirst();
        return linkProblem(row, now) ?? { ok: false as const, message: 'This sign-in link is not valid.' };
      }
      const sessionToken = newToken();
      const id = randomUUID();
      const expiresAt = new Date(now.getTime() + SESSION_TTL_MS);
      await trx
        .insertInto('console_sessions')
        .values({ id, token_hash: digest(sessionToken), platform: spent.platform, user_id: spent.user_id, emails: JSON.stringify(spent.emails), created_at: now, expires_at: expiresAt, revoked_at: null, revoked_by: null })
        .execute();
      const who: ChatIdentity = { platform: spent.platform, userId: spent.user_id, emails: spent.emails };
      return { ok: true as const, token: sessionToken, session: { id, who, expiresAt, csrf: csrfFor(sessionToken) } };
    });
  }

  /** The session a cookie value opens, or undefined (unknown, expired, revoked). */
  async session(token: string | undefined): Promise<ConsoleSession | undefined> {
    if (!token || !TOKEN_SHAPE.test(token)) return undefined;
    const now = this.deps.clock.now();
    const row = await this.db
      .selectFrom('console_sessions')
      .select(['id', 'platform', 'user_id', 'emails', 'expires_at'])
      .where('token_hash', '=', digest(token))
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (!row) return undefined;
    return { id: row.id, who: { platform: row.platform, userId: row.user_id, emails: row.emails }, expiresAt: row.expires_at, csrf: csrfFor(token) };
  }

  /** Ends a session server-side (sign-out). */
  async revoke(sessionId: string, by: string): Promise<void> {
    await this.db.updateTable('console_sessions').set({ revoked_at: this.deps.clock.now(), revoked_by: by }).where('id', '=', sessionId).where('revoked_at', 'is', null).execute();
  }

  /**
   * Open sessions (not expired, not revoked), newest first, optionally one person's; a page of
   * `limit` after the `(createdAt, id)` of the previous page's last item.
   */
  async list(filter: { person?: SessionPerson }, page: { limit: number; after?: { at: string; id: string } }): Promise<{ items: SessionSummary[]; nextAfter: { at: string; id: string } | null }> {
    const now = this.deps.clock.now();
    let q = this.db
      .selectFrom('console_sessions')
      .select(['id', 'platform', 'user_id', 'emails', 'created_at', 'expires_at'])
      .select(sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('created_exact'))
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now);
    if (filter.person) q = q.where(personIs(filter.person));
    if (page.after) q = q.where(sql<boolean>`(created_at, id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`);
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit + 1).execute();
    const shown = rows.slice(0, page.limit);
    const last = shown[shown.length - 1];
    return {
      items: shown.map((r) => ({ id: r.id, person: `${r.platform}:${r.user_id}`, platform: r.platform, userId: r.user_id, emails: r.emails, createdAt: r.created_at.toISOString(), expiresAt: r.expires_at.toISOString() })),
      nextAfter: rows.length > page.limit && last ? { at: last.created_exact, id: last.id } : null,
    };
  }

  /**
   * Ends one session (an administrator's revoke), with one audit entry in the same transaction.
   * Undefined when there is no session with this id; `ended: 0` (and no entry) when it had already
   * ended (signed out, revoked or expired): nothing changed.
   */
  async revokeSession(sessionId: string, by: { actor: string; reason: string }): Promise<(Revocation & { person: string }) | undefined> {
    const now = this.deps.clock.now();
    return this.deps.db.transaction().execute(async (audited) => {
      const trx = audited.withTables<ConsoleTables>();
      const row = await trx.selectFrom('console_sessions').select(['platform', 'user_id']).where('id', '=', sessionId).executeTakeFirst();
      if (!row) return undefined;
      const person = `${row.platform}:${row.user_id}`;
      const ended = await trx
        .updateTable('console_sessions')
        .set({ revoked_at: now, revoked_by: by.actor })
        .where('id', '=', sessionId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .returning('id')
        .execute();
      const sessionIds = ended.map((r) => r.id);
      if (sessionIds.length) await appendAudit(audited, { actor: by.actor, action: SESSIONS_REVOKED_AUDIT, subject: person, payload: { sessionIds, ended: sessionIds.length, reason: by.reason, scope: 'session' }, at: now });
      return { person, ended: sessionIds.length, sessionIds };
    });
  }

  /**
   * Ends every open session of a person, with one audit entry (when any ended) in the same
   * transaction. `subject` is how the audit entry names the person.
   */
  async revokePerson(person: SessionPerson, by: { actor: string; reason: string; subject: string; scope: 'person' | 'everywhere' }): Promise<Revocation> {
    const now = this.deps.clock.now();
    return this.deps.db.transaction().execute(async (audited) => {
      const trx = audited.withTables<ConsoleTables>();
      const ended = await trx
        .updateTable('console_sessions')
        .set({ revoked_at: now, revoked_by: by.actor })
        .where(personIs(person))
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .returning('id')
        .execute();
      const sessionIds = ended.map((r) => r.id).sort();
      if (sessionIds.length) await appendAudit(audited, { actor: by.actor, action: SESSIONS_REVOKED_AUDIT, subject: by.subject, payload: { sessionIds, ended: sessionIds.length, reason: by.reason, scope: by.scope }, at: now });
      return { ended: sessionIds.length, sessionIds };
    });
  }
}

/** The sessions of one person: by platform and user id (Teams ids compared in lower case), or by a resolved email. */
function personIs(person: SessionPerson) {
  return (eb: ExpressionBuilder<ConsoleTables, 'console_sessions'>) => {
    if (person.kind === 'slack') return eb.and([eb('platform', '=', 'slack'), eb('user_id', '=', person.id)]);
    if (person.kind === 'teams') return eb.and([eb('platform', '=', 'teams'), eb(eb.fn('lower', ['user_id']), '=', person.id)]);
    return eb.exists(sql`(select 1 from jsonb_array_elements_text(${eb.ref('emails')}) as e(email) where lower(e.email) = ${person.id})`);
  };
}

function linkProblem(row: { expires_at: Date; used_at: Date | null } | undefined, now: Date): { ok: false; message: string } | undefined {
  if (!row) return { ok: false, message: 'This sign-in link is not valid.' };
  if (row.used_at) return { ok: false, message: 'This sign-in link was already used. Links work once: ask for a new one with /armalo console.' };
  if (row.expires_at.getTime() <= now.getTime()) return { ok: false, message: 'This sign-in link has expired (links last 5 minutes). Ask for a new one with /armalo console.' };
  return undefined;
}

/** The CSRF token of a session: a keyed hash of the session token (never the token itself). */
export function csrfFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('armalo-console-csrf').digest('base64url');
}

/** Compares a posted CSRF token with the session's, in constant time. */
export function csrfMatches(session: ConsoleSession, posted: string | undefined): boolean {
  if (!posted) return false;
  const a = Buffer.from(posted);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What the sign-in form asks of a limiter (the replica's own, or one shared through Redis). */
export interface SignInLimits {
  blocked(key: string): boolean | Promise<boolean>;
  failed(key: string): void | Promise<void>;
}

/**
 * Failed sign-in attempts per client address (a bad, spent or expired link posted to the sign-in
 * form): a fixed window in memory, per replica. Past the limit every attempt from that address is
 * refused for the rest of the window, good links included. The link tokens are 256-bit random, so
 * this is about noise and abuse rather than guessing; successful sign-ins are not counted.
 */
export class SignInLimiter {
  private readonly failures = new Map<string, { windowStart: number; count: number }>();
  constructor(
    readonly limit = 10,
    private readonly windowMs = 5 * 60_000,
  ) {}

  blocked(key: string, now = Date.now()): boolean {
    const entry = this.failures.get(key);
    return entry !== undefined && now - entry.windowStart < this.windowMs && entry.count >= this.limit;
  }

  failed(key: string, now = Date.now()): void {
    const entry = this.failures.get(key);
    if (!entry || now - entry.windowStart >= this.windowMs) {
      if (this.failures.size > 10_000) this.failures.clear();
      this.failures.set(key, { windowStart: now, count: 1 });
    } else entry.count++;
  }
}

/**
 * The sign-in limiter shared by every replica: failures counted in Redis (one key per address, a
 * fixed window from its first failure), so a client cannot spread its attempts over the replicas
 * behind a load balancer. Each replica also counts on its own: with Redis unreachable the limit
 * still holds per replica (answered from memory, never an error for the person signing in).
 */
export class SharedSignInLimiter implements SignInLimits {
  private readonly local: SignInLimiter;
  constructor(
    private readonly redis: Pick<Redis, 'get' | 'multi'>,
    private readonly keyPrefix: string,
    readonly limit = 10,
    private readonly windowMs = 5 * 60_000,
  ) {
    this.local = new SignInLimiter(limit, windowMs);
  }

  private keyOf(address: string): string {
    return `${this.keyPrefix}:console:signin-failures:${address}`;
  }

  async blocked(key: string): Promise<boolean> {
    if (this.local.blocked(key)) return true;
    try {
      return Number((await this.redis.get(this.keyOf(key))) ?? 0) >= this.limit;
    } catch {
      return false;
    }
  }

  async failed(key: string): Promise<void> {
    this.local.failed(key);
    try {
      const k = this.keyOf(key);
      await this.redis.multi().incr(k).pexpire(k, this.windowMs, 'NX').exec();
    } catch {
      // Counted here only: the replica's own limit still applies.
    }
  }
}
