import type { Db } from '../db/database.js';
import { poolOf } from '../db/database.js';
import { COPY_SESSION, copyOut, type CopyRow } from '../db/copy-out.js';
import { deriveStatus, RISK_TIERS, type ActiveAction, type Agent, type Grant, type GrantConstraints, type RestrictingKind, type RiskTier, type TouchedGrant } from '../domain/agent.js';
import type { TrustTier } from '../domain/trust-score.js';

/** How many agents `loadAllAgents` hands over per call of `onAgents`. */
export const LOAD_CHUNK_SIZE = 5000;

/**
 * Every agent with its grants, actions in force, latest trust score and tier, and newest evidence
 * time: the permission view's first load (100,000 agents in well under 3 s of this process's CPU).
 *
 * - One snapshot: a REPEATABLE READ, read-only transaction, so the highest version read is a true
 *   watermark (every change committed up to it is in what was read; the view's next poll reads
 *   what committed after).
 * - Streamed: one `COPY … TO STDOUT` per table (agents, grants, actions, scores, evidence), each
 *   row read from the bytes as it arrives (see `copyOut`). No list of ids is sent (one `IN (…)` of
 *   every id breaks past Postgres' 65,535 parameters), no page is read twice, and Postgres does no
 *   JSON building (which cost it several times what the rows themselves cost).
 * - Joined here by agent id, once per row: a grant finds its agent in a map (or is the same agent
 *   as the row before, which is the common case), never by scanning another agent's rows.
 * - Compact: what 100,000 agents repeat is stored once (owners, scopes, who granted, tiers,
 *   identical constraint objects, equal timestamps), and each agent's arrays are exactly as long as
 *   they need to be (agents with no grants or no actions share one frozen empty array).
 *   Shared objects are never written to: the view's agents are replaced, not changed, on a reload.
 *
 * `onAgents` gets the agents in id order, in chunks of `LOAD_CHUNK_SIZE`, once the snapshot has
 * been read in full; each agent is the same as `loadAgents` reads it.
 *
 * With `versionAbove`, only the agents above that version (a large catch-up: a fleet action's
 * thousands of changes), from the same one snapshot: what `loadAgents({ versionAbove })` reads,
 * without its JSON building per agent.
 */
export async function loadAllAgents(db: Db, onAgents: (agents: Agent[]) => void, filter: { versionAbove?: bigint } = {}): Promise<number> {
  // COPY takes no parameters: the version goes in as digits (a bigint prints as nothing else).
  const above = filter.versionAbove;
  if (above !== undefined && typeof above !== 'bigint') throw new Error('versionAbove must be a bigint');
  const agentWhere = above === undefined ? '' : ` where version > ${above.toString()}`;
  const ofThose = above === undefined ? '' : ` and agent_id in (select id from agents where version > ${above.toString()})`;
  const pool = poolOf(db);
  if (!pool) throw new Error('loadAllAgents needs a database handle made by createDb (it reads with COPY on its pool)');
  const client = await pool.connect();
  let failure: Error | undefined;
  let agents: Agent[];
  try {
    await client.query('begin isolation level repeatable read, read only');
    await client.query(COPY_SESSION);
    const fleet = new FleetBuilder();
    await copyOut(
      client,
      `select id, name, owner, risk_tier, version, updated_at, decommissioned_at, decommissioned_by, decommission_reason from agents${agentWhere} order by id`,
      (r) => fleet.agent(r),
    );
    await copyOut(client, `select agent_id, id, scope, constraints, keep_in_containment, expires_at, granted_by, granted_at from grants where removed_at is null${ofThose}`, (r) => fleet.grant(r));
    await copyOut(
      client,
      `select agent_id, id, kind, scopes, reason, actor, created_at, expires_at, touched_grants from agent_actions where lifted_at is null and kind <> 'restore'${ofThose}`,
      (r) => fleet.action(r),
    );
    await copyOut(client, `select distinct on (agent_id) agent_id, tier, score from trust_scores where true${ofThose} order by agent_id, computed_at desc, id desc`, (r) => fleet.score(r));
    await copyOut(client, `select agent_id, max(observed_at) from evaluations where true${ofThose} group by agent_id`, (r) => fleet.evidence(r));
    await client.query('commit');
    agents = fleet.finish();
  } catch (err) {
    failure = err as Error;
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    // A connection that failed mid-COPY is not handed out again.
    client.release(failure);
  }
  for (let i = 0; i < agents.length; i += LOAD_CHUNK_SIZE) onAgents(agents.slice(i, i + LOAD_CHUNK_SIZE));
  return agents.length;
}

const NO_GRANTS: Grant[] = Object.freeze([]) as unknown as Grant[];
const NO_ACTIONS: ActiveAction[] = Object.freeze([]) as unknown as ActiveAction[];
/** Grants without constraints share one frozen object (most grants have none). */
const NO_CONSTRAINTS: GrantConstraints = Object.freeze({}) as GrantConstraints;
const RISK_TIER_SET: ReadonlySet<string> = new Set(RISK_TIERS);

/** Builds the agents from the rows of each table in turn; `finish` puts each agent in order. */
class FleetBuilder {
  private readonly agents: Agent[] = [];
  /**
   * Agents by a hash of their id's bytes, so a row of another table finds its agent without making
   * a string of its agent id; the rare agent whose hash is taken already goes in `byIdOverflow`.
   */
  private readonly byIdHash = new Map<number, Agent>();
  private readonly byIdOverflow = new Map<string, Agent>();
  /** One copy of each repeated string (owners, scopes, who granted, tiers, kinds), by hash of its bytes. */
  private readonly strings = new Map<number, string[]>();
  /** One Date per distinct instant (an agent's grants are usually all given at its registration). */
  private readonly dates = new Map<number, Date>();
  /** One frozen object per distinct constraints text (jsonb prints equal values identically), by hash. */
  private readonly constraintObjects = new Map<number, [string, GrantConstraints][]>();
  /** The agent of the row before: rows of one agent usually come together. */
  private last: Agent | undefined;

  agent(r: CopyRow): void {
    const decommissionedAt = this.date(r.epochMs(6));
    const riskTier = this.intern(r, 3);
    if (!RISK_TIER_SET.has(riskTier)) throw new Error(`agent ${r.str(0)} has an unknown risk tier`);
    const agent: Agent = {
      id: r.str(0),
      name: r.str(1),
      owner: this.intern(r, 2),
      riskTier: riskTier as RiskTier,
      // Derived in `finish` from the actions in force, as `loadAgents` derives it.
      status: 'active',
      version: r.bigint(4),
      updatedAt: this.date(r.epochMs(5))!,
      grants: NO_GRANTS,
      activeActions: NO_ACTIONS,
      trustTier: null,
      trustScore: null,
      newestEvidenceAt: null,
      decommissioned: decommissionedAt ? { at: decommissionedAt, by: r.text(7) ?? 'unknown', reason: r.text(8) ?? '' } : null,
    };
    this.agents.push(agent);
    const h = smallHash(r, 0);
    if (this.byIdHash.has(h)) this.byIdOverflow.set(agent.id, agent);
    else this.byIdHash.set(h, agent);
  }

  grant(r: CopyRow): void {
    const agent = this.find(r);
    if (!agent) return;
    const grant: Grant = {
      id: r.str(1),
      scope: this.intern(r, 2),
      constraints: this.constraints(r, 3),
      keepInContainment: r.bool(4),
      expiresAt: this.date(r.epochMs(5)),
      grantedBy: this.intern(r, 6),
      grantedAt: this.date(r.epochMs(7))!,
    };
    if (agent.grants === NO_GRANTS) agent.grants = [grant];
    else agent.grants.push(grant);
  }

  action(r: CopyRow): void {
    const agent = this.find(r);
    if (!agent) return;
    const action: ActiveAction = {
      id: r.str(1),
      kind: this.intern(r, 2) as RestrictingKind,
      scopes: r.json(3) as string[],
      reason: r.str(4),
      actor: this.intern(r, 5),
      createdAt: this.date(r.epochMs(6))!,
      expiresAt: this.date(r.epochMs(7)),
      touched: r.json(8) as TouchedGrant[],
    };
    if (agent.activeActions === NO_ACTIONS) agent.activeActions = [action];
    else agent.activeActions.push(action);
  }

  score(r: CopyRow): void {
    const agent = this.find(r);
    if (!agent) return;
    agent.trustTier = this.intern(r, 1) as TrustTier;
    agent.trustScore = r.int(2);
  }

  evidence(r: CopyRow): void {
    const agent = this.find(r);
    if (agent) agent.newestEvidenceAt = this.date(r.epochMs(1));
  }

  /** Every agent, in id order, each as `loadAgents` would read it. */
  finish(): Agent[] {
    for (const agent of this.agents) {
      const grants = agent.grants;
      if (grants.length > 1) {
        if (!sortedBy(grants, byScope)) grants.sort(byScope);
        // Exactly as long as needed: an array grown by push keeps room for 16.
        agent.grants = grants.slice();
      }
      const actions = agent.activeActions;
      if (actions.length > 1) {
        if (!sortedBy(actions, byCreation)) actions.sort(byCreation);
        agent.activeActions = actions.slice();
      }
      // As `loadAgents` does: the status is derived from the actions in force, and a decommissioned
      // agent stays decommissioned.
      agent.status = agent.decommissioned ? 'decommissioned' : deriveStatus(agent.activeActions);
    }
    return this.agents;
  }

  /** The agent a row of another table belongs to (its first field is the agent id). */
  private find(r: CopyRow): Agent | undefined {
    const last = this.last;
    if (last && r.equals(0, last.id)) return last;
    // A row whose agent is not in the snapshot cannot happen (foreign key, one snapshot): skip it.
    let agent = this.byIdHash.get(smallHash(r, 0));
    if (!agent || !r.equals(0, agent.id)) agent = this.byIdOverflow.size > 0 ? this.byIdOverflow.get(r.str(0)) : undefined;
    this.last = agent;
    return agent;
  }

  /** Field `i` as a string, the one copy made before when the same text was read already. */
  private intern(r: CopyRow, i: number): string {
    const h = r.hash(i);
    const bucket = this.strings.get(h);
    if (bucket) for (const s of bucket) if (r.equals(i, s)) return s;
    const s = r.str(i);
    if (bucket) bucket.push(s);
    else this.strings.set(h, [s]);
    return s;
  }

  private date(ms: number | null): Date | null {
    if (ms === null) return null;
    let d = this.dates.get(ms);
    if (!d) {
      d = new Date(ms);
      this.dates.set(ms, d);
    }
    return d;
  }

  private constraints(r: CopyRow, i: number): GrantConstraints {
    if (r.equals(i, '{}')) return NO_CONSTRAINTS;
    const h = r.hash(i);
    const bucket = this.constraintObjects.get(h);
    if (bucket) for (const [text, c] of bucket) if (r.equals(i, text)) return c;
    const text = r.str(i);
    const c = deepFreeze(JSON.parse(text) as GrantConstraints);
    if (bucket) bucket.push([text, c]);
    else this.constraintObjects.set(h, [[text, c]]);
    return c;
  }
}

/** A field's hash as a small integer (a map key V8 stores without allocating). */
function smallHash(r: CopyRow, i: number): number {
  return r.hash(i) & 0x3fffffff;
}

const byScope = (x: Grant, y: Grant) => (x.scope < y.scope ? -1 : x.scope > y.scope ? 1 : 0);
const byCreation = (x: ActiveAction, y: ActiveAction) => x.createdAt.getTime() - y.createdAt.getTime();

function sortedBy<T>(list: readonly T[], compare: (a: T, b: T) => number): boolean {
  for (let i = 1; i < list.length; i++) if (compare(list[i - 1]!, list[i]!) > 0) return false;
  return true;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
