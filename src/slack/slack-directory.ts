import type { WebClient } from '@slack/web-api';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { ChatIdentity } from '../chat/authorization.js';
import type { Policy } from '../policy/policy.schema.js';
import { classifySlackError } from './slack-web.js';
import { RetryLater } from '../notices/platform.js';

export const SLACK_DIRECTORY_JOB = 'slack-directory';
/** Publish one person's App Home (queue `notify`). */
export const SLACK_HOME_JOB = 'slack-home';
export const SLACK_DIRECTORY_EVERY_MS = 30 * 60_000;

/**
 * Policy members listed by email become Slack users through `users.lookupByEmail`, resolved by a
 * job and cached in Postgres, so a command never waits on a Slack lookup before it answers.
 */
export class SlackDirectory {
  constructor(private readonly deps: { db: Db; clock: Clock; policy: Policy }) {}

  /** The caller as the authorization check sees them: Slack id plus the policy emails that resolve to it. */
  async identify(userId: string): Promise<ChatIdentity> {
    const rows = await this.deps.db
      .selectFrom('chat_identities')
      .select('email')
      .where('platform', '=', 'slack')
      .where('user_id', '=', userId)
      .execute();
    return { platform: 'slack', userId, emails: rows.map((r) => r.email) };
  }

  policyEmails(): string[] {
    const emails = Object.values(this.deps.policy.roles).flatMap((r) => r.members.map((m) => m.email).filter((e): e is string => !!e));
    return [...new Set(emails.map((e) => e.toLowerCase()))];
  }

  /** Looks every policy email up; unknown emails are remembered as unresolved (user_id null). */
  async refresh(client: WebClient): Promise<{ resolved: number; unresolved: number }> {
    let resolved = 0;
    let unresolved = 0;
    for (const email of this.policyEmails()) {
      let userId: string | null = null;
      try {
        const res = await client.users.lookupByEmail({ email });
        userId = res.user?.id ?? null;
      } catch (err) {
        const failure = classifySlackError(err);
        if (failure.kind === 'rate_limited') throw new RetryLater(failure.retryAfterSeconds * 1000, `Slack rate limit: retry after ${failure.retryAfterSeconds} s`);
        if (failure.kind === 'transient' || failure.kind === 'unavailable') throw new Error(`users.lookupByEmail failed: ${failure.message}`);
        // users_not_found and the like: this email has no Slack user.
      }
      if (userId) resolved++;
      else unresolved++;
      await this.deps.db
        .insertInto('chat_identities')
        .values({ platform: 'slack', email, user_id: userId, resolved_at: this.deps.clock.now() })
        .onConflict((oc) => oc.columns(['platform', 'email']).doUpdateSet({ user_id: userId, resolved_at: this.deps.clock.now() }))
        .execute();
    }
    return { resolved, unresolved };
  }
}
