/**
 * The SDK's public types. Self-contained on purpose: the published `index.d.ts` must not point into
 * the service's source tree, so these mirror the REST answers (README "API"), and the client checks
 * at compile time that the shared domain's values fit them.
 */

export type DecisionOutcome = 'allow' | 'deny' | 'approval_required';

/** `decommissioned`: retired for good (every check denies with `agent_decommissioned`). */
export type AgentStatus = 'active' | 'narrowed' | 'contained' | 'revoked' | 'decommissioned';

/** Why a decision came out as it did. New codes may appear; treat unknown ones like any deny reason. */
export type ReasonCode =
  | 'view_stale'
  | 'view_behind'
  | 'unknown_agent'
  | 'agent_decommissioned'
  | 'agent_revoked'
  | 'agent_contained'
  | 'scope_narrowed'
  | 'no_grant'
  | 'grant_suspended'
  | 'grant_revoked'
  | 'grant_expired'
  | 'constraint_violated'
  | 'tier_below_minimum'
  | 'granted'
  | 'approved'
  | 'approval_required'
  | 'decision_error'
  // Any other string: forward compatible with codes a newer server adds.
  | (string & {});

/** The answer of `check()` and `decide()`: the shape of `POST /v1/decisions`. */
export interface DecisionAnswer {
  decision: DecisionOutcome;
  /** Human-readable reasons, one per entry of `reasonCodes`. */
  reasons: string[];
  reasonCodes: ReasonCode[];
  /** The agent's status in the view that answered; null for an unknown agent (or no view yet). */
  agentStatus: AgentStatus | null;
  /** The grant that allowed the action. */
  grantId?: string;
  /** The approval request this answer is about (pending, approved and usable, or the one `decide()` used). */
  approvalRequestId?: string;
  /** The permission-state version the answer was made from (a decimal string). */
  viewVersion: string;
}

/** The `context` of an action: `amount`, `currency`, `recipientDomain` are what grants and rules read. */
export type ActionContext = Record<string, unknown>;

export interface ArmaloClientOptions {
  /** Base URL of the Armalo service, e.g. `https://armalo.example.com` (a path prefix is kept). */
  url: string;
  /** Bearer token: an `agent=<agentId>` token for this agent, or a `platform` token. */
  token: string;
  /** The agent this client acts for. */
  agentId: string;
  /** `check()` fails closed (`view_stale`) when the stream has been silent this long. Default 3000. */
  staleAfterMs?: number;
  /** A `fetch` to use instead of the global one (proxies, tests). */
  fetch?: typeof globalThis.fetch;
  /** Reconnect backoff: full jitter between half and all of `initialDelayMs * 2^attempt`, capped. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Drop a connection that sent nothing (not even a heartbeat) for this long, and reconnect. Default 20000. */
  idleReconnectMs?: number;
  /** Timeout of one REST call (`decide()`, creating an approval request). Default 10000. */
  requestTimeoutMs?: number;
}

export interface DecideOptions {
  /** Ask the server to answer only from a view at least this fresh (`view_behind` otherwise). */
  atLeastVersion?: string;
  signal?: AbortSignal;
}

export interface RequireApprovalOptions {
  /** Why the agent wants to do this; shown to the approvers. */
  justification: string;
  /** Stop waiting after this long and resolve `timeout` (the request stays open). Default 600000 (10 min). */
  timeoutMs?: number;
  /** The same key (per token) gives back the same request: retry safely after a crash. Generated when left out. */
  idempotencyKey?: string;
  /** Stop waiting early (rejects with an `ArmaloError` coded `aborted`). */
  signal?: AbortSignal;
}

/** One person's decision on an approval request. */
export interface ApprovalDecisionRecord {
  by: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  /** ISO-8601 time. */
  at: string;
  /** The platform it came through: `slack`, `teams`, `console`, `api`. */
  via: string;
}

export type ApprovalOutcomeStatus = 'approved' | 'denied' | 'expired' | 'cancelled' | 'timeout';

export interface ApprovalOutcome {
  status: ApprovalOutcomeStatus;
  requestId: string;
  decisions: ApprovalDecisionRecord[];
}

/** What `on('change')` listeners receive. */
export type ChangeEvent =
  | { kind: 'snapshot'; version: string }
  | { kind: 'agent'; agentId: string; status: AgentStatus; version: string }
  | { kind: 'approval'; requestId: string; agentId: string; status: 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'consumed' };

/** A snapshot of the connection, for health checks and logs. */
export interface StreamStatus {
  /** A response is open and being read. */
  connected: boolean;
  /** A snapshot has been applied (and no malformed event has arrived since). */
  synced: boolean;
  /** Milliseconds since the last event or heartbeat; null before the first. */
  silentForMs: number | null;
  viewVersion: string;
}
