import type { ActiveAction, Agent, AgentStatus, Grant, TouchedGrant } from './agent.js';
import { deriveStatus, grantStatus } from './agent.js';
import { conflict, invalidInput } from './errors.js';
import { globMatches, scopesOverlap } from './scope.js';

/** A narrow, contain, revoke or restore asked for by a person, a policy rule or an API client. */
export interface ActionCommand {
  kind: 'narrow' | 'contain' | 'revoke' | 'restore';
  /** Scope globs to suspend (narrow only). */
  scopes?: string[];
  reason: string;
  actor: string;
  /** Lift the action automatically after this long (narrow and contain). */
  ttlMs?: number;
  /** A restore through the break-glass path (policy `permissions.breakGlass`): marked in the audit entry and the incident. */
  breakGlass?: boolean;
}

/** What an action will do: computed without side effects, so a dry run shows exactly this. */
export interface ActionPlan {
  kind: ActionCommand['kind'];
  statusBefore: AgentStatus;
  statusAfter: AgentStatus;
  /** Grants that stop being usable because of this action. */
  grantsTakenAway: TouchedGrant[];
  /** Grants that become usable again (restore, expiry). */
  grantsGivenBack: TouchedGrant[];
  /** Actions this one lifts (restore). */
  lifts: ActiveAction[];
  /** Narrow patterns that will deny matching actions even where no grant was touched. */
  scopes: string[];
  expiresAt: Date | null;
}

const usable = (agent: Agent, grant: Grant, now: Date) => grantStatus(agent, grant, now).state === 'active';
const touched = (g: Grant): TouchedGrant => ({ grantId: g.id, scope: g.scope });

function withActions(agent: Agent, activeActions: ActiveAction[]): Agent {
  return { ...agent, activeActions, status: deriveStatus(activeActions) };
}

/** Grants usable in `after` that were not usable in `before`. */
function givenBack(before: Agent, after: Agent, now: Date): TouchedGrant[] {
  return after.grants.filter((g) => !usable(before, g, now) && usable(after, g, now)).map(touched);
}

export function planAction(agent: Agent, cmd: ActionCommand, now: Date): ActionPlan {
  const statusBefore = agent.status;
  const base = { kind: cmd.kind, statusBefore, grantsGivenBack: [], lifts: [], scopes: [] as string[] };
  const expiresAt = cmd.ttlMs ? new Date(now.getTime() + cmd.ttlMs) : null;
  if (cmd.ttlMs && (cmd.kind === 'revoke' || cmd.kind === 'restore')) {
    throw invalidInput(`ttl applies to narrow and contain only; ${cmd.kind} is not lifted automatically`);
  }
  if (statusBefore === 'revoked' && cmd.kind !== 'restore') {
    throw conflict(`agent ${agent.id} is revoked; only restore can change it`);
  }

  switch (cmd.kind) {
    case 'narrow': {
      const scopes = [...new Set(cmd.scopes ?? [])];
      if (scopes.length === 0) throw invalidInput('narrow needs at least one scope');
      for (const s of scopes) {
        if (!agent.grants.some((g) => scopesOverlap(s, g.scope))) {
          throw invalidInput(
            `scope ${s} matches none of the agent's grants (${agent.grants.map((g) => g.scope).join(', ') || 'none'})`,
          );
        }
      }
      const taken = agent.grants.filter((g) => usable(agent, g, now) && scopes.some((s) => globMatches(s, g.scope)));
      const statusAfter = statusBefore === 'active' ? 'narrowed' : statusBefore;
      return { ...base, scopes, statusAfter, grantsTakenAway: taken.map(touched), expiresAt };
    }
    case 'contain': {
      const current = agent.activeActions.find((a) => a.kind === 'contain');
      if (current) {
        throw conflict(`agent ${agent.id} is already contained since ${current.createdAt.toISOString()} by ${current.actor}`);
      }
      const taken = agent.grants.filter((g) => !g.keepInContainment && usable(agent, g, now));
      return { ...base, statusAfter: 'contained', grantsTakenAway: taken.map(touched), expiresAt };
    }
    case 'revoke': {
      const taken = agent.grants.filter((g) => grantStatus(agent, g, now).state !== 'revoked');
      return { ...base, statusAfter: 'revoked', grantsTakenAway: taken.map(touched), expiresAt: null };
    }
    case 'restore': {
      if (agent.activeActions.length === 0) throw conflict(`agent ${agent.id} is active; there is nothing to restore`);
      const after = withActions(agent, []);
      return {
        ...base,
        statusAfter: 'active',
        grantsTakenAway: [],
        grantsGivenBack: givenBack(agent, after, now),
        lifts: agent.activeActions,
        expiresAt: null,
      };
    }
  }
}

/** What lifting one action (its ttl ran out) gives back. */
export function planLift(agent: Agent, actionId: string, now: Date): ActionPlan & { lifted: ActiveAction } {
  const lifted = agent.activeActions.find((a) => a.id === actionId);
  if (!lifted) throw conflict(`action ${actionId} is not in force`);
  const after = withActions(agent, agent.activeActions.filter((a) => a.id !== actionId));
  return {
    kind: lifted.kind,
    statusBefore: agent.status,
    statusAfter: after.status,
    grantsTakenAway: [],
    grantsGivenBack: givenBack(agent, after, now),
    lifts: [lifted],
    scopes: lifted.scopes,
    expiresAt: null,
    lifted,
  };
}

/** Why a restore is refused under the policy's `restore.freshEvaluation` (the incident began at `since`). */
/** Why a restore over the API cannot wait for a second person: there is nowhere to ask one. */
export const NO_CHANNEL_FOR_SECOND_PERSON =
  'restore needs a second person (permissions.restore.secondPerson), but the policy names no incidents channel (channels.incidents) to ask in';

export function freshEvaluationRefusal(agentId: string, since: Date): string {
  return `Restore needs a fresh evaluation (the policy's restore.freshEvaluation): none of ${agentId} was observed since the incident began at ${since.toISOString()}. Record one (POST /v1/agents/${agentId}/evaluations) and ask again.`;
}
