import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { RouteSnapshot } from '../domain/approval-route.js';

/** Row types for every table. Timestamps come back as Date; bigint columns as string (pg default). */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type BigIntColumn = ColumnType<string, string | number | bigint, string | number | bigint>;
type Json<T> = ColumnType<T, string, string>;

export interface AgentsTable {
  id: string;
  name: string;
  owner: string;
  risk_tier: 'low' | 'medium' | 'high' | 'critical';
  status: 'active' | 'narrowed' | 'contained' | 'revoked' | 'decommissioned';
  version: BigIntColumn;
  created_by: string;
  created_at: Timestamp;
  updated_by: string;
  updated_at: Timestamp;
  decommissioned_at: Timestamp | null;
  decommissioned_by: string | null;
  decommission_reason: string | null;
}

export type GrantConstraints = Record<string, unknown>;

export interface GrantsTable {
  id: Generated<string>;
  agent_id: string;
  scope: string;
  constraints: Json<GrantConstraints>;
  keep_in_containment: boolean;
  expires_at: Timestamp | null;
  granted_by: string;
  granted_at: Timestamp;
  removed_by: string | null;
  removed_at: Timestamp | null;
}

export interface TouchedGrant {
  grantId: string;
  scope: string;
}

export interface AgentActionsTable {
  id: string;
  agent_id: string;
  kind: 'narrow' | 'contain' | 'revoke' | 'restore';
  scopes: Json<string[]>;
  reason: string;
  actor: string;
  ttl_ms: BigIntColumn | null;
  expires_at: Timestamp | null;
  touched_grants: Json<TouchedGrant[]>;
  created_at: Timestamp;
  lifted_at: Timestamp | null;
  lifted_by: string | null;
  lifted_by_action_id: string | null;
  lift_reason: string | null;
  incident_id: string | null;
  idempotency_key: string | null;
  result: Json<unknown> | null;
  /** The fleet incident this action is part of (migration 0016). */
  fleet_incident_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface IncidentsTable {
  id: string;
  agent_id: string;
  status: 'open' | 'closed';
  opened_by_action_id: string;
  opened_at: Timestamp;
  closed_at: Timestamp | null;
  closed_by: string | null;
  /** The fleet incident whose action opened it (migration 0016). */
  fleet_incident_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A contain or narrow by selector: one incident for the whole set (migration 0016). */
export interface FleetIncidentsTable {
  id: string;
  action: 'contain' | 'narrow';
  selector: Json<Record<string, string>>;
  selector_key: string;
  scopes: Json<string[]>;
  reason: string;
  actor: string;
  ttl_ms: BigIntColumn | null;
  agent_count: number;
  agent_ids: Json<string[]>;
  status: 'open' | 'closed';
  opened_at: Timestamp;
  closed_at: Timestamp | null;
  closed_by: string | null;
  idempotency_key: string | null;
  result: Json<unknown> | null;
  /** The version of the commit that put `agent_ids` on hold (a containment in two commits, migration 0021). */
  hold_version: BigIntColumn | null;
  /** The version of the commit that wrote the agents' own records and released the hold. */
  hold_released_version: BigIntColumn | null;
}

/** A fleet action waiting for a click (migration 0016). */
export interface FleetConfirmationsTable {
  id: string;
  kind: 'apply' | 'second_person';
  action: 'contain' | 'narrow' | 'restore';
  selector: Json<Record<string, string>>;
  scopes: Json<string[]>;
  reason: string;
  ttl_ms: BigIntColumn | null;
  fleet_incident_id: string | null;
  agent_ids: Json<string[]>;
  requested_by: string;
  requested_platform: 'slack' | 'teams' | 'api';
  requested_user_id: string;
  requested_emails: Json<string[]>;
  requested_person: string | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  decided_at: Timestamp | null;
  decided_by: string | null;
  outcome: string | null;
  decided_reason: string | null;
  result: Json<unknown> | null;
}

/** The answer given to a request with an `Idempotency-Key`, committed with its effect (migration 0020). */
export interface IdempotentAnswersTable {
  key: string;
  status: number;
  body: Json<unknown>;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface ChatMessagesTable {
  key: string;
  platform: string;
  channel: string;
  ts: string;
  created_at: Timestamp;
}

/** Who holds the delivery of one key (an incident, an approval request) right now (migration 0014). */
export interface ChatLeasesTable {
  key: string;
  holder: string;
  expires_at: Timestamp;
}

export interface ConfirmationsTable {
  id: string;
  kind: 'revoke' | 'restore';
  agent_id: string;
  requested_by: string;
  payload: Json<Record<string, unknown>>;
  created_at: Timestamp;
  expires_at: Timestamp;
  decided_at: Timestamp | null;
  decided_by: string | null;
  outcome: string | null;
  /** Who asked, as a person (0008): `slack`, `teams` or `api`; null on older rows. */
  requested_platform: 'slack' | 'teams' | 'api' | null;
  requested_user_id: string | null;
  requested_emails: ColumnType<string[], string | undefined, string>;
  /** The policy member key of the requester when they are in the policy. */
  requested_person: string | null;
  /** The incident open when it was asked; a click after that incident ended is refused. */
  incident_id: string | null;
  /** Restricting actions in force when it was asked; a newer one makes the click refused. */
  action_ids: ColumnType<string[], string | undefined, string>;
  agent_version: BigIntColumn | null;
  /** Why it ended when nobody clicked (e.g. the incident ended). */
  decided_reason: string | null;
}

export interface ChatIdentitiesTable {
  platform: string;
  email: string;
  user_id: string | null;
  resolved_at: Timestamp;
}

export interface AuditLogTable {
  seq: BigIntColumn;
  at: Timestamp;
  actor: string;
  action: string;
  subject: string;
  payload: Json<unknown>;
  prev_hash: string;
  hash: string;
}

/** A verified point of the audit chain; the checkpoints form a hash chain of their own. */
export interface AuditCheckpointsTable {
  id: BigIntColumn;
  at: Timestamp;
  audit_seq: BigIntColumn;
  audit_hash: string;
  verified: 'full' | 'incremental';
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: BigIntColumn;
  hash: string;
}

export interface OutboxTable {
  id: string;
  queue: string;
  job_name: string;
  payload: Json<unknown>;
  run_at: Timestamp;
  created_at: Timestamp;
  published_at: Timestamp | null;
  attempts: Generated<number>;
  last_error: string | null;
  /** Set when the row failed too often: kept for inspection, no longer retried. */
  parked_at: Timestamp | null;
  /** W3C trace context of the writer (`{traceparent, tracestate?}`) when tracing is on; the relay continues it. */
  trace_context: Json<Record<string, string>> | null;
}

export interface EventDeliveriesTable {
  event_id: string;
  target: string;
  status_code: number;
  attempts: number;
  delivered_at: Timestamp;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface ApprovalRequestsTable {
  id: string;
  agent_id: string;
  action: string;
  context: Json<Record<string, unknown>>;
  justification: string;
  requested_by: string;
  idempotency_key: string | null;
  callback_url: string | null;
  status: ApprovalStatus;
  route: Json<RouteSnapshot>;
  created_at: Timestamp;
  expires_at: Timestamp;
  escalated_at: Timestamp | null;
  /** When the reminder went out (migration 0009): the timer rebuild never reminds twice. */
  reminded_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  decided_at: Timestamp | null;
  final_reason: string | null;
  grant_until: Timestamp | null;
  consumed_at: Timestamp | null;
  /** The transaction that last wrote the row (an xid8, as text), set by a trigger only (migration 0022). */
  written_xid: ColumnType<string | null, never, never>;
}

export interface ApprovalDecisionsTable {
  request_id: string;
  person_key: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  actor: string;
  via: string;
  at: Timestamp;
}

export interface PactsTable {
  agent_id: string;
  id: string;
  title: string;
  clauses: Json<string[]>;
  severity: 'low' | 'medium' | 'high' | 'critical';
  verification: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface EvaluationsTable {
  id: string;
  agent_id: string;
  pact_id: string | null;
  dimension: string;
  passed: boolean | null;
  score: number | null;
  observed_at: Timestamp;
  source: string;
  evidence_url: string | null;
  received_at: Timestamp;
}

export interface TrustScoresTable {
  id: Generated<string>;
  agent_id: string;
  score: number;
  tier: string;
  source: 'computed' | 'external';
  inputs: Json<unknown>;
  computed_at: Timestamp;
}

/** An inbound webhook event for an agent not registered yet, applied when it is. */
export interface HeldEventsTable {
  id: string;
  type: string;
  agent_id: string;
  event: Json<unknown>;
  received_at: Timestamp;
  applied_at: Timestamp | null;
}

/** Slack requests already acted on: a replay is acknowledged and changes nothing. */
export interface SlackRequestsTable {
  key: string;
  received_at: Timestamp;
}

export interface InboundEventsTable {
  id: string;
  type: string;
  agent_id: string | null;
  received_at: Timestamp;
}

export type SubscriptionKind = 'scores' | 'incidents' | 'approvals';

export interface SubscriptionsTable {
  platform: string;
  channel: string;
  agent_pattern: string;
  kinds: Json<SubscriptionKind[]>;
  created_by: string;
  created_at: Timestamp;
}

export interface TeamsConversationsTable {
  conversation_id: string;
  kind: string;
  reference: Json<Record<string, unknown>>;
  aad_object_id: string | null;
  updated_at: Timestamp;
}

export interface TrustPacketsTable {
  id: string;
  agent_id: string;
  status: 'building' | 'ready' | 'failed';
  requested_by: string;
  audience: string | null;
  workflow: string | null;
  deliver_to: Json<Record<string, unknown>> | null;
  content: Json<unknown> | null;
  content_hash: string | null;
  audit_head_seq: BigIntColumn | null;
  audit_head_hash: string | null;
  error: string | null;
  created_at: Timestamp;
  ready_at: Timestamp | null;
}

/** A policy version a replica ran (migration 0012): inserted only when it differs from the latest. */
export interface PolicyVersionsTable {
  id: Generated<string>;
  hash: string;
  applied_at: Timestamp;
  /** What changed from the previous version (null for the first one recorded). */
  summary: Json<unknown> | null;
  /** The validated policy itself, so the next change can be summarised against it. */
  policy: Json<unknown>;
}

/** An invalid policy file content (by sha256), recorded once so its notice is posted once. */
export interface PolicyRejectionsTable {
  content_hash: string;
  seen_at: Generated<Date>;
  problems: Json<string[]>;
}

export interface Database {
  agents: AgentsTable;
  grants: GrantsTable;
  agent_actions: AgentActionsTable;
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  outbox: OutboxTable;
  event_deliveries: EventDeliveriesTable;
  incidents: IncidentsTable;
  fleet_incidents: FleetIncidentsTable;
  fleet_confirmations: FleetConfirmationsTable;
  idempotent_answers: IdempotentAnswersTable;
  chat_messages: ChatMessagesTable;
  chat_leases: ChatLeasesTable;
  confirmations: ConfirmationsTable;
  chat_identities: ChatIdentitiesTable;
  approval_requests: ApprovalRequestsTable;
  approval_decisions: ApprovalDecisionsTable;
  pacts: PactsTable;
  evaluations: EvaluationsTable;
  trust_scores: TrustScoresTable;
  inbound_events: InboundEventsTable;
  held_events: HeldEventsTable;
  slack_requests: SlackRequestsTable;
  subscriptions: SubscriptionsTable;
  teams_conversations: TeamsConversationsTable;
  trust_packets: TrustPacketsTable;
  policy_versions: PolicyVersionsTable;
  policy_rejections: PolicyRejectionsTable;
}

export type AgentRow = Selectable<AgentsTable>;
export type GrantRow = Selectable<GrantsTable>;
export type AgentActionRow = Selectable<AgentActionsTable>;
export type AuditRow = Selectable<AuditLogTable>;
export type NewOutboxRow = Insertable<OutboxTable>;
