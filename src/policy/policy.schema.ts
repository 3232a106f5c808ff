import { z } from 'zod';
import { RISK_TIERS } from '../domain/agent.js';
import { durationSchema } from '../domain/duration.js';
import { ACTION_PATTERN } from '../domain/scope.js';

/**
 * The policy file (DESIGN §3 "Policy as code"): who is who (roles), who may do what (permissions), who
 * approves what (routing), what trust deterioration does by itself (consequences) and where notices go
 * (channels). Every object is strict: in a security policy a misspelt key must be an error, never a
 * setting that is silently ignored. Separation of duties is deliberately not configurable here.
 */

export const POLICY_SCHEMA_ID = 'https://armalo.dev/schemas/policy.schema.json';

export const TRUST_TIERS = ['bronze', 'silver', 'gold', 'platinum'] as const;
export const VIOLATION_SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;

// ---------------------------------------------------------------------------------------------------
// Strict objects with useful "unknown key" messages

/** Distance between two short strings (key names), for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase();
  const closest = known
    .map((candidate) => ({ candidate, distance: editDistance(lower, candidate.toLowerCase()) }))
    .sort((a, b) => a.distance - b.distance)[0];
  if (closest && closest.distance <= Math.max(1, Math.floor(closest.candidate.length / 3))) {
    return `unknown key (did you mean "${closest.candidate}"?)`;
  }
  return `unknown key (allowed here: ${known.join(', ')})`;
}

/**
 * `z.strictObject` whose unknown-key issue carries one message line per unknown key, in the order of
 * `issue.keys`; the problem formatter in load-policy.ts splits them so each key gets its own path.
 */
function strictObject<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? issue.keys.map((key) => unknownKeyMessage(key, known)).join('\n') : undefined,
  });
}

/**
 * Cross-field checks run only on values that parsed cleanly. Zod would otherwise run them after
 * non-aborting issues (a too-small quorum, a bad duration) and hand them half-parsed data.
 */
const whenValid = { when: (payload: z.core.ParsePayload) => payload.issues.length === 0 };

// ---------------------------------------------------------------------------------------------------
// Names and identities

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const roleNameSchema = z
  .string()
  .regex(NAME_PATTERN, { error: 'a role name uses letters, digits, "-", "_" and "." (starting with a letter or digit, at most 64)' });

const channelNameSchema = z
  .string()
  .regex(NAME_PATTERN, { error: 'a channel name uses letters, digits, "-", "_" and "." (starting with a letter or digit, at most 64)' });

/** A reference to a role; whether the role exists is checked across the whole file below. */
const roleRefSchema = z.string({ error: 'expected a role name' }).min(1, { error: 'expected a role name' });

const roleListSchema = z.array(roleRefSchema, { error: 'expected a list of role names' });

const memberSchema = strictObject({
  email: z
    .email({ error: 'expected an email address' })
    // Addresses are compared case-insensitively when a chat user is matched to a member.
    .transform((email) => email.toLowerCase())
    .optional()
    .describe('Email address (compared case-insensitively).'),
  slack: z
    .string({ error: 'expected a Slack user id such as U0123ABCD' })
    .regex(/^[UW][A-Z0-9]{2,}$/, { error: 'expected a Slack user id such as U0123ABCD (U or W, then capital letters and digits)' })
    .optional()
    .describe('Slack user id (U… or W…), not the display name.'),
  teams: z
    .guid({ error: 'expected a Teams user id: the Azure AD (Entra ID) object id, a GUID such as 00000000-0000-0000-0000-000000000001' })
    .transform((id) => id.toLowerCase())
    .optional()
    .describe('Microsoft Teams user: the Azure AD (Entra ID) object id, a GUID.'),
})
  .refine((member) => member.email !== undefined || member.slack !== undefined || member.teams !== undefined, {
    error: 'a member needs at least one identity: email, slack or teams',
    ...whenValid,
  })
  .meta({ minProperties: 1, description: 'One person, known by any of their identities.' });

const roleSchema = strictObject({
  members: z
    .array(memberSchema, { error: 'expected a list of members' })
    .min(1, { error: 'a role needs at least one member' })
    .describe('The people in this role.'),
}).describe('A role and its members.');

// ---------------------------------------------------------------------------------------------------
// Permissions

/** Restore settings that were written as a bare list; used only to point error paths at what was written. */
const restoreWrittenAsList = new WeakSet<object>();

const restoreObjectSchema = strictObject({
  roles: roleListSchema.describe('Roles whose members may restore an agent.'),
  secondPerson: z
    .boolean({ error: 'expected true or false' })
    .optional()
    .describe('Default false. When true, a second, different member of these roles must confirm the restore.'),
  freshEvaluation: z
    .boolean({ error: 'expected true or false' })
    .optional()
    .describe('Default false. When true, restore waits for an evaluation completed after the incident began.'),
});

const restoreSchema = z
  .union([roleListSchema, restoreObjectSchema], {
    error: 'expected a list of role names or { roles, secondPerson, freshEvaluation }',
  })
  .transform((value) => {
    if (Array.isArray(value)) {
      const normalized = { roles: value, secondPerson: false, freshEvaluation: false };
      restoreWrittenAsList.add(normalized);
      return normalized;
    }
    return { roles: value.roles, secondPerson: value.secondPerson ?? false, freshEvaluation: value.freshEvaluation ?? false };
  })
  .describe('Who may restore an agent: a list of roles, or { roles, secondPerson, freshEvaluation }.');

const permissionsSchema = strictObject({
  contain: roleListSchema.default([]).describe('Roles that may contain an agent (suspend every grant not kept in containment).'),
  narrow: roleListSchema.default([]).describe('Roles that may narrow an agent (suspend listed scopes).'),
  revoke: roleListSchema.default([]).describe('Roles that may revoke an agent (kill switch).'),
  restore: restoreSchema.default({ roles: [], secondPerson: false, freshEvaluation: false }),
  packet: roleListSchema.default([]).describe('Roles that may request a trust packet in chat.'),
  breakGlass: strictObject({
    roles: roleListSchema.describe('Roles whose members may restore alone in an emergency.'),
  })
    .default({ roles: [] })
    .describe(
      'The emergency path when the second person cannot be reached: members of these roles may `/armalo restore <agent> --break-glass <reason>` alone (no second person, no fresh evaluation). Loudly announced and audited. Default: nobody.',
    ),
  bulk: strictObject({
    roles: roleListSchema.describe('Roles whose members may act on a fleet by selector (they also need the role for the action itself).'),
    confirmAbove: z
      .number({ error: 'expected a whole number of agents' })
      .int({ error: 'expected a whole number of agents' })
      .min(0, { error: 'expected 0 or more agents' })
      .max(1_000_000, { error: 'expected at most 1000000 agents' })
      .optional()
      .describe('Default 10. In chat, a fleet action on more agents than this asks its requester to confirm (a button with the count). REST callers (admin tokens) are not asked.'),
  })
    .default({ roles: [] })
    .transform((b) => ({ roles: b.roles, confirmAbove: b.confirmAbove ?? 10 }))
    .describe(
      'Fleet actions by selector (`/armalo contain scope:payments:*`, `owner:<email>`, `risk:<tier>`; `POST /v1/actions`): who may run them in chat and above how many agents chat asks for a confirmation. A person needs a bulk role AND the role for the action (contain, narrow or restore). Default: nobody.',
    ),
  subscribe: roleListSchema
    .optional()
    .describe(
      'Roles that may subscribe or unsubscribe a channel to notices (approval cards carry amounts and recipients). Default when left out: the roles that may contain.',
    ),
})
  // A channel subscription sends security notices out: by default only responders may route them.
  .transform(({ subscribe, ...rest }) => ({ ...rest, subscribe: subscribe ?? rest.contain }))
  .describe('Who may use each incident command. A missing entry means nobody (fail closed); subscribe defaults to contain.');

// ---------------------------------------------------------------------------------------------------
// Routing

const quorumMessage = 'expected a positive integer';

const routingMatchSchema = strictObject({
  action: z
    .string({ error: 'expected an action or a glob such as payments:*' })
    .regex(/^\S+$/, { error: 'expected an action or a glob such as payments:* (no spaces)' })
    .optional()
    .describe('Action name or glob (`*` matches any run of characters), e.g. "payments:*".'),
  context: strictObject({
    amountOver: z
      .number({ error: 'expected a number' })
      .nonnegative({ error: 'expected a number of 0 or more' })
      .optional()
      .describe('Matches when the request context has a numeric `amount` strictly greater than this.'),
  })
    .optional()
    .describe('Conditions on the request context.'),
  riskTier: z
    .array(z.enum(RISK_TIERS, { error: `expected one of ${RISK_TIERS.join(', ')}` }), {
      error: `expected a list of risk tiers (${RISK_TIERS.join(', ')})`,
    })
    .min(1, { error: 'expected at least one risk tier' })
    .optional()
    .describe("Matches when the agent's risk tier is one of these."),
  evidenceOlderThan: durationSchema
    .optional()
    .describe("Matches when the agent's newest evaluation evidence is older than this (or there is none)."),
  tierBelow: z
    .enum(TRUST_TIERS, { error: `expected one of ${TRUST_TIERS.join(', ')}` })
    .optional()
    .describe("Matches when the agent's trust tier is below this one (or it has no score yet)."),
  scoreBelow: z
    .number({ error: 'expected a score (1-1000)' })
    .int({ error: 'expected a whole score (1-1000)' })
    .min(1, { error: 'expected a score (1-1000)' })
    .max(1000, { error: 'expected a score (1-1000)' })
    .optional()
    .describe("Matches when the agent's trust score is below this (or it has no score yet)."),
}).describe('Conditions; all that are given must hold. Empty or missing matches every request.');

const routingRuleSchema = strictObject({
  id: z
    .string({ error: 'expected a rule id' })
    .min(1, { error: 'expected a non-empty rule id' })
    .optional()
    .describe('Name shown in routes and audit entries. Default: "routing[<index>]".'),
  match: routingMatchSchema.default({}),
  approvers: roleListSchema
    .min(1, { error: 'expected at least one role' })
    .optional()
    .describe('Roles whose members approve requests this rule routes.'),
  addApprovers: roleListSchema
    .min(1, { error: 'expected at least one role' })
    .optional()
    .describe('Roles that must also sign off when this rule matches, on top of the route chosen by `approvers`.'),
  quorum: z
    .number({ error: quorumMessage })
    .int({ error: quorumMessage })
    .positive({ error: quorumMessage })
    .optional()
    .describe('Distinct people who must approve. Default 1.'),
  remindAfter: durationSchema.optional().describe('Remind the approvers who have not decided after this long.'),
  escalateAfter: durationSchema.optional().describe('Escalate to `escalateTo` after this long without a decision.'),
  escalateTo: roleListSchema
    .min(1, { error: 'expected at least one role' })
    .optional()
    .describe('Roles added to the approvers on escalation. Requires escalateAfter.'),
  expireAfter: durationSchema.optional().describe('The request expires (is not approved) after this long. Default 24h.'),
  grantFor: durationSchema
    .optional()
    .describe('How long an approval allows the action again. Default: once (the first allowed decision uses it up).'),
  channel: channelNameSchema.optional().describe('Name of an entry in `channels` where the approval card is also posted.'),
  minTier: z
    .enum(TRUST_TIERS, { error: `expected one of ${TRUST_TIERS.join(', ')}` })
    .optional()
    .describe('The rule applies only to agents whose trust tier is below this (or unscored): the same as match.tierBelow.'),
})
  .superRefine((rule, ctx) => {
    if (!rule.approvers && !rule.addApprovers) {
      ctx.addIssue({ code: 'custom', message: 'a routing rule needs approvers or addApprovers', path: [] });
    }
    if (!rule.approvers && rule.addApprovers) {
      // Timers, escalation and channel come from the rule that sets the route; here they would do nothing.
      for (const key of ['remindAfter', 'escalateAfter', 'escalateTo', 'expireAfter', 'grantFor', 'channel'] as const) {
        if (rule[key] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `${key} only applies in a rule with approvers (the rule that sets the route); this rule only adds approvers`,
            path: [key],
          });
        }
      }
    }
    if (rule.escalateAfter && !rule.escalateTo) {
      ctx.addIssue({ code: 'custom', message: 'escalateAfter needs escalateTo (the roles to escalate to)', path: ['escalateAfter'] });
    }
    if (rule.escalateTo && !rule.escalateAfter) {
      ctx.addIssue({ code: 'custom', message: 'escalateTo needs escalateAfter (when to escalate)', path: ['escalateTo'] });
    }
    if (rule.expireAfter) {
      for (const key of ['remindAfter', 'escalateAfter'] as const) {
        const timer = rule[key];
        if (timer && timer.ms >= rule.expireAfter.ms) {
          ctx.addIssue({
            code: 'custom',
            message: `${key} (${timer.text}) must be shorter than expireAfter (${rule.expireAfter.text}), or it never happens`,
            path: [key],
          });
        }
      }
    }
  }, whenValid)
  .transform(({ id, approvers, addApprovers, quorum, escalateTo, minTier, ...rest }) => ({
    id,
    ...rest,
    // minTier is a rule-level way to write match.tierBelow; the stricter of the two wins.
    match: minTier && (!rest.match.tierBelow || TRUST_TIERS.indexOf(minTier) > TRUST_TIERS.indexOf(rest.match.tierBelow)) ? { ...rest.match, tierBelow: minTier } : rest.match,
    approvers: approvers ?? [],
    addApprovers: addApprovers ?? [],
    quorum: quorum ?? 1,
    escalateTo: escalateTo ?? [],
  }))
  .describe('A routing rule. Rules are read top to bottom.');

// ---------------------------------------------------------------------------------------------------
// Consequences

const scopeSchema = z
  .string({ error: 'expected a scope such as payments:transfer or a glob such as *:write' })
  .regex(/^[^\s,]+$/, { error: 'expected a scope such as payments:transfer or a glob such as *:write (no spaces or commas)' });

const consequenceSchema = strictObject({
  id: z
    .string({ error: 'expected a rule id' })
    .min(1, { error: 'expected a non-empty rule id' })
    .optional()
    .describe('Name shown in incident notices and audit entries. Default: "consequences[<index>]".'),
  when: strictObject({
    tierBelow: z
      .enum(TRUST_TIERS, { error: `expected one of ${TRUST_TIERS.join(', ')}` })
      .optional()
      .describe("Fires when the agent's tier falls below this tier."),
    pactViolated: z
      .enum(VIOLATION_SEVERITIES, { error: `expected one of ${VIOLATION_SEVERITIES.join(', ')}` })
      .optional()
      .describe('Fires on a pact violation of this severity or worse.'),
    scoreDropOver: z
      .number({ error: 'expected a number of points (1-1000)' })
      .positive({ error: 'expected a number of points (1-1000)' })
      .max(1000, { error: 'expected a number of points (1-1000)' })
      .optional()
      .describe('Fires when the score drops by more than this many points in one change.'),
    evidenceOlderThan: durationSchema
      .optional()
      .describe("Fires when the agent's newest evaluation evidence becomes older than this."),
  })
    .refine((when) => Object.values(when).some((value) => value !== undefined), {
      error: 'a consequence needs at least one condition: tierBelow, pactViolated, scoreDropOver or evidenceOlderThan',
      ...whenValid,
    })
    .meta({ minProperties: 1, description: 'Conditions; when several are given, all must hold.' }),
  then: strictObject({
    narrow: z
      .array(scopeSchema, { error: 'expected a list of scopes' })
      .min(1, { error: 'expected at least one scope' })
      .optional()
      .describe('Suspend the grants whose scopes match these scopes or globs.'),
    contain: z
      .literal(true, { error: 'expected true (leave contain out to not contain)' })
      .optional()
      .describe('Contain the agent: suspend every grant not marked keepInContainment.'),
  })
    .refine((then) => then.narrow !== undefined || then.contain !== undefined, {
      error: 'a consequence needs an action: narrow or contain',
      ...whenValid,
    })
    .transform((then) => ({ narrow: then.narrow ?? [], contain: then.contain === true }))
    .meta({ minProperties: 1, description: 'What happens automatically, with a notice in the incidents channel.' }),
}).describe('A consequence rule: trust deterioration that changes runtime behaviour.');

// ---------------------------------------------------------------------------------------------------
// Workflows

const workflowSchema = strictObject({
  actions: z
    .array(scopeSchema, { error: 'expected a list of actions or globs such as payments:*' })
    .min(1, { error: 'expected at least one action' })
    .describe('The actions (or globs) the workflow performs, e.g. ["payments:*", "crm:read"].'),
  description: z.string({ error: 'expected a description' }).max(500, { error: 'expected at most 500 characters' }).optional().describe('What the workflow is, in words.'),
}).describe('A named workflow: a trust packet asked for it is scoped to the grants, routing and consequence rules its actions touch.');

// ---------------------------------------------------------------------------------------------------
// Channels

const channelSchema = strictObject({
  slack: z
    .string({ error: 'expected a Slack channel id such as C0123ABCD' })
    .regex(/^[CG][A-Z0-9]{2,}$/, { error: 'expected a Slack channel id such as C0123ABCD (C or G, then capital letters and digits), not a #name' })
    .optional()
    .describe('Slack channel id (C… or G…), not the #name.'),
  teams: z
    .string({ error: 'expected a Teams channel id such as 19:abc@thread.tacv2' })
    .regex(/^19:\S+@\S+$/, { error: 'expected a Teams channel id such as 19:abc@thread.tacv2' })
    .optional()
    .describe('Teams channel (conversation) id, e.g. "19:…@thread.tacv2".'),
})
  .refine((channel) => channel.slack !== undefined || channel.teams !== undefined, {
    error: 'a channel needs slack, teams or both',
    ...whenValid,
  })
  .meta({ minProperties: 1, description: 'Where to post, per platform.' });

// ---------------------------------------------------------------------------------------------------
// The whole file

function withDefaultIds(section: string) {
  return <T extends { id?: string | undefined }>(items: T[]) =>
    items.map((item, index) => ({ ...item, id: item.id ?? `${section}[${index}]` }));
}

type Path = (string | number)[];

function rolesText(roles: readonly string[]): string {
  return `${roles.length === 1 ? 'role' : 'roles'} ${roles.join(', ')}`;
}

/** Distinct people among the members of some roles: members sharing any identity are one person. */
export function countDistinctPeople(members: readonly { email?: string | undefined; slack?: string | undefined; teams?: string | undefined }[]): number {
  const personByIdentity = new Map<string, number>();
  const parent = members.map((_, index) => index);
  const find = (index: number): number => {
    let root = index;
    while (parent[root] !== root) root = parent[root] ?? root;
    return root;
  };
  members.forEach((member, index) => {
    for (const identity of [member.email && `email:${member.email.toLowerCase()}`, member.slack && `slack:${member.slack}`, member.teams && `teams:${member.teams.toLowerCase()}`]) {
      if (!identity) continue;
      const seen = personByIdentity.get(identity);
      if (seen === undefined) personByIdentity.set(identity, index);
      else parent[find(index)] = find(seen);
    }
  });
  return new Set(members.map((_, index) => find(index))).size;
}

const tierScore = z
  .number({ error: 'expected a score (1-1000)' })
  .int({ error: 'expected a whole score (1-1000)' })
  .min(1, { error: 'expected a score (1-1000)' })
  .max(1000, { error: 'expected a score (1-1000)' });

const trustSettingsSchema = strictObject({
  tiers: strictObject({
    silver: tierScore.default(500).describe('Lowest score of silver. Default 500.'),
    gold: tierScore.default(750).describe('Lowest score of gold. Default 750.'),
    platinum: tierScore.default(900).describe('Lowest score of platinum. Default 900.'),
  })
    .prefault({})
    .superRefine((t, ctx) => {
      if (!(t.silver < t.gold && t.gold < t.platinum)) ctx.addIssue({ code: 'custom', message: `expected silver < gold < platinum, got ${t.silver}, ${t.gold}, ${t.platinum}`, path: [] });
    })
    .describe('Tier thresholds: the lowest score of each tier above bronze.'),
  freshness: strictObject({
    ageingAfter: durationSchema.optional().describe('Evidence older than this is ageing. Default 7d.'),
    staleAfter: durationSchema.optional().describe('Evidence older than this is stale. Default 30d.'),
  })
    .prefault({})
    .transform((f) => ({ ageingAfterMs: f.ageingAfter?.ms ?? 7 * 86_400_000, staleAfterMs: f.staleAfter?.ms ?? 30 * 86_400_000 }))
    .superRefine((f, ctx) => {
      if (f.ageingAfterMs >= f.staleAfterMs) ctx.addIssue({ code: 'custom', message: 'ageingAfter must be shorter than staleAfter', path: [] });
    })
    .describe('Evidence freshness thresholds.'),
  weights: z
    .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, { error: 'expected a dimension name such as safety' }), z.number({ error: 'expected a weight' }).positive({ error: 'expected a positive weight' }).max(100, { error: 'expected a weight of at most 100' }))
    .default({})
    .describe('Weight of each evaluation dimension in the Score. Unlisted dimensions weigh 1.'),
  scoreMoveOver: z
    .number({ error: 'expected a number of points (1-1000)' })
    .int({ error: 'expected a whole number of points' })
    .min(1, { error: 'expected a number of points (1-1000)' })
    .max(1000, { error: 'expected a number of points (1-1000)' })
    .default(50)
    .describe('Score moves larger than this (without a tier change) are announced. Default 50.'),
}).describe('Trust Score settings.');

/**
 * The MCP server's settings (docs/mcp.md). `toolActions` maps a coding agent's tool names (globs, `*`
 * for any run of characters) to the action `request_permission` asks the decision API about; the
 * first matching entry, in file order, wins. Unmapped tools ask about `tool:<name>`.
 */
const mcpSettingsSchema = strictObject({
  toolActions: z
    .record(
      z
        .string()
        .min(1, { error: 'expected a tool name or glob such as Bash or mcp__github__*' })
        .max(200, { error: 'expected a tool name or glob of at most 200 characters' })
        .refine((name) => ![...name].some((c) => c < ' '), { error: 'a tool name or glob may not contain control characters' }),
      z
        .string({ error: 'expected an action such as shell:exec' })
        .max(200, { error: 'expected an action of at most 200 characters' })
        .regex(ACTION_PATTERN, { error: 'expected a concrete action such as shell:exec (lowercase segments separated by ":", no wildcards)' }),
      { error: 'expected a mapping of tool name (or glob) to action' },
    )
    .default({})
    .describe('Tool name (or glob) to the action request_permission asks about; first match in file order wins. Unmapped tools ask about tool:<name>.'),
}).describe('MCP server settings.');

export const policySchema = strictObject({
  version: z.literal(1, { error: 'expected 1 (the only policy format version so far)' }).optional().describe('Policy format version. Optional; 1.'),
  roles: z.record(roleNameSchema, roleSchema, { error: 'expected a mapping of role name to { members }' }).default({}).describe('Roles by name.'),
  permissions: permissionsSchema.prefault({}),
  routing: z
    .array(routingRuleSchema, { error: 'expected a list of routing rules' })
    .transform(withDefaultIds('routing'))
    .default([])
    .describe('Approval routing rules, read top to bottom.'),
  consequences: z
    .array(consequenceSchema, { error: 'expected a list of consequence rules' })
    .transform(withDefaultIds('consequences'))
    .default([])
    .describe('Automatic consequences of trust deterioration.'),
  channels: z
    .record(channelNameSchema, channelSchema, { error: 'expected a mapping of channel name to { slack, teams }' })
    .default({})
    .describe('Channels by name; "incidents", "scores" and "approvals" are the well-known names.'),
  trust: trustSettingsSchema.prefault({}),
  mcp: mcpSettingsSchema.prefault({}),
  workflows: z
    .record(z.string().regex(NAME_PATTERN, { error: 'a workflow name uses letters, digits, "-", "_" and "." (starting with a letter or digit, at most 64)' }), workflowSchema, {
      error: 'expected a mapping of workflow name to { actions }',
    })
    .default({})
    .describe('Named workflows (`POST /v1/trust-packets {workflow}`, `/armalo packet <agent> workflow <name>`).'),
}).superRefine((policy, ctx) => {
  const roleNames = Object.keys(policy.roles);
  const known = roleNames.length > 0 ? `known roles: ${roleNames.join(', ')}` : 'no roles are defined';
  const checkRoles = (roles: readonly string[], path: Path): boolean => {
    let allKnown = true;
    roles.forEach((role, index) => {
      if (Object.hasOwn(policy.roles, role)) return;
      allKnown = false;
      ctx.addIssue({ code: 'custom', message: `unknown role "${role}"; ${known}`, path: [...path, index] });
    });
    return allKnown;
  };
  const peopleIn = (roles: readonly string[]) => countDistinctPeople(roles.flatMap((role) => policy.roles[role]?.members ?? []));

  for (const action of ['contain', 'narrow', 'revoke', 'packet', 'subscribe'] as const) {
    // A subscribe left out is the contain list itself: its roles are checked (and reported) once, there.
    if (action === 'subscribe' && policy.permissions.subscribe === policy.permissions.contain) continue;
    checkRoles(policy.permissions[action], ['permissions', action]);
  }
  checkRoles(policy.permissions.breakGlass.roles, ['permissions', 'breakGlass', 'roles']);
  checkRoles(policy.permissions.bulk.roles, ['permissions', 'bulk', 'roles']);
  const restore = policy.permissions.restore;
  const restorePath: Path = restoreWrittenAsList.has(restore) ? ['permissions', 'restore'] : ['permissions', 'restore', 'roles'];
  if (checkRoles(restore.roles, restorePath) && restore.secondPerson && peopleIn(restore.roles) < 2) {
    ctx.addIssue({
      code: 'custom',
      message: `secondPerson needs at least 2 distinct people in ${restore.roles.length > 0 ? rolesText(restore.roles) : 'the restore roles'}, found ${peopleIn(restore.roles)}`,
      path: ['permissions', 'restore', 'secondPerson'],
    });
  }

  const channelNames = Object.keys(policy.channels);
  const seenIds = new Map<string, string>();
  const checkId = (id: string, path: Path) => {
    const where = `${path[0]}[${path[1]}]`;
    const first = seenIds.get(id);
    if (first) ctx.addIssue({ code: 'custom', message: `duplicate id "${id}" (also used by ${first})`, path: [...path, 'id'] });
    else seenIds.set(id, where);
  };

  policy.routing.forEach((rule, index) => {
    const path: Path = ['routing', index];
    checkId(rule.id, path);
    const approversKnown = checkRoles(rule.approvers, [...path, 'approvers']);
    const addedKnown = checkRoles(rule.addApprovers, [...path, 'addApprovers']);
    checkRoles(rule.escalateTo, [...path, 'escalateTo']);
    // The quorum counts people from `approvers`; a rule that only adds approvers counts from those.
    const counted = rule.approvers.length > 0 ? rule.approvers : rule.addApprovers;
    const countedKnown = rule.approvers.length > 0 ? approversKnown : addedKnown;
    if (countedKnown) {
      const people = peopleIn(counted);
      if (rule.quorum > people) {
        ctx.addIssue({
          code: 'custom',
          message: `quorum ${rule.quorum} is more than the ${people} distinct ${people === 1 ? 'person' : 'people'} in ${rolesText(counted)}`,
          path: [...path, 'quorum'],
        });
      }
    }
    if (rule.channel !== undefined && !Object.hasOwn(policy.channels, rule.channel)) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown channel "${rule.channel}"; ${channelNames.length > 0 ? `known channels: ${channelNames.join(', ')}` : 'no channels are defined'}`,
        path: [...path, 'channel'],
      });
    }
  });
  seenIds.clear();
  policy.consequences.forEach((consequence, index) => checkId(consequence.id, ['consequences', index]));
}, whenValid);

/** A validated, normalized policy (defaults filled in, restore in object form, durations parsed). */
export type Policy = z.output<typeof policySchema>;
/** What a policy file may contain, before defaults and normalization. */
export type PolicyInput = z.input<typeof policySchema>;
export type RoutingRule = Policy['routing'][number];
export type ConsequenceRule = Policy['consequences'][number];
export type PolicyMember = Policy['roles'][string]['members'][number];
export type TrustTier = (typeof TRUST_TIERS)[number];
export type ViolationSeverity = (typeof VIOLATION_SEVERITIES)[number];

/**
 * The published JSON Schema of the policy file (what an editor validates while typing). Generated from
 * {@link policySchema} as input, so it cannot disagree with the loader on shape; the cross-field checks
 * (unknown roles, quorum vs members, …) exist only in the loader and `npm run policy:check`.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const { $schema, ...generated } = z.toJSONSchema(policySchema, { io: 'input' });
  return {
    $schema,
    $id: POLICY_SCHEMA_ID,
    title: 'Armalo chat-ops policy',
    description:
      'Policy as code for Armalo chat-ops: roles and members, who may contain/narrow/revoke/restore, approval routing, automatic consequences and channels. Check a file with `npm run policy:check -- FILE`.',
    ...generated,
  };
}
