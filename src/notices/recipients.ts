import type { Db } from '../db/database.js';
import type { SubscriptionKind } from '../db/schema.js';
import { isPerson, policyPeople, type Person, type RouteSnapshot } from '../domain/approval-route.js';
import type { Policy } from '../policy/policy.schema.js';
import type { PlatformName } from './platform.js';

/** A channel a notice goes to, and the suffix its ledger keys carry (none for the policy's own channel). */
export interface ChannelTarget {
  channel: string;
  /** Whether it is the policy's channel (keys without a channel suffix), or a subscription's. */
  fromPolicy: boolean;
}

type PersonIds = Pick<Person, 'slack' | 'teams' | 'emails'>;

/**
 * Where notices go, resolved once for every platform: the policy's channels
 * (`channels.<name>.<platform>`, a routing rule's channel), channel subscriptions (the
 * `subscriptions` table: scores, incidents, approvals; per platform), approvers (route people as
 * platform user ids: the ids listed in the policy plus their emails resolved in `chat_identities`)
 * and the restorers told of a break-glass restore. The policy is read at each call, so a live reload
 * applies to the next notice.
 */
export class Recipients {
  constructor(private readonly deps: { db: Db; policy: Policy }) {}

  /** The policy's channel of that name on a platform (`channels.incidents.slack`, a rule's channel). */
  policyChannel(platform: PlatformName, name: string | null | undefined): string | undefined {
    if (!name) return undefined;
    const entry = Object.hasOwn(this.deps.policy.channels, name) ? this.deps.policy.channels[name] : undefined;
    return entry?.[platform] ?? undefined;
  }

  /** Channels subscribed to this agent's (or every agent's) notices of a kind, on a platform. */
  async subscribed(platform: PlatformName, agentId: string, kind: SubscriptionKind): Promise<string[]> {
    const rows = await this.deps.db
      .selectFrom('subscriptions')
      .select(['channel', 'kinds'])
      .where('platform', '=', platform)
      .where('agent_pattern', 'in', [agentId, '*'])
      .orderBy('created_at')
      .execute();
    return [...new Set(rows.filter((r) => r.kinds.includes(kind)).map((r) => r.channel))];
  }

  /** The policy's channel first (when it names one), then every other subscribed channel, each once. */
  async channels(platform: PlatformName, agentId: string, kind: SubscriptionKind, policyChannel: string | null | undefined): Promise<ChannelTarget[]> {
    const own = this.policyChannel(platform, policyChannel);
    const targets: ChannelTarget[] = own ? [{ channel: own, fromPolicy: true }] : [];
    for (const channel of await this.subscribed(platform, agentId, kind)) {
      if (channel !== own) targets.push({ channel, fromPolicy: false });
    }
    return targets;
  }

  /**
   * The approvers of a route as platform user ids, by person key: the ids the policy lists for
   * them, plus the users their emails resolved to (the Slack directory, the Teams roster).
   */
  async approvers(platform: PlatformName, route: RouteSnapshot): Promise<Map<string, string[]>> {
    const keys = [...new Set(route.requirements.flatMap((r) => r.people))];
    return this.userIds(platform, keys.map((k) => [k, route.people[k]] as const));
  }

  /** The members of the restore roles other than the actor, as platform user ids (break-glass DMs). */
  async restorers(platform: PlatformName, exceptActor: string): Promise<string[]> {
    const { policy } = this.deps;
    const people = policyPeople(policy).filter((p) => p.roles.some((r) => policy.permissions.restore.roles.includes(r)) && !isPerson(p, { text: exceptActor }));
    const ids = await this.userIds(platform, people.map((p) => [p.key, p] as const));
    return [...new Set([...ids.values()].flat())];
  }

  private async userIds(platform: PlatformName, people: readonly (readonly [string, PersonIds | undefined])[]): Promise<Map<string, string[]>> {
    const emails = [...new Set(people.flatMap(([, p]) => p?.emails ?? []).map((e) => e.toLowerCase()))];
    const resolved = emails.length
      ? await this.deps.db.selectFrom('chat_identities').select(['email', 'user_id']).where('platform', '=', platform).where('email', 'in', emails).where('user_id', 'is not', null).execute()
      : [];
    const listed = (p: PersonIds | undefined) => (platform === 'slack' ? (p?.slack ?? []) : (p?.teams ?? []).map((t) => t.toLowerCase()));
    return new Map(
      people.map(([key, p]) => {
        const mine = new Set((p?.emails ?? []).map((e) => e.toLowerCase()));
        const byEmail = resolved.filter((r) => mine.has(r.email.toLowerCase())).map((r) => r.user_id!);
        return [key, [...new Set([...listed(p), ...byEmail])]];
      }),
    );
  }
}
