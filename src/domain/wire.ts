import type { ActiveAction, Agent, Grant, OpenApproval } from './agent.js';
import type { RoutingRules } from './decide.js';

/**
 * The permission state as it travels to agents (the change stream, `GET /v1/stream`, and the agent
 * SDK's local copy): JSON-safe forms of `Agent` and `OpenApproval`, and the conversions both ways.
 * Pure, with no imports beyond the domain types: the SDK bundles this file together with the same
 * `decide`/`routeDecision` the server runs, so a local check and a server decision agree.
 *
 * Dates travel as ISO-8601 strings, versions as decimal strings (they are int8 in Postgres).
 */

export interface WireGrant {
  id: string;
  scope: string;
  constraints: Grant['constraints'];
  keepInContainment: boolean;
  expiresAt: string | null;
  grantedBy: string;
  grantedAt: string;
}

export interface WireAction {
  id: string;
  kind: ActiveAction['kind'];
  scopes: string[];
  reason: string;
  actor: string;
  createdAt: string;
  expiresAt: string | null;
  touched: ActiveAction['touched'];
}

export interface WireAgent {
  id: string;
  name: string;
  owner: string;
  riskTier: Agent['riskTier'];
  status: Agent['status'];
  version: string;
  updatedAt: string;
  grants: WireGrant[];
  activeActions: WireAction[];
  trustTier: NonNullable<Agent['trustTier']> | null;
  trustScore: number | null;
  newestEvidenceAt: string | null;
}

export interface WireApproval {
  id: string;
  agentId: string;
  action: string;
  context: Record<string, unknown>;
  /** `pending` and `approved` are open; the others are final (an `approval` event may carry them). */
  status: 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'consumed';
  createdAt: string;
  decidedAt: string | null;
  grantUntil: string | null;
}

/** The first event of a stream: every agent in the token's scope, their open approvals, and the routing rules. */
export interface WireSnapshot {
  version: string;
  agents: WireAgent[];
  approvals: WireApproval[];
  /** The policy's routing rules (role names, no people): `check()` needs them to answer `approval_required`. */
  routing: RoutingRules;
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);
const date = (s: string | null | undefined): Date | null => (s ? new Date(s) : null);

export function agentToWire(agent: Agent): WireAgent {
  return {
    id: agent.id,
    name: agent.name,
    owner: agent.owner,
    riskTier: agent.riskTier,
    status: agent.status,
    version: agent.version.toString(),
    updatedAt: agent.updatedAt.toISOString(),
    grants: agent.grants.map((g) => ({
      id: g.id,
      scope: g.scope,
      constraints: g.constraints,
      keepInContainment: g.keepInContainment,
      expiresAt: iso(g.expiresAt),
      grantedBy: g.grantedBy,
      grantedAt: g.grantedAt.toISOString(),
    })),
    activeActions: agent.activeActions.map((a) => ({
      id: a.id,
      kind: a.kind,
      scopes: a.scopes,
      reason: a.reason,
      actor: a.actor,
      createdAt: a.createdAt.toISOString(),
      expiresAt: iso(a.expiresAt),
      touched: a.touched,
    })),
    trustTier: agent.trustTier ?? null,
    trustScore: agent.trustScore ?? null,
    newestEvidenceAt: iso(agent.newestEvidenceAt),
  };
}

export function agentFromWire(wire: WireAgent): Agent {
  return {
    id: wire.id,
    name: wire.name,
    owner: wire.owner,
    riskTier: wire.riskTier,
    status: wire.status,
    version: BigInt(wire.version),
    updatedAt: new Date(wire.updatedAt),
    grants: wire.grants.map((g) => ({
      id: g.id,
      scope: g.scope,
      constraints: g.constraints,
      keepInContainment: g.keepInContainment,
      expiresAt: date(g.expiresAt),
      grantedBy: g.grantedBy,
      grantedAt: new Date(g.grantedAt),
    })),
    activeActions: wire.activeActions.map((a) => ({
      id: a.id,
      kind: a.kind,
      scopes: a.scopes,
      reason: a.reason,
      actor: a.actor,
      createdAt: new Date(a.createdAt),
      expiresAt: date(a.expiresAt),
      touched: a.touched,
    })),
    trustTier: wire.trustTier,
    trustScore: wire.trustScore,
    newestEvidenceAt: date(wire.newestEvidenceAt),
  };
}

export function approvalToWire(a: OpenApproval | (Omit<OpenApproval, 'status'> & { status: WireApproval['status'] })): WireApproval {
  return {
    id: a.id,
    agentId: a.agentId,
    action: a.action,
    context: a.context,
    status: a.status,
    createdAt: a.createdAt.toISOString(),
    decidedAt: iso(a.decidedAt),
    grantUntil: iso(a.grantUntil),
  };
}

/** An open approval back in the form the decision path reads; undefined for a final status. */
export function approvalFromWire(wire: WireApproval): OpenApproval | undefined {
  if (wire.status !== 'pending' && wire.status !== 'approved') return undefined;
  return {
    id: wire.id,
    agentId: wire.agentId,
    action: wire.action,
    context: wire.context,
    status: wire.status,
    createdAt: new Date(wire.createdAt),
    decidedAt: date(wire.decidedAt),
    grantUntil: date(wire.grantUntil),
  };
}
