import type { DbOrTrx } from '../db/database.js';
import type { ActiveAction, Agent } from '../domain/agent.js';
import { loadAgent } from '../agents/agents.repository.js';
import { holdOn, type HoldInfo } from './fleet.repository.js';

/**
 * A containment by selector commits a hold on its agents first and their own records right after
 * (`FleetService.holdAndRecord`). In between, every reader shows a held agent as its contain will:
 * these helpers are that one rule, for the replicas' views and for reads from Postgres.
 */

/** The contain a hold gives each of its agents (its id is the fleet incident's until the agent's own is written). */
export function holdAction(hold: HoldInfo): ActiveAction {
  return Object.freeze({ id: hold.id, kind: 'contain' as const, scopes: [], reason: hold.reason, actor: hold.actor, createdAt: hold.openedAt, expiresAt: hold.expiresAt, touched: [] });
}

/**
 * A held agent as its contain will leave it: status `contained` and the hold's contain among its
 * actions in force (grants kept in containment stay usable, as with any contain); at the hold's
 * version when that is newer. Unchanged when a contain or revoke of its own is in force, or it was
 * decommissioned.
 */
export function asHeld(agent: Agent, action: ActiveAction, version: bigint): Agent {
  if (agent.status === 'decommissioned' || agent.activeActions.some((a) => a.kind === 'contain' || a.kind === 'revoke')) return agent;
  return { ...agent, status: 'contained', activeActions: [...agent.activeActions, action], version: version > agent.version ? version : agent.version };
}

/**
 * One agent from Postgres as a reader should see it: under a hold not yet recorded, as held. The
 * hold is read first: had it been released, its release committed with the agent's own contain,
 * which the agent's read (after) sees. (Read the other way round, a recording that commits between
 * the two reads would show the agent active.)
 */
export async function loadAgentAsSeen(db: DbOrTrx, id: string): Promise<Agent | undefined> {
  const hold = await holdOn(db, id);
  const agent = await loadAgent(db, id);
  return agent && hold ? asHeld(agent, holdAction(hold), hold.version) : agent;
}
