import { canonicalJson } from './policy-holder.js';
import type { Policy } from './policy.schema.js';

/** What changed between two policies, as the `policy.changed` audit entry records it. */
export interface PolicyChangeSummary {
  rolesAdded: string[];
  rolesRemoved: string[];
  /** Per role kept in both: members added and removed (`email`, `slack:U…`, `teams:…`). */
  members: Record<string, { added: string[]; removed: string[] }>;
  /** Permissions whose roles or settings changed, with the old and new value. */
  permissions: Record<string, { from: unknown; to: unknown }>;
  routingAdded: string[];
  routingRemoved: string[];
  routingChanged: string[];
  /** Other top-level sections that changed (channels, trust, consequences, mcp, version). */
  otherChanged: string[];
}

type Member = Policy['roles'][string]['members'][number];

/** How a member is named in a summary: their email, else their platform ids. */
export function describeMember(member: Member): string {
  const ids = [member.email, member.slack && `slack:${member.slack}`, member.teams && `teams:${member.teams}`].filter((x): x is string => !!x);
  return ids.join(' / ');
}

export function summarizePolicyChange(before: Policy, after: Policy): PolicyChangeSummary {
  const oldRoles = Object.keys(before.roles);
  const newRoles = Object.keys(after.roles);
  const members: PolicyChangeSummary['members'] = {};
  for (const role of newRoles.filter((r) => oldRoles.includes(r))) {
    const was = before.roles[role]!.members.map(describeMember);
    const now = after.roles[role]!.members.map(describeMember);
    const added = now.filter((m) => !was.includes(m));
    const removed = was.filter((m) => !now.includes(m));
    if (added.length || removed.length) members[role] = { added, removed };
  }

  const permissions: PolicyChangeSummary['permissions'] = {};
  const permissionKeys = new Set([...Object.keys(before.permissions), ...Object.keys(after.permissions)]);
  for (const key of [...permissionKeys].sort()) {
    const from = (before.permissions as Record<string, unknown>)[key];
    const to = (after.permissions as Record<string, unknown>)[key];
    if (canonicalJson(from) !== canonicalJson(to)) permissions[key] = { from: from ?? null, to: to ?? null };
  }

  const oldRules = new Map(before.routing.map((r) => [r.id, canonicalJson(r)]));
  const newRules = new Map(after.routing.map((r) => [r.id, canonicalJson(r)]));
  const routingChanged = [...newRules].filter(([id, text]) => oldRules.has(id) && oldRules.get(id) !== text).map(([id]) => id);
  // Same rules in another order route differently (rules are read top to bottom).
  const sameIds = [...oldRules.keys()].filter((id) => newRules.has(id));
  const orderChanged = sameIds.join('\n') !== [...newRules.keys()].filter((id) => oldRules.has(id)).join('\n');

  const otherChanged: string[] = (['channels', 'trust', 'consequences', 'mcp', 'version'] as const).filter((key) => canonicalJson(before[key]) !== canonicalJson(after[key]));
  if (orderChanged) otherChanged.push('routing order');

  return {
    rolesAdded: newRoles.filter((r) => !oldRoles.includes(r)),
    rolesRemoved: oldRoles.filter((r) => !newRoles.includes(r)),
    members,
    permissions,
    routingAdded: [...newRules.keys()].filter((id) => !oldRules.has(id)),
    routingRemoved: [...oldRules.keys()].filter((id) => !newRules.has(id)),
    routingChanged,
    otherChanged,
  };
}
