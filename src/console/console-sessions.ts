import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ColumnType } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { ChatIdentity } from '../chat/authorization.js';

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
