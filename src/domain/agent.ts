/** The domain's picture of an agent and its permissions, independent of storage and transport. */
import type { TrustTier } from './trust-score.js';

export const RISK_TIERS = ['low', 'medium', 'high', 'critical'] as const;
export type RiskTier = (typeof RISK_TIERS)[number];

/** `decommissioned`: retired for good (DELETE /v1/agents/{id}); its id stays reserved and its history readable. */
export const AGENT_STATUSES = ['active', 'narrowed', 'contained', 'revoked', 'decommissioned'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const ACTION_KINDS = ['narrow', 'contain', 'revoke', 'restore'] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];
/** The kinds that take permissions away and stay in force until lifted. */
export type RestrictingKind = Exclude<ActionKind, 'restore'>;

/** Constraints we know how to enforce. Unknown constraint keys are refused at registration. */
export interface GrantConstraints {
  /** Largest `context.amount` this grant allows. */
  maxAmount?: number;
  /** Allowed values of `context.currency` (ISO 4217 codes). */
  currencies?: string[];
  /** Allowed values of `context.recipientDomain`. */
  recipientDomains?: string[];
  /** The agent's trust tier must be at least this (an agent with no score yet is below every tier). */
  minTier?: TrustTier;
}

export interface Grant {
  id: string;
  scope: string;
  constraints: GrantConstraints;
  keepInContainment: boolean;
  expiresAt: Date | null;
  grantedBy: string;
  grantedAt: Date;
}

export interface TouchedGrant {
  grantId: string;
  scope: string;
}

/** A narrow, contain or revoke that is in force. */
export interface ActiveAction {
  id: string;
  kind: RestrictingKind;
  scopes: string[];
  reason: string;
  actor: string;
  createdAt: Date;
  expiresAt: Date | null;
  touched: TouchedGrant[];
}

export interface Agent {
  id: string;
  name: string;
  owner: string;
  riskTier: RiskTier;
  status: AgentStatus;
  /** Global permission-state version of the last change to this agent. */
  version: bigint;
  grants: Grant[];
  activeActions: ActiveAction[];
  updatedAt: Date;
  /** The latest trust tier, or null when the agent has no score yet. */
  trustTier?: TrustTier | null;
  /** The latest trust score, or null when the agent has no score yet (routing's `scoreBelow`). */
  trustScore?: number | null;
  /** When the newest evaluation evidence was observed, or null when there is none (`evidenceOlderThan`). */
  newestEvidenceAt?: Date | null;
  /** Set when the agent was decommissioned (its status is then `decommissioned`). */
  decommissioned?: { at: Date; by: string; reason: string } | null;
}

/**
 * An approval request the decision path may need: pending (its id answers `approval_required`) or
 * approved and not used up yet (single use and not consumed, or inside its `grantFor` window).
 */
export interface OpenApproval {
  id: string;
  agentId: string;
  action: string;
  context: Record<string, unknown>;
  status: 'pending' | 'approved';
  createdAt: Date;
  decidedAt: Date | null;
  /** End of the `grantFor` window; null for a single-use approval. */
  grantUntil: Date | null;
}

export type GrantState = 'active' | 'suspended' | 'revoked' | 'expired';

export interface GrantStatus {
  state: GrantState;
  /** The action holding the grant, when suspended or revoked. */
  heldBy?: ActiveAction;
}

/** The status an agent has given the actions in force: the strongest one wins. */
export function deriveStatus(actions: readonly ActiveAction[]): AgentStatus {
  if (actions.some((a) => a.kind === 'revoke')) return 'revoked';
  if (actions.some((a) => a.kind === 'contain')) return 'contained';
  if (actions.some((a) => a.kind === 'narrow')) return 'narrowed';
  return 'active';
}

const HOLD_ORDER: Record<RestrictingKind, number> = { revoke: 0, contain: 1, narrow: 2 };

/** The effective state of one grant: held by the strongest action in force, else expired or active. */
export function grantStatus(agent: Agent, grant: Grant, now: Date): GrantStatus {
  let holder: ActiveAction | undefined;
  for (const action of agent.activeActions) {
    const holds =
      action.touched.some((t) => t.grantId === grant.id) ||
      (action.kind === 'contain' && !grant.keepInContainment) ||
      action.kind === 'revoke';
    if (holds && (!holder || HOLD_ORDER[action.kind] < HOLD_ORDER[holder.kind])) holder = action;
  }
  if (holder) return { state: holder.kind === 'revoke' ? 'revoked' : 'suspended', heldBy: holder };
  if (grant.expiresAt && grant.expiresAt.getTime() <= now.getTime()) return { state: 'expired' };
  return { state: 'active' };
}
