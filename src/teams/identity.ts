import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { ChatIdentity } from '../chat/authorization.js';
import type { Approver } from '../approvals/approvals.service.js';
import { createLimitedLog, type LimitedLog, type Logger } from '../observability/logger.js';

/**
 * Who is acting in Teams, built once per activity for commands, approval clicks and confirmation
 * clicks alike: the member's Entra (AAD) object id, lower-case, plus the email Teams' roster gives
 * for them, so a policy member listed only by `email:` is recognised in Teams too.
 *
 * The roster (Bot Connector `GET /v3/conversations/{id}/members/{userId}`, botbuilder's
 * `TeamsInfo.getMember`) is asked at most once an hour per person: the answer is kept in
 * `chat_identities` (platform `teams`, email -> AAD object id), shared by every replica and read by
 * whoever resolves approvers by email. A roster failure never fails the command: the person is
 * recognised by id only (or by the emails last known for them), and the failure is logged at most
 * once a minute.
 */

/** What the roster says about a member (botbuilder's TeamsChannelAccount, the fields used here). */
export interface RosterMember {
  email?: string | null;
  userPrincipalName?: string | null;
}

/** Asks the roster about one member, by their Teams user id (`29:…`). */
export type Roster = (memberId: string) => Promise<RosterMember | undefined>;

/** The part of an activity that says who sent it. */
export interface TeamsSender {
  id?: string;
  aadObjectId?: string;
}

/** How long a roster answer is trusted before it is asked again. */
export const ROSTER_TTL_MS = 60 * 60_000;
/** After a failed roster call, that person's roster is not asked again for this long. */
export const ROSTER_RETRY_MS = 60_000;
/** A roster call slower than this counts as failed: the answer (an invoke has seconds) does not wait longer. */
export const ROSTER_TIMEOUT_MS = 2_000;
/** Bound on the in-memory notes (no email, failed recently), which only save roster calls. */
const MAX_NOTES = 10_000;

/** The id a Teams person is known by in the policy and in actors: the AAD object id, lower-case. */
export function teamsUserId(from: TeamsSender | undefined): string {
  return (from?.aadObjectId ?? from?.id ?? '').toLowerCase();
}

/** The approver a Teams click is made by. */
export function teamsApprover(who: ChatIdentity): Approver {
  return { actor: `teams:${who.userId}`, platform: 'teams', teams: who.userId, emails: who.emails };
}

const emailsOf = (m: RosterMember | undefined): string[] =>
  [...new Set([m?.email, m?.userPrincipalName].filter((e): e is string => typeof e === 'string' && e.includes('@')).map((e) => e.trim().toLowerCase()))];

export class TeamsIdentities {
  /** AAD ids whose roster entry had no email, until when (no row can say that in chat_identities). */
  private readonly noEmailUntil = new Map<string, number>();
  /** AAD ids whose roster call failed, until when it is not tried again. */
  private readonly failedUntil = new Map<string, number>();
  /** One roster call per person at a time: concurrent messages share it. */
  private readonly inflight = new Map<string, Promise<string[] | undefined>>();
  private readonly limited: LimitedLog;

  constructor(private readonly deps: { db: Db; clock: Clock; logger: Logger; timeoutMs?: number }) {
    this.limited = createLimitedLog(deps.logger, { now: () => deps.clock.now().getTime() });
  }

  /** The sender of an activity as authorization and approvals see them. */
  async identify(from: TeamsSender | undefined, roster: Roster): Promise<ChatIdentity> {
    const userId = teamsUserId(from);
    const aad = from?.aadObjectId?.toLowerCase();
    if (!userId) return { platform: 'teams', userId, emails: [] };
    // Without an AAD object id (the Bot Framework Emulator, a bot) there is no one to look up.
    if (!aad || !from?.id) return { platform: 'teams', userId, emails: [] };
    return { platform: 'teams', userId, emails: await this.emails(aad, from.id, roster) };
  }

  private async emails(aad: string, memberId: string, roster: Roster): Promise<string[]> {
    const now = this.deps.clock.now().getTime();
    const rows = await this.deps.db.selectFrom('chat_identities').select(['email', 'resolved_at']).where('platform', '=', 'teams').where('user_id', '=', aad).execute();
    const known = rows.map((r) => r.email);
    const newest = Math.max(0, ...rows.map((r) => new Date(r.resolved_at).getTime()));
    if (rows.length && now - newest < ROSTER_TTL_MS) return known;
    if ((this.noEmailUntil.get(aad) ?? 0) > now) return known;
    if ((this.failedUntil.get(aad) ?? 0) > now) return known;
    let call = this.inflight.get(aad);
    if (!call) {
      call = this.askRoster(aad, memberId, roster).finally(() => this.inflight.delete(aad));
      this.inflight.set(aad, call);
    }
    // undefined: the roster failed; the emails last known for this person still stand.
    return (await call) ?? known;
  }

  private async askRoster(aad: string, memberId: string, roster: Roster): Promise<string[] | undefined> {
    const timeoutMs = this.deps.timeoutMs ?? ROSTER_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let member: RosterMember | undefined;
    try {
      member = await Promise.race([
        roster(memberId),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      note(this.failedUntil, aad, this.deps.clock.now().getTime() + ROSTER_RETRY_MS);
      const e = err as { message?: string; statusCode?: number };
      this.limited('warn', 'teams-roster', { status: e.statusCode, err: e.message }, 'Teams roster lookup failed: the sender is recognised by their Teams id only');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
    this.failedUntil.delete(aad);
    const emails = emailsOf(member);
    const now = this.deps.clock.now();
    const { db } = this.deps;
    if (emails.length === 0) {
      note(this.noEmailUntil, aad, now.getTime() + ROSTER_TTL_MS);
    } else {
      this.noEmailUntil.delete(aad);
      for (const email of emails) {
        await db
          .insertInto('chat_identities')
          .values({ platform: 'teams', email, user_id: aad, resolved_at: now })
          .onConflict((oc) => oc.columns(['platform', 'email']).doUpdateSet({ user_id: aad, resolved_at: now }))
          .execute();
      }
    }
    // Emails this person no longer has are forgotten.
    let stale = db.deleteFrom('chat_identities').where('platform', '=', 'teams').where('user_id', '=', aad);
    if (emails.length) stale = stale.where('email', 'not in', emails);
    await stale.execute();
    return emails;
  }
}

function note(map: Map<string, number>, key: string, until: number): void {
  if (map.size >= MAX_NOTES) map.clear();
  map.set(key, until);
}
