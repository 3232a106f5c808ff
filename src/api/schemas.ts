import { z } from 'zod';
import { AGENT_STATUSES, RISK_TIERS } from '../domain/agent.js';
import { parseDuration } from '../domain/duration.js';
import { ACTION_PATTERN, SCOPE_PATTERN } from '../domain/scope.js';
import { decodeCursor, type CursorKind } from '../core/cursor.js';

/**
 * Every REST body, parameter and answer, as zod schemas. Handlers validate with them and the
 * OpenAPI document is generated from them, so the two cannot disagree.
 */

/** An absolute http(s) URL (webhook targets, evidence links). */
const httpUrl = z
  .string()
  .max(2000)
  .refine((v) => {
    try {
      return ['http:', 'https:'].includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, 'expected an http(s) URL');

export const agentIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected 1-128 letters, digits, dots, dashes or underscores, starting with a letter or digit')
  .meta({ description: 'Agent id, e.g. `underwriting-bot`', example: 'underwriting-bot' });

export const scopeSchema = z
  .string()
  .max(200)
  .regex(SCOPE_PATTERN, 'expected a scope such as payments:transfer (lowercase segments separated by ":", "*" as a wildcard)')
  .meta({ description: 'Scope such as `payments:transfer`; `*` matches any run of characters (`payments:*`)' });

export const constraintsSchema = z
  .strictObject({
    maxAmount: z.number().nonnegative().max(1e15).optional().meta({ description: 'Largest `context.amount` allowed' }),
    currencies: z
      .array(z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code such as USD'))
      .min(1)
      .max(50)
      .optional()
      .meta({ description: 'Allowed values of `context.currency`' }),
    recipientDomains: z
      .array(z.string().max(253).regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'expected a lowercase domain such as example.com'))
      .min(1)
      .max(200)
      .optional()
      .meta({ description: 'Allowed values of `context.recipientDomain`' }),
    minTier: z.enum(['bronze', 'silver', 'gold', 'platinum']).optional().meta({ description: "The agent's trust tier must be at least this (no score yet counts as below)" }),
  })
  .meta({ description: 'Constraints the decision API enforces. Unknown constraints are refused: we never store one we cannot enforce.' });

const isoDateTime = z.iso.datetime({ offset: true });

export const grantInputSchema = z.strictObject({
  scope: scopeSchema,
  constraints: constraintsSchema.optional(),
  keepInContainment: z.boolean().optional().meta({ description: 'Stays usable while the agent is contained' }),
  expiresAt: isoDateTime.optional().meta({ description: 'The grant stops allowing anything after this time' }),
});

export const agentInputSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    owner: z.string().trim().min(1).max(320).meta({ description: 'Who answers for the agent (email or chat user id)' }),
    riskTier: z.enum(RISK_TIERS),
    grants: z.array(grantInputSchema).max(500),
  })
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    body.grants.forEach((g, i) => {
      if (seen.has(g.scope)) ctx.addIssue({ code: 'custom', path: ['grants', i, 'scope'], message: `scope ${g.scope} is listed twice` });
      seen.add(g.scope);
    });
  });

/** One line of `POST /v1/agents:import` (documentation: the route checks `id` and the PUT body apart). */
export const agentImportLineSchema = z
  .strictObject({ id: agentIdSchema, ...agentInputSchema.shape })
  .meta({ description: 'One agent: the PUT /v1/agents/{agentId} body plus its `id`, as one line of JSON' });

export const agentImportResultSchema = z.object({
  applied: z.number().int().meta({ description: 'Lines applied: agents registered, updated, or already exactly as sent' }),
  created: z.number().int(),
  updated: z.number().int(),
  unchanged: z.number().int().meta({ description: 'Lines that changed nothing (the agent was already so): no version, no audit entry' }),
  refused: z
    .array(z.object({ line: z.number().int().meta({ description: 'Line number, from 1 (blank lines count)' }), error: z.string() }))
    .meta({ description: 'Refused lines in line order, the first 1,000; nothing of a refused line was applied' }),
  refusedCount: z.number().int(),
  lines: z.number().int().meta({ description: 'Lines read' }),
});

const MAX_TTL_MS = 30 * 24 * 3600 * 1000;
export const ttlSchema = z
  .union([
    z.string().max(32),
    z.number().int().positive().max(MAX_TTL_MS / 1000),
  ])
  .transform((v, ctx) => {
    const ms = typeof v === 'number' ? v * 1000 : parseDuration(v);
    if (ms === undefined || ms > MAX_TTL_MS) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30m, 2h or 1d (at most 30d), or whole seconds' });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ description: 'Lift the action automatically after this long: `2h`, `30m`, `1d`, or whole seconds' });

export const ACTIONS = ['narrow', 'contain', 'revoke', 'restore'] as const;

export const actionInputSchema = z
  .strictObject({
    action: z.enum(ACTIONS),
    scopes: z.array(scopeSchema).min(1).max(50).optional().meta({ description: 'Scopes to suspend (narrow only); globs allowed' }),
    reason: z.string().trim().min(1).max(2000),
    ttl: ttlSchema.optional(),
    dryRun: z.boolean().optional().meta({ description: 'Report the blast radius and change nothing' }),
  })
  .superRefine((body, ctx) => {
    if (body.action === 'narrow' && !body.scopes) ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'narrow needs the scopes to suspend' });
    if (body.action !== 'narrow' && body.scopes) ctx.addIssue({ code: 'custom', path: ['scopes'], message: `${body.action} takes no scopes` });
    if (body.ttl !== undefined && (body.action === 'revoke' || body.action === 'restore')) {
      ctx.addIssue({ code: 'custom', path: ['ttl'], message: `ttl applies to narrow and contain only, not ${body.action}` });
    }
  });

// ---- fleet actions ---------------------------------------------------------------------------

export const FLEET_ACTIONS = ['contain', 'narrow', 'restore'] as const;

export const fleetSelectorSchema = z
  .strictObject({
    scope: scopeSchema.optional().meta({ description: 'Agents holding a grant this glob overlaps (`payments:*` selects holders of `payments:transfer`, `payments:*` or `*`)' }),
    owner: z.string().trim().min(1).max(320).optional().meta({ description: "The agent's owner, compared case-insensitively" }),
    riskTier: z.enum(RISK_TIERS).optional(),
  })
  .refine((s) => s.scope !== undefined || s.owner !== undefined || s.riskTier !== undefined, {
    message: 'the selector is empty: give at least one of scope, owner or riskTier (an empty selector would select every agent)',
  })
  .meta({ description: 'Which agents: every key given must match (AND); at least one key. Decommissioned agents never match.' });

export const fleetActionInputSchema = z
  .strictObject({
    selector: fleetSelectorSchema,
    action: z.enum(FLEET_ACTIONS),
    scopes: z.array(scopeSchema).min(1).max(50).optional().meta({ description: 'Scopes to suspend (narrow only); globs allowed' }),
    reason: z.string().trim().min(1).max(2000),
    ttl: ttlSchema.optional(),
    dryRun: z.boolean().optional().meta({ description: 'Answer the count and a sample; change nothing' }),
    idempotencyKey: z.string().min(1).max(200).optional().meta({ description: 'A retried request with the same key gets the first answer instead of acting again' }),
  })
  .superRefine((body, ctx) => {
    if (body.action === 'narrow' && !body.scopes) ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'narrow needs the scopes to suspend' });
    if (body.action !== 'narrow' && body.scopes) ctx.addIssue({ code: 'custom', path: ['scopes'], message: `${body.action} takes no scopes` });
    if (body.ttl !== undefined && body.action === 'restore') ctx.addIssue({ code: 'custom', path: ['ttl'], message: 'ttl applies to narrow and contain only, not restore' });
  });

const leftAloneSchema = z.object({ agentId: z.string(), reason: z.string() });

/** `POST /v1/policy/check`: a valid policy file, and what it would change against the running one. */
export const policyCheckResultSchema = z
  .object({
    valid: z.literal(true),
    hash: z.string().meta({ description: 'sha256 of the checked policy (as `/readyz` would report it once applied)' }),
    runningHash: z.string().meta({ description: "This replica's policy in force (`/readyz` `policyHash`)" }),
    changed: z.boolean().meta({ description: 'Whether applying it would change the policy at all' }),
    summary: z
      .object({
        rolesAdded: z.array(z.string()),
        rolesRemoved: z.array(z.string()),
        members: z.record(z.string(), z.object({ added: z.array(z.string()), removed: z.array(z.string()) })).meta({ description: 'Per role kept in both: members added and removed (email, slack:U…, teams:…)' }),
        permissions: z.record(z.string(), z.object({ from: z.unknown(), to: z.unknown() })).meta({ description: 'Permissions whose roles or settings change, old and new value' }),
        routingAdded: z.array(z.string()),
        routingRemoved: z.array(z.string()),
        routingChanged: z.array(z.string()),
        otherChanged: z.array(z.string()).meta({ description: 'Other sections that change (channels, trust, consequences, mcp, version, routing order)' }),
      })
      .meta({ description: 'The change against the running policy, as the `policy.changed` audit entry would record it' }),
  });

export const fleetPreviewSchema = z
  .object({
    dryRun: z.literal(true),
    action: z.enum(FLEET_ACTIONS),
    selector: fleetSelectorSchema,
    count: z.number().int().meta({ description: 'Agents the action would change' }),
    sample: z.array(z.string()).meta({ description: 'The first of them, in id order (at most 10)' }),
    matched: z.number().int().meta({ description: 'Agents the selector matches' }),
    unchanged: z.array(leftAloneSchema).meta({ description: 'Matching agents left alone (already contained, revoked, nothing to narrow), first 100' }),
    unchangedCount: z.number().int(),
    incidentId: z.string().nullable().optional().meta({ description: 'Restore: the fleet incident it would lift' }),
    stillHeld: z.array(leftAloneSchema).optional().meta({ description: "Restore: agents the policy's freshEvaluation keeps held, first 100" }),
    stillHeldCount: z.number().int().optional(),
  })
  .meta({ description: 'A dry run: what a real run would act on now; nothing changed' });

export const fleetResultSchema = z
  .object({
    dryRun: z.literal(false),
    action: z.enum(FLEET_ACTIONS),
    selector: fleetSelectorSchema,
    count: z.number().int().meta({ description: 'Agents acted on' }),
    incidentId: z.string().nullable().meta({ description: 'The fleet incident (opened by contain/narrow, lifted by restore); null when nothing changed' }),
    agents: z.array(z.string()).meta({ description: 'The first 100 agents acted on, in id order' }),
    matched: z.number().int(),
    unchanged: z.array(leftAloneSchema),
    unchangedCount: z.number().int(),
    stillHeld: z.array(leftAloneSchema).optional().meta({ description: "Restore: agents the policy's freshEvaluation keeps held (they stay contained), first 100" }),
    stillHeldCount: z.number().int().optional(),
    version: z.string().optional().meta({ description: 'The permission version this committed (decimal string): for a containment, its hold, from which every replica that holds it denies the whole set; otherwise the highest of its agents\'. `atLeastVersion` on a decision waits for it' }),
    replayed: z.boolean().optional(),
  })
  .meta({ description: 'A fleet action applied: one fleet incident for every agent acted on' });

export const fleetAwaitingSchema = z
  .object({
    status: z.literal('awaiting_confirmation'),
    confirmationId: z.string().meta({ description: 'GET /v1/confirmations/{id} tells how it ended' }),
    expiresAt: z.string(),
    incidentId: z.string().nullable(),
    count: z.number().int(),
    stillHeld: z.array(leftAloneSchema).optional(),
    stillHeldCount: z.number().int().optional(),
    replayed: z.boolean().optional().meta({ description: 'A retry with the same idempotency key: the confirmation asked the first time (nothing was asked again)' }),
  })
  .meta({ description: "A restore by selector under restore.secondPerson: one person's confirmation in the fleet incident's thread covers the whole set" });

export const decisionContextSchema = z
  .record(z.string().max(100), z.unknown())
  .superRefine((ctxValue, ctx) => {
    if ('amount' in ctxValue && (typeof ctxValue.amount !== 'number' || !Number.isFinite(ctxValue.amount) || ctxValue.amount < 0)) {
      ctx.addIssue({ code: 'custom', path: ['amount'], message: 'expected a non-negative number' });
    }
    for (const key of ['currency', 'recipientDomain'] as const) {
      if (key in ctxValue && typeof ctxValue[key] !== 'string') ctx.addIssue({ code: 'custom', path: [key], message: 'expected a string' });
    }
  })
  .meta({ description: 'Facts about the action: `amount` (number), `currency`, `recipientDomain`, anything else for routing' });

/** A permission version on the wire: a decimal string (a bigint in Postgres). */
export const VERSION_PATTERN = /^\d{1,19}$/;

export const decisionInputSchema = z.strictObject({
  // Not held to the id pattern: an unknown or odd id is simply an unknown agent, and is denied.
  agentId: z.string().min(1).max(256),
  action: z
    .string()
    .max(200)
    .regex(ACTION_PATTERN, 'expected a concrete scope such as payments:transfer (no wildcards)'),
  context: decisionContextSchema.optional(),
  atLeastVersion: z
    .string()
    .regex(VERSION_PATTERN, 'expected a version: a decimal string of at most 19 digits, such as the `version` an action answered')
    .optional()
    .meta({ description: 'Answer only from a view at least this new (the `version` an action or agent update answered). A replica that is behind waits up to 250 ms for it, then answers `deny` with reason code `view_behind`' }),
});

export const auditQuerySchema = z.strictObject({
  agentId: agentIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z
    .string()
    .regex(/^[1-9][0-9]{0,17}$/, 'expected an entry sequence number')
    .optional(),
});

// ---- answers -------------------------------------------------------------------------------

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      requestId: z.string(),
    }),
  })
  ;

const touchedGrantSchema = z.object({ grantId: z.string(), scope: z.string() });

export const agentOutputSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    owner: z.string(),
    riskTier: z.enum(RISK_TIERS),
    status: z.enum(AGENT_STATUSES),
    score: z.number().nullable().meta({ description: 'Trust score 0-1000; null until trust data is known' }),
    tier: z.string().nullable(),
    grants: z.array(
      z.object({
        id: z.string(),
        scope: z.string(),
        constraints: constraintsSchema,
        keepInContainment: z.boolean(),
        expiresAt: z.string().nullable(),
        state: z.enum(['active', 'suspended', 'revoked', 'expired']),
        heldBy: z.object({ actionId: z.string(), kind: z.enum(['narrow', 'contain', 'revoke']) }).nullable(),
        grantedBy: z.string(),
        grantedAt: z.string(),
      }),
    ),
    activeActions: z.array(
      z.object({
        id: z.string(),
        kind: z.enum(['narrow', 'contain', 'revoke']),
        scopes: z.array(z.string()),
        reason: z.string(),
        actor: z.string(),
        createdAt: z.string(),
        expiresAt: z.string().nullable(),
        grants: z.array(touchedGrantSchema),
      }),
    ),
    updatedAt: z.string(),
    version: z.string(),
    decommissioned: z
      .object({ at: z.string(), by: z.string(), reason: z.string() })
      .optional()
      .meta({ description: 'Present when the agent was decommissioned (status `decommissioned`): when, by whom, why' }),
  })
  ;

export const actionResultSchema = z
  .object({
    dryRun: z.boolean(),
    action: z.object({
      id: z.string().nullable(),
      kind: z.enum(ACTIONS),
      agentId: z.string(),
      reason: z.string(),
      actor: z.string(),
      createdAt: z.string(),
      expiresAt: z.string().nullable(),
      scopes: z.array(z.string()),
    }),
    statusBefore: z.enum(AGENT_STATUSES),
    statusAfter: z.enum(AGENT_STATUSES),
    grantsSuspended: z.array(touchedGrantSchema),
    grantsRevoked: z.array(touchedGrantSchema),
    grantsRestored: z.array(touchedGrantSchema),
    liftedActions: z.array(z.string()),
    pendingApprovalsCancelled: z.array(z.string()),
    version: z
      .string()
      .optional()
      .meta({ description: 'The permission version this action committed (decimal string; absent on a dry run). Pass it as `atLeastVersion` on POST /v1/decisions to be sure the answer already reflects this action' }),
  })
  ;

export const decisionOutputSchema = z
  .object({
    decision: z.enum(['allow', 'deny', 'approval_required']),
    reasons: z.array(z.string()).meta({ description: 'Why, in words; always at least one' }),
    reasonCodes: z.array(z.string()).meta({ description: 'The same reasons as stable codes, in the same order' }),
    approvalRequestId: z.string().optional(),
    agentStatus: z.enum(AGENT_STATUSES).nullable(),
    grantId: z.string().optional(),
    viewVersion: z.string().meta({ description: 'Permission-state version this answer was computed from' }),
  })
  ;

export const auditEntrySchema = z.object({
  seq: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  payload: z.unknown(),
  prevHash: z.string(),
  hash: z.string(),
});

export const auditListSchema = z
  .object({ entries: z.array(auditEntrySchema), nextBefore: z.string().nullable() })
  ;

export const auditVerifySchema = z
  .object({
    ok: z.boolean(),
    entries: z.number(),
    head: z.object({ seq: z.string(), hash: z.string() }),
    firstBroken: z.object({ seq: z.string(), problem: z.string() }).optional(),
    full: z.boolean().describe('true when the whole chain was walked (`?full=true`); false when the walk started at the last checkpoint'),
    from: z.object({ seq: z.string(), checkpoint: z.string().nullable() }).describe('the walk started after entry `seq` (0: the first entry), which checkpoint `checkpoint` vouches for'),
    checked: z.number().describe('entries whose hashes this verify recomputed'),
    checkpointed: z.object({ id: z.string(), seq: z.string() }).optional().describe('the checkpoint this verify recorded'),
  })
  ;

export const auditVerifyQuerySchema = z.strictObject({
  full: z.enum(['true', 'false']).optional().describe('true: walk the whole chain instead of starting at the last checkpoint'),
});

// ---- approvals -----------------------------------------------------------------------------

export const approvalRequestInputSchema = z.strictObject({
  agentId: agentIdSchema,
  action: z.string().max(200).regex(ACTION_PATTERN, 'expected a concrete scope such as payments:transfer (no wildcards)'),
  context: decisionContextSchema.optional(),
  justification: z.string().trim().min(1).max(4000).meta({ description: 'Why the agent wants to do this; shown to approvers' }),
  idempotencyKey: z.string().min(1).max(200).optional().meta({ description: 'Same key (per API token) → the same request' }),
  callbackUrl: httpUrl
    .optional()
    .meta({
      description:
        'Receives the outcome as a signed webhook (X-Armalo-Signature, signed with ARMALO_EVENTS_WEBHOOK_SECRET); refused (400) unless the ' +
        'server signs callbacks (ARMALO_EVENTS_WEBHOOK_URL and ARMALO_EVENTS_WEBHOOK_SECRET set). http or https only. By default only public ' +
        'addresses may be called: a host that resolves to a loopback, private, link-local or metadata address is refused. When ' +
        'ARMALO_CALLBACK_HOSTS is set, only hosts on that allow-list may be called (and they may resolve to private addresses). The host is ' +
        'checked after DNS resolution when the request is created (a refused URL is a 400 naming the callback) and again at every ' +
        'delivery; redirects are not followed.',
    }),
});

export const approvalIdSchema = z.uuid({ error: 'expected an approval request id (a UUID)' });

export const approvalWaitQuerySchema = z.strictObject({
  wait: z.coerce.number().int().min(0).max(60).optional().meta({ description: 'Long-poll: answer as soon as the request ends, or after this many seconds' }),
});

export const approvalOutputSchema = z.object({
  id: z.string(),
  agentId: z.string(),
  action: z.string(),
  context: z.record(z.string(), z.unknown()),
  justification: z.string(),
  requestedBy: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']),
  route: z.object({
    ruleId: z.string(),
    matched: z.array(z.string()),
    quorum: z.number(),
    requirements: z.array(z.object({ ruleId: z.string(), roles: z.array(z.string()), count: z.number(), approvers: z.array(z.string()) })),
    escalated: z.boolean(),
    channel: z.string().nullable(),
    why: z.record(z.string(), z.array(z.string())),
    trust: z.object({ score: z.number().nullable(), tier: z.string().nullable(), evidenceAgeDays: z.number().nullable() }),
  }),
  decisions: z.array(z.object({ by: z.string(), decision: z.enum(['approve', 'deny']), reason: z.string().nullable(), at: z.string(), via: z.string() })),
  createdAt: z.string(),
  expiresAt: z.string(),
  decidedAt: z.string().nullable(),
  finalReason: z.string().nullable(),
  grantUntil: z.string().nullable(),
});

// ---- confirmations -------------------------------------------------------------------------

export const confirmationIdSchema = z.uuid({ error: 'expected a confirmation id (a UUID)' });

export const actionAwaitingConfirmationSchema = z
  .object({
    status: z.literal('awaiting_confirmation'),
    confirmationId: z.string().meta({ description: 'GET /v1/confirmations/{id} tells how it ended' }),
    expiresAt: z.string(),
    incidentId: z.string().nullable(),
    replayed: z.boolean().optional().meta({ description: 'A retry with the same Idempotency-Key: the confirmation asked the first time (nothing was asked again)' }),
  })
  .meta({ description: 'A restore under the policy\'s restore.secondPerson: a person must confirm it in the incident thread' });

export const confirmationOutputSchema = z.object({
  id: z.string(),
  status: z.enum(['pending', 'confirmed', 'cancelled', 'expired']),
  agentId: z.string().nullable().meta({ description: 'The agent; null for a restore by selector (it covers a set: see `selector` and `count`)' }),
  kind: z.enum(['restore', 'revoke', 'contain', 'narrow']),
  selector: fleetSelectorSchema.optional().meta({ description: 'A fleet action: the selector it was asked with' }),
  count: z.number().int().optional().meta({ description: 'A fleet action: the agents it covers' }),
  result: fleetResultSchema.optional().meta({ description: 'A fleet action, once confirmed: what it did' }),
  requestedBy: z.string(),
  decidedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  reason: z.string().optional().meta({ description: 'Why it was cancelled without a click (e.g. its incident ended)' }),
  expiresAt: z.string(),
  incidentId: z.string().nullable().meta({ description: 'The incident it was asked about; a confirmation ends with it' }),
});

// ---- trust data ----------------------------------------------------------------------------

const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
const refId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, 'expected an id of letters, digits, ".", "_", ":" or "-"');

export const pactInputSchema = z.strictObject({
  id: refId,
  title: z.string().trim().min(1).max(300),
  clauses: z.array(z.string().trim().min(1).max(2000)).min(1).max(100),
  severity: z.enum(SEVERITIES),
  verification: z.string().trim().min(1).max(500).meta({ description: 'How the pact is verified (e.g. "weekly red-team eval")' }),
});

export const evaluationInputSchema = z
  .strictObject({
    id: refId.meta({ description: 'The evaluation id: sending it again changes nothing' }),
    pactId: refId.optional(),
    dimension: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'expected a lowercase dimension name such as safety or accuracy'),
    passed: z.boolean().optional(),
    score: z.number().min(0).max(1).optional().meta({ description: 'Graded result, 0..1 (instead of passed)' }),
    observedAt: z.iso.datetime({ offset: true }),
    source: z.string().trim().min(1).max(200),
    evidenceUrl: httpUrl.optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.passed === undefined) === (e.score === undefined)) ctx.addIssue({ code: 'custom', path: ['passed'], message: 'give exactly one of passed or score' });
  });

/** Inbound Armalo-style events (POST /webhooks/armalo), signed with ARMALO_WEBHOOK_SECRET. */
export const inboundEventSchema = z.discriminatedUnion('type', [
  z.object({
    id: refId,
    type: z.literal('score.changed'),
    createdAt: z.iso.datetime({ offset: true }),
    data: z.object({ agentId: agentIdSchema, score: z.number().int().min(0).max(1000), tier: z.enum(['bronze', 'silver', 'gold', 'platinum']).optional() }),
  }),
  z.object({
    id: refId,
    type: z.literal('score.tier_changed'),
    createdAt: z.iso.datetime({ offset: true }),
    data: z.object({ agentId: agentIdSchema, tier: z.enum(['bronze', 'silver', 'gold', 'platinum']), score: z.number().int().min(0).max(1000) }),
  }),
  z.object({
    id: refId,
    type: z.literal('pact.violated'),
    createdAt: z.iso.datetime({ offset: true }),
    data: z.object({ agentId: agentIdSchema, pactId: refId, severity: z.enum(SEVERITIES), description: z.string().max(2000).optional(), evidenceUrl: httpUrl.optional() }),
  }),
  z.object({
    id: refId,
    type: z.literal('eval.completed'),
    createdAt: z.iso.datetime({ offset: true }),
    data: z.object({
      agentId: agentIdSchema,
      evaluationId: refId,
      pactId: refId.optional(),
      dimension: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/),
      passed: z.boolean().optional(),
      score: z.number().min(0).max(1).optional(),
      observedAt: z.iso.datetime({ offset: true }),
      evidenceUrl: httpUrl.optional(),
    }).superRefine((d, ctx) => {
      // As on POST …/evaluations: a result is either pass/fail or graded, never both or neither.
      if ((d.passed === undefined) === (d.score === undefined)) ctx.addIssue({ code: 'custom', path: ['passed'], message: 'give exactly one of passed or score' });
    }),
  }),
]);

// ---- trust packets -------------------------------------------------------------------------

export const packetInputSchema = z.strictObject({
  agentId: agentIdSchema,
  audience: z.string().trim().min(1).max(200).optional().meta({ description: 'Who the packet is for, e.g. "Fortress Bank"' }),
  workflow: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .optional()
    .meta({ description: "A workflow named in the policy's `workflows`: the packet covers only the grants, routing and consequence rules its actions touch. An unknown workflow is a 400." }),
});

// ---- listings ------------------------------------------------------------------------------

/** Page size of the listing endpoints: 50 unless asked, at most 200. */
export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 200;

const listLimitSchema = z
  .string()
  .regex(/^\d{1,6}$/, `expected a whole number from 1 to ${LIST_LIMIT_MAX}`)
  .transform(Number)
  .pipe(z.number().int().min(1, `limit must be at least 1`).max(LIST_LIMIT_MAX, `limit must be at most ${LIST_LIMIT_MAX}`))
  .optional()
  .transform((v) => v ?? LIST_LIMIT_DEFAULT)
  .meta({ description: `Page size, 1 to ${LIST_LIMIT_MAX} (default ${LIST_LIMIT_DEFAULT})` });

/** A `cursor` query parameter: the `nextCursor` of the previous page, decoded into its position. */
function cursorParam(kind: CursorKind) {
  return z
    .string()
    .transform((value, ctx) => {
      const decoded = decodeCursor(kind, value);
      if (!decoded.ok) {
        ctx.addIssue({ code: 'custom', message: decoded.error });
        return z.NEVER;
      }
      return decoded.position;
    })
    .optional()
    .meta({ description: 'The `nextCursor` of the previous page, unchanged (opaque); leave it out for the first page' });
}

const enumParam = <const T extends readonly [string, ...string[]]>(values: T, what: string) =>
  z.enum(values, { error: `expected one of ${values.join(', ')} (${what})` });

export const agentListQuerySchema = z.strictObject({
  status: enumParam(AGENT_STATUSES, 'agent status').optional(),
  owner: z.string().trim().min(1).max(320).optional().meta({ description: "Agents with this owner (exact, case-insensitive)" }),
  riskTier: enumParam(RISK_TIERS, 'risk tier').optional(),
  scope: scopeSchema
    .optional()
    .meta({ description: 'Agents holding a grant (not removed) whose scope this glob matches: `payments:*` matches `payments:transfer`; without `*` the scope must be equal' }),
  q: z.string().trim().min(1).max(200).optional().meta({ description: "Case-insensitive substring of the agent's id or name" }),
  limit: listLimitSchema,
  cursor: cursorParam('agents'),
});

const INCIDENT_STATUSES = ['open', 'closed'] as const;

export const incidentListQuerySchema = z.strictObject({
  status: enumParam(INCIDENT_STATUSES, 'incident status').optional(),
  agentId: agentIdSchema.optional(),
  limit: listLimitSchema,
  cursor: cursorParam('incidents'),
});

export const incidentIdSchema = z.uuid({ error: 'expected an incident id (a UUID)' });

/** A person as the `approver` filter names them: `slack:<user id>`, `teams:<AAD object id>` or an email. */
export const approverParamSchema = z
  .string()
  .trim()
  .max(320)
  .transform((value, ctx) => {
    const slack = /^slack:([UW][A-Z0-9]{2,40})$/.exec(value);
    if (slack) return { kind: 'slack' as const, id: slack[1]! };
    const teams = /^teams:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/.exec(value);
    if (teams) return { kind: 'teams' as const, id: teams[1]!.toLowerCase() };
    if (/^[^@\s:]+@[^@\s]+\.[^@\s]+$/.test(value)) return { kind: 'email' as const, id: value.toLowerCase() };
    ctx.addIssue({ code: 'custom', message: 'expected slack:<user id> (e.g. slack:U0CISO), teams:<AAD object id> or an email address' });
    return z.NEVER;
  });

export type ApproverIdentity = z.output<typeof approverParamSchema>;

export const approvalListQuerySchema = z.strictObject({
  status: enumParam(['pending', 'approved', 'denied', 'expired', 'cancelled'], 'approval request status').optional(),
  agentId: agentIdSchema.optional(),
  approver: approverParamSchema
    .optional()
    .meta({
      description:
        'One person: `slack:<Slack user id>`, `teams:<Teams AAD object id>` or an email address (case-insensitive). Matches the requests whose ' +
        'route asks that person to decide (a person in `route.requirements`, as fixed from the policy when the request was made; escalation ' +
        'targets who are in no requirement do not count), and the requests on which that person recorded a decision (by that chat user id, or ' +
        'as a route person with that identity)',
    }),
  limit: listLimitSchema,
  cursor: cursorParam('approvals'),
});

/** A console session's public id (never the cookie, nor its digest). */
export const consoleSessionIdSchema = z.uuid({ error: 'expected a console session id (a UUID, the `id` GET /v1/console/sessions lists)' });

const sessionPersonSchema = z
  .string({ error: 'expected slack:<user id> (e.g. slack:U0CISO), teams:<AAD object id> or an email address' })
  .pipe(approverParamSchema);

export const consoleSessionListQuerySchema = z.strictObject({
  person: sessionPersonSchema
    .optional()
    .meta({ description: 'One person\'s sessions: `slack:<Slack user id>`, `teams:<Teams AAD object id>`, or an email address their chat platform resolved at sign-in (case-insensitive)' }),
  limit: listLimitSchema,
  cursor: cursorParam('sessions'),
});

/** `DELETE /v1/console/sessions/{sessionId}?reason=…`: the reason goes into the audit entry. */
export const consoleSessionDeleteQuerySchema = z.strictObject({
  reason: z.string().trim().min(1).max(500).optional().meta({ description: 'Why the session is ended (audit log). Default: "revoked over the API"' }),
});

export const consoleSessionRevokeInputSchema = z
  .strictObject({
    person: sessionPersonSchema.meta({
      description: 'Whose sessions to end: `slack:<Slack user id>`, `teams:<Teams AAD object id>`, or an email address (every session whose person the chat platform resolved to it)',
      examples: ['slack:U0ONCALL1'],
    }),
    reason: z
      .string({ error: 'expected a reason (text, 1 to 500 characters)' })
      .trim()
      .min(1, 'give a reason (it is recorded in the audit log)')
      .max(500, 'at most 500 characters')
      .meta({ description: 'Why (recorded in the audit log)', examples: ['laptop reported lost'] }),
  })
  .meta({ description: 'End every open console session of one person' });

export const consoleSessionSchema = z
  .object({
    id: z.string().meta({ description: 'The session\'s public id: DELETE /v1/console/sessions/{sessionId} ends it. Unrelated to the cookie' }),
    person: z.string().meta({ description: 'The chat person the session acts as: `slack:<user id>` or `teams:<AAD object id>` (actions are recorded as `console:<person>`)' }),
    platform: z.enum(['slack', 'teams']),
    userId: z.string(),
    emails: z.array(z.string()).meta({ description: 'The emails the chat platform resolved for the person at sign-in' }),
    createdAt: z.string().meta({ description: 'When the person signed in' }),
    expiresAt: z.string().meta({ description: 'When the session ends by itself (8 hours after sign-in)' }),
  })
  .meta({ description: 'An open web console session' });

export const consoleSessionRevocationSchema = z
  .object({
    person: z.string().meta({ description: 'The person whose sessions were ended (as asked for; for one session, its `person`)' }),
    ended: z.number().int().meta({ description: 'How many open sessions this ended (0: none was open; nothing changed and nothing was audited)' }),
    sessionIds: z.array(z.string()).meta({ description: 'The ids of the sessions it ended' }),
  })
  .meta({ description: 'What a revocation ended' });

/** A listing page: the items and the cursor of the next page (null on the last page). */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null when this is the last page' }),
  });

export const agentListItemSchema = agentOutputSchema.meta({ description: 'The same shape as GET /v1/agents/{agentId}' });

const actorField = z.string().meta({ description: 'Who: `slack:<user>`, `teams:<user>`, `api:<token name>`, `console:<person>` or `system:<part>`' });
const viaField = z.string().meta({ description: 'Through which platform: slack, teams, api, console or system' });

export const incidentSummarySchema = z.object({
  id: z.string(),
  kind: z.literal('agent').meta({ description: "`agent`: one agent's incident; `fleet` (in listings): a fleet incident" }),
  agentId: z.string(),
  agentName: z.string(),
  agentStatus: z.enum(AGENT_STATUSES).meta({ description: "The agent's status now" }),
  status: z.enum(INCIDENT_STATUSES),
  openedAt: z.string(),
  openedBy: actorField,
  openedVia: viaField,
  openedWith: z.enum(ACTIONS).meta({ description: 'The action that opened it' }),
  reason: z.string().meta({ description: 'The reason given by the action that opened it' }),
  closedAt: z.string().nullable(),
  closedBy: z.string().nullable(),
  steps: z.number().int().meta({ description: 'How many actions belong to the incident' }),
  fleetIncidentId: z.string().nullable().meta({ description: 'The fleet incident (POST /v1/actions) that opened it, if a fleet action did' }),
});

/** A fleet incident as `GET /v1/incidents` lists it (admin and platform tokens, when no agent is asked for). */
export const fleetIncidentSummarySchema = z.object({
  id: z.string().meta({ description: 'The `incidentId` of POST /v1/actions; GET /v1/incidents/{id} tells it in full' }),
  kind: z.literal('fleet'),
  status: z.enum(INCIDENT_STATUSES).meta({ description: 'Closed once none of its agent actions is in force (restored by the selector, or lifted by its ttl)' }),
  openedAt: z.string(),
  openedBy: actorField,
  openedVia: viaField,
  openedWith: z.enum(['contain', 'narrow']).meta({ description: 'The fleet action that opened it' }),
  reason: z.string(),
  closedAt: z.string().nullable(),
  closedBy: z.string().nullable(),
  selector: fleetSelectorSchema.meta({ description: 'The selector it was asked with' }),
  selectorText: z.string().meta({ description: 'The selector as chat words (`scope:payments:* risk:high`): what a restore by selector names' }),
  count: z.number().int().meta({ description: 'How many agents it acted on' }),
  heldNow: z.number().int().meta({ description: 'How many of them its action still holds' }),
});

/** An item of `GET /v1/incidents`: one agent's incident, or a fleet incident. */
export const incidentListItemSchema = z.discriminatedUnion('kind', [incidentSummarySchema, fleetIncidentSummarySchema]);

export const incidentTimelineEntrySchema = z.object({
  at: z.string(),
  actor: actorField,
  via: viaField,
  event: z
    .enum(['narrow', 'contain', 'revoke', 'restore', 'expired', 'restore_requested', 'revoke_requested', 'closed'])
    .meta({ description: 'An action (narrow, contain, revoke, restore); `expired`: an action lifted by its ttl; `…_requested`: a two-step revoke or restore asked for (with its outcome); `closed`: the incident ended' }),
  actionId: z.string().optional(),
  reason: z.string().optional(),
  scopes: z.array(z.string()).optional(),
  grants: z.array(z.string()).optional().meta({ description: 'Scopes of the grants the action took away or gave back' }),
  expiresAt: z.string().nullable().optional(),
  liftedAt: z.string().nullable().optional(),
  liftedBy: z.string().nullable().optional(),
  approvalsCancelled: z.array(z.string()).optional(),
  confirmationId: z.string().optional(),
  outcome: z.string().nullable().optional().meta({ description: 'A request: confirmed, cancelled, expired, or null while pending' }),
  decidedBy: z.string().nullable().optional(),
  decidedAt: z.string().nullable().optional(),
  auditSeq: z.string().nullable().optional().meta({ description: 'The audit log entry recording it (GET /v1/audit), when there is one' }),
});

export const incidentDetailSchema = incidentSummarySchema.extend({
  agent: z.object({ id: z.string(), name: z.string(), owner: z.string(), riskTier: z.enum(RISK_TIERS), status: z.enum(AGENT_STATUSES) }),
  heldGrants: z.array(z.object({ scope: z.string(), state: z.string() })).meta({ description: 'Grants not usable now, with why' }),
  timeline: z.array(incidentTimelineEntrySchema).meta({ description: 'Who did what, when, via which platform; oldest first' }),
});
/** `DELETE /v1/agents/{agentId}?reason=…`: the reason is recorded in the audit log and the notice. */
export const decommissionQuerySchema = z.strictObject({
  reason: z.string().trim().min(1).max(500).optional().meta({ description: 'Why the agent is retired (audit log, notice). Default: "decommissioned over the API"' }),
});

export const decommissionResultSchema = z
  .object({
    agentId: z.string(),
    status: z.literal('decommissioned'),
    statusBefore: z.enum(AGENT_STATUSES),
    decommissionedAt: z.string(),
    decommissionedBy: z.string(),
    reason: z.string(),
    grantsRemoved: z.array(touchedGrantSchema),
    approvalRequestsCancelled: z.array(z.string()),
    incidentClosed: z.string().nullable(),
    version: z.string().optional().meta({ description: 'The permission version this committed (absent on a replay)' }),
    replayed: z.boolean().meta({ description: 'True when the agent was already decommissioned: the earlier result, nothing changed' }),
  });
