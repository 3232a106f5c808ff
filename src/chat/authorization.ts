import type { Policy } from '../policy/policy.schema.js';

/** Who is asking, as a chat platform knows them. Emails come from identities resolved by the directory job. */
export interface ChatIdentity {
  platform: 'slack' | 'teams';
  userId: string;
  emails: string[];
  /** Set when the person acts through the web console: actions are recorded as `console:<person>`. */
  via?: 'console';
}

/** `subscribe` covers subscribe and unsubscribe (policy `permissions.subscribe`, default: the contain roles). */
/** `breakGlass`: restore alone in an emergency (policy `permissions.breakGlass`). */
/** `bulk`: act on a fleet by selector (policy `permissions.bulk.roles`), on top of the action's own permission. */
export type Permission = 'contain' | 'narrow' | 'revoke' | 'restore' | 'packet' | 'subscribe' | 'read' | 'breakGlass' | 'bulk';

export type Authorization = { ok: true; roles: string[] } | { ok: false; needed: string[]; message: string };

/** The policy roles this person holds: matched by platform user id, or by an email the platform resolved. */
export function rolesOf(policy: Policy, who: ChatIdentity): string[] {
  const emails = new Set(who.emails.map((e) => e.toLowerCase()));
  return Object.entries(policy.roles)
    .filter(([, role]) =>
      role.members.some(
        (m) => (who.platform === 'slack' && m.slack === who.userId) || (who.platform === 'teams' && m.teams?.toLowerCase() === who.userId.toLowerCase()) || (m.email !== undefined && emails.has(m.email.toLowerCase())),
      ),
    )
    .map(([name]) => name);
}

/**
 * Is this person allowed to use this command? `read` (status, audit, agents, incidents) is open to anyone who holds
 * any role in the policy: it shows security state, so strangers in the workspace do not get it.
 */
export function authorize(policy: Policy, who: ChatIdentity, permission: Permission): Authorization {
  const held = rolesOf(policy, who);
  const needed =
    permission === 'read'
      ? Object.keys(policy.roles)
      : permission === 'restore'
        ? policy.permissions.restore.roles
        : permission === 'breakGlass'
          ? policy.permissions.breakGlass.roles
          : permission === 'bulk'
            ? policy.permissions.bulk.roles
            : policy.permissions[permission];
  const granted = held.filter((r) => needed.includes(r));
  if (granted.length) return { ok: true, roles: granted };
  const what = permission === 'breakGlass' ? 'restore with --break-glass' : permission === 'bulk' ? 'act on a fleet by selector' : permission;
  const message =
    needed.length === 0
      ? `nobody may ${permission === 'read' ? 'read agent state' : what} under the current policy${permission === 'breakGlass' ? ' (permissions.breakGlass)' : permission === 'bulk' ? ' (permissions.bulk)' : ''}`
      : permission === 'read'
        ? 'this needs a role in the policy; you hold none'
        : `${what} needs one of these roles: ${needed.join(', ')}${held.length ? ` (you hold: ${held.join(', ')})` : ' (you hold none)'}`;
  return { ok: false, needed, message };
}
