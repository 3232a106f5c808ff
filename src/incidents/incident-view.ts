import type { DbOrTrx } from '../db/database.js';
import { loadAgent } from '../agents/agents.repository.js';
import type { Agent } from '../domain/agent.js';
import { grantStatus } from '../domain/agent.js';

/** Everything a notice about an incident shows, read from Postgres at the time of posting. */
export interface IncidentView {
  id: string;
  status: 'open' | 'closed';
  openedAt: Date;
  closedAt: Date | null;
  closedBy: string | null;
  openedByActionId: string;
  agent: Agent;
  steps: IncidentStep[];
  /** Grants not usable right now, with why. */
  heldGrants: { scope: string; state: string }[];
}

export interface IncidentStep {
  actionId: string;
  kind: 'narrow' | 'contain' | 'revoke' | 'restore';
  actor: string;
  reason: string;
  at: Date;
  scopes: string[];
  expiresAt: Date | null;
  liftedAt: Date | null;
  liftedBy: string | null;
  grants: string[];
  /** A restore through the break-glass path (no second person). */
  breakGlass?: boolean;
}

export async function loadIncidentView(db: DbOrTrx, incidentId: string, now: Date): Promise<IncidentView | undefined> {
  const incident = await db.selectFrom('incidents').selectAll().where('id', '=', incidentId).executeTakeFirst();
  if (!incident) return undefined;
  const agent = await loadAgent(db, incident.agent_id);
  if (!agent) return undefined;
  const actions = await db.selectFrom('agent_actions').selectAll().where('incident_id', '=', incidentId).orderBy('created_at').execute();
  return {
    id: incident.id,
    status: incident.status,
    openedAt: incident.opened_at,
    closedAt: incident.closed_at,
    closedBy: incident.closed_by,
    openedByActionId: incident.opened_by_action_id,
    agent,
    steps: actions.map((a) => ({
      actionId: a.id,
      kind: a.kind,
      actor: a.actor,
      reason: a.reason,
      at: a.created_at,
      scopes: a.scopes,
      expiresAt: a.expires_at,
      liftedAt: a.lifted_at,
      liftedBy: a.lifted_by,
      grants: a.touched_grants.map((g) => g.scope),
      breakGlass: (a.result as { breakGlass?: unknown } | null)?.breakGlass === true,
    })),
    heldGrants: agent.grants
      .map((g) => ({ scope: g.scope, state: grantStatus(agent, g, now).state }))
      .filter((g) => g.state !== 'active'),
  };
}
