import { UnrecoverableError, type JobsOptions, type Queue } from 'bullmq';
import { z } from 'zod';
import { EVENT_TYPES, type EventType } from '../domain/events.js';
import { TRUST_TIERS } from '../domain/trust-score.js';
import { VIOLATION_SEVERITIES } from '../policy/policy.schema.js';

/**
 * Every job the system runs, in one map: its queue and the schema of its payload. The outbox writer
 * (`addOutboxJob`) is typed from it, so a producer cannot write a payload its worker would refuse,
 * and every worker parses with it (`parseJob`), so a malformed payload fails once, for good, naming
 * its job. A new job is one entry here.
 */

/** Queue names. The relay moves each outbox row to the queue it names. */
export const QUEUES = {
  /** Outbound webhooks: domain events and approval callbacks. */
  events: 'events',
  /** Timed and background work inside the system. */
  timers: 'timers',
  /** Chat notices: posting and updating messages on the chat platforms. */
  notify: 'notify',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

const uuid = z.uuid();
const agentId = z.string().min(1);
const tier = z.enum(TRUST_TIERS);
const severity = z.enum(VIOLATION_SEVERITIES);
/** Jobs a scheduler starts (BullMQ gives them `{}`): nothing to carry. */
const nothing = z.object({});

/** A domain event as the outbound webhook carries it (`emitEvent` writes it, `deliverEvent` sends it). */
export const eventEnvelopeSchema = z.object({
  id: uuid,
  type: z.enum(EVENT_TYPES),
  createdAt: z.iso.datetime({ offset: true }),
  data: z.looseObject({ agentId: z.string() }),
});

/** What makes the consequence rules run: a pact violation, a score move, evidence gone stale. */
export const trustTriggerSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('violation'), eventId: z.string(), pactId: z.string(), severity }),
  z.object({ kind: z.literal('score'), eventId: z.string(), score: z.number(), tier, previousScore: z.number().nullable(), previousTier: tier.nullable() }),
  z.object({ kind: z.literal('evidence'), eventId: z.string(), ageMs: z.number() }),
]);

/** A score move, a pact violation or stale evidence to tell subscribed channels about. */
export const trustNoticeSchema = z.discriminatedUnion('kind', [
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('score'), score: z.number(), tier, previousScore: z.number().nullable(), previousTier: tier.nullable() }),
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('violation'), pactId: z.string(), severity, description: z.string().nullable(), evidenceUrl: z.string().nullable() }),
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('stale'), newestEvidence: z.string(), ageDays: z.number() }),
]);

export const incidentUpdateSchema = z.object({
  incidentId: uuid,
  /** The action (or expiry) this update reports; its own line in the incident's thread. */
  actionId: uuid,
  /** `expired`: the action's ttl ran out; otherwise the action itself. */
  event: z.enum(['action', 'expired']),
});

/** A fleet incident's notice: its root posted or updated, and the line of what just happened in its thread. */
export const fleetUpdateSchema = z.object({
  fleetIncidentId: uuid,
  /** `opened`: the root; `restore`: a restore by the selector (with `run`); `confirmation`: a second-person request asked or decided; `refresh`: the root only (a ttl ran out). */
  event: z.enum(['opened', 'restore', 'confirmation', 'refresh']),
  run: z
    .object({ id: uuid, actor: z.string(), restored: z.number().int().min(0), held: z.array(z.string()).max(20), heldCount: z.number().int().min(0), at: z.string() })
    .optional(),
  confirmationId: uuid.optional(),
});

export const breakGlassNoticeSchema = z.object({
  agentId,
  actionId: uuid,
  /** Who restored: `slack:U…` or `teams:…`. */
  actor: z.string(),
  reason: z.string(),
  incidentId: uuid.nullable(),
  at: z.string(),
});

export const decommissionNoticeSchema = z.object({ agentId, actor: z.string(), reason: z.string(), /** ISO time of the decommissioning. */ at: z.string() });

export const policyInvalidNoticeSchema = z.object({
  /** sha256 of the rejected file content: the notice's key, so retries and other replicas post once. */
  contentHash: z.string().regex(/^[0-9a-f]{64}$/),
  file: z.string(),
  problems: z.array(z.string()),
  /** The hash of the policy that keeps running. */
  runningHash: z.string(),
  at: z.string(),
});

export const APPROVAL_TIMER_KINDS = ['remind', 'escalate', 'expire'] as const;

interface JobContract {
  queue: QueueName;
  payload: z.ZodType;
}

/** Every domain event type is a job on `events`, carrying its envelope. */
const eventJobs = Object.fromEntries(EVENT_TYPES.map((type) => [type, { queue: QUEUES.events, payload: eventEnvelopeSchema }])) as {
  [T in EventType]: { queue: typeof QUEUES.events; payload: typeof eventEnvelopeSchema };
};

export const JOBS = {
  ...eventJobs,
  /** Tells the agent a request's outcome at its callbackUrl. */
  'approval-callback': { queue: QUEUES.events, payload: z.object({ requestId: uuid }) },

  /** Lifts a narrow or contain whose ttl ran out. */
  'lift-action': { queue: QUEUES.timers, payload: z.object({ actionId: uuid, agentId }) },
  /** Reminds, escalates or expires an approval request. */
  'approval-timer': { queue: QUEUES.timers, payload: z.object({ requestId: uuid, kind: z.enum(APPROVAL_TIMER_KINDS) }) },
  /** Removes a finished request's pending reminder/escalation/expiry jobs from the queue. */
  'approval-timers-cancel': { queue: QUEUES.timers, payload: z.object({ requestId: uuid }) },
  /** Writes a fleet containment's per-agent records and releases its hold, if no one did yet (the backstop). */
  'fleet-records': { queue: QUEUES.timers, payload: z.object({ fleetIncidentId: uuid }) },
  /** Runs the policy's consequence rules for one trust trigger. */
  consequences: { queue: QUEUES.timers, payload: z.object({ agentId, trigger: trustTriggerSchema }) },
  /** Builds a requested trust packet. */
  'build-packet': { queue: QUEUES.timers, payload: z.object({ packetId: uuid }) },
  /** The safety net under timed work (a job scheduler). */
  sweep: { queue: QUEUES.timers, payload: nothing },
  /** The daily trust pass: decay, stale evidence (a job scheduler). */
  'trust-daily': { queue: QUEUES.timers, payload: nothing },
  /** The daily full walk of the audit chain, checkpoints or not (a job scheduler). */
  'audit-verify-full': { queue: QUEUES.timers, payload: nothing },

  /** Posts or updates an incident's notice. */
  'incident-update': { queue: QUEUES.notify, payload: incidentUpdateSchema },
  /** Posts or updates a fleet incident's notice (one thread for a containment by selector). */
  'fleet-update': { queue: QUEUES.notify, payload: fleetUpdateSchema },
  /** Posts or updates an approval request's cards (a reminder or escalation says so). */
  'approval-cards': { queue: QUEUES.notify, payload: z.object({ requestId: uuid, remind: z.boolean().optional(), escalated: z.boolean().optional() }) },
  /** Posts a restore's confirmation request in the incident thread. */
  'confirmation-request': { queue: QUEUES.notify, payload: z.object({ confirmationId: uuid }) },
  /** Posts a built packet's summary (and the PDF) where it was asked for. */
  'packet-delivery': { queue: QUEUES.notify, payload: z.object({ packetId: uuid }) },
  /** "The policy file is invalid" in the incidents channel, once per file content. */
  'policy-invalid': { queue: QUEUES.notify, payload: policyInvalidNoticeSchema },
  /** A break-glass restore: the incidents channel and the other restorers. */
  'break-glass': { queue: QUEUES.notify, payload: breakGlassNoticeSchema },
  /** An agent was decommissioned. */
  'agent-decommissioned': { queue: QUEUES.notify, payload: decommissionNoticeSchema },
  /** A score move, violation or stale evidence for subscribed channels. */
  'trust-notice': { queue: QUEUES.notify, payload: trustNoticeSchema },
  /** Publishes one person's Slack App Home. */
  'slack-home': { queue: QUEUES.notify, payload: z.object({ userId: z.string().regex(/^[UW][A-Z0-9]{1,20}$/) }) },
  /** The scheduled full audit verify found the chain broken (src/audit/scheduled-verify.ts). */
  'audit-broken-notice': { queue: QUEUES.notify, payload: z.object({ firstBrokenSeq: z.string().regex(/^\d+$/), problem: z.string(), at: z.iso.datetime({ offset: true }) }) },
  /** Resolves policy emails to Slack users (a job scheduler, and after a policy change). */
  'slack-directory': { queue: QUEUES.notify, payload: nothing },
} as const satisfies Record<string, JobContract>;

export type Jobs = typeof JOBS;
export type JobName = keyof Jobs;
export type JobPayload<N extends JobName> = z.infer<Jobs[N]['payload']>;
export type JobQueue<N extends JobName> = Jobs[N]['queue'];
/** The names of the jobs that run on one queue. */
export type JobsOn<Q extends QueueName> = { [N in JobName]: Jobs[N]['queue'] extends Q ? N : never }[JobName];

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}

/** The queue a job runs on. */
export function queueOf<N extends JobName>(name: N): JobQueue<N> {
  return JOBS[name].queue as JobQueue<N>;
}

/**
 * Adds a job straight to its contract's queue, typed like `addOutboxJob`: for work that belongs to
 * no transaction (a Slack App Home publish, a directory refresh).
 */
export async function addJob<N extends JobName>(queues: Record<QueueName, Pick<Queue, 'add'>>, name: N, payload: JobPayload<N>, opts?: JobsOptions): Promise<void> {
  await queues[queueOf(name)].add(name, payload, opts);
}

/**
 * A job's payload, checked against its contract. A malformed payload (or an unknown job) can never
 * succeed on a retry: it fails for good with an UnrecoverableError naming the job.
 */
export function parseJob<N extends JobName>(name: N, data: unknown): JobPayload<N> {
  if (!isJobName(name)) throw new UnrecoverableError(`unknown job ${String(name)}`);
  const schema: z.ZodType = JOBS[name].payload;
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`malformed ${name} payload: ${describe(parsed.error)}`);
  return parsed.data as JobPayload<N>;
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}
