import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { Agent, Grant, GrantConstraints } from '../domain/agent.js';

/** A row of `grants` as the batch and fleet reads select it. */
export interface GrantRow {
  agent_id: string;
  id: string;
  scope: string;
  constraints: GrantConstraints;
  keep_in_containment: boolean;
  expires_at: Date | null;
  granted_by: string;
  granted_at: Date;
}
import { conflict, type CodedError } from '../domain/errors.js';
import type { EventType } from '../domain/events.js';
import { wideningChanges } from '../domain/widening.js';
import { loadAgents, type AgentRegistration } from './agents.repository.js';
import type { AuditInput } from '../audit/audit.repository.js';
import { chainedTail, commitVersionedChanges, eventRow, prepareEntry, tailCounts, type OutboxRow, type VersionedChange } from './versioned-commit.js';

/** One registration (PUT /v1/agents/{id}, or one line of an import) and who sent it. */
export interface RegistrationItem {
  reg: AgentRegistration;
  actor: string;
}

/**
 * What a batch did: each registration's outcome, in order, and which of the registered agents had
 * webhook events held (read in the batch's write; `null` when nothing was written, so not read).
 */
export interface RegistrationBatch {
  outcomes: RegistrationOutcome[];
  held: string[] | null;
}

/** What became of one registration: applied (perhaps as a no-op), or refused with a coded error. */
export type RegistrationOutcome =
  | { ok: true; created: boolean; changed: boolean; agent: Agent }
  | { ok: false; error: CodedError };

export function decommissionedMessage(agent: Agent, what: string): string {
  const d = agent.decommissioned;
  return `agent ${agent.id} was decommissioned${d ? ` by ${d.by} at ${d.at.toISOString()}` : ''}; ${what}`;
}

/** Whether a registration would leave the agent exactly as it is (a repeated PUT changes nothing). */
export function sameRegistration(agent: Agent, reg: AgentRegistration): boolean {
  if (agent.name !== reg.name || agent.owner !== reg.owner || agent.riskTier !== reg.riskTier) return false;
  if (agent.grants.length !== reg.grants.length) return false;
  return reg.grants.every((n) => {
    const g = agent.grants.find((x) => x.scope === n.scope);
    return (
      g !== undefined &&
      g.keepInContainment === n.keepInContainment &&
      (g.expiresAt?.getTime() ?? null) === (n.expiresAt?.getTime() ?? null) &&
      JSON.stringify(sortKeys(g.constraints)) === JSON.stringify(sortKeys(n.constraints))
    );
  });
}

function sortKeys(o: object): object {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** What a registration refuses, if anything, given the agent as it stands (locked). */
function refusal(before: Agent | undefined, reg: AgentRegistration): CodedError | undefined {
  if (before?.status === 'decommissioned') return conflict(decommissionedMessage(before, 'its id stays reserved: register the agent under a new id'));
  // A held agent gets nothing back through registration: restore (which follows the policy) is the way out.
  if (before && (before.status === 'contained' || before.status === 'revoked')) {
    const widening = wideningChanges(before, reg);
    if (widening.length) {
      return conflict(
        `agent ${reg.id} is ${before.status}: this update would widen it (${widening.map((w) => w.message).join('; ')}); nothing changed. Narrowing updates are allowed; restore the agent first to widen it`,
        widening,
      );
    }
  }
  return undefined;
}

/**
 * Up to this many changed agents, a batch writes its rows in the statement that holds the audit
 * head lock (see `applyRegistrations`): PUT batches (at most `REGISTRATION_BATCH_MAX`), not an
 * import's parts.
 */
export const ROWS_UNDER_HEAD_LOCK_MAX = 64;

/**
 * A registration batch read an agent as absent, and another transaction created it before the
 * batch's write: nothing of the batch may commit (the write skipped that agent's refusals). Run the
 * batch again: the row exists now, so the second run locks and reads it.
 */
export class RegistrationRaced extends Error {
  constructor(readonly agentIds: string[]) {
    super(`agent ${agentIds.join(', ')} was created by another writer during this registration; retry`);
    this.name = 'RegistrationRaced';
  }
}

/**
 * How a batch records its domain events. `recordedOnly`: written as already published, for a
 * process that is its own outbox relay and has no events webhook, where the relay would only mark
 * them published (one write and one relay pass fewer per batch).
 */
export interface EventRecording {
  recordedOnly?: boolean;
}

/**
 * Applies registrations of distinct agents in the caller's transaction, with a fixed number of
 * statements whatever their number: lock the agent rows (in id order, so two batches never wait
 * on each other in a circle), read those that exist, then write every agent row, remove the
 * grants no longer listed, write every grant (returning them) and the versioned tail (versions,
 * one audit entry and one event per agent, under the head lock): in one statement for a batch of
 * up to `ROWS_UNDER_HEAD_LOCK_MAX` changes, else the rows first and `commitVersionedChanges`.
 *
 * A registration that would change nothing is answered as a repeated PUT is (no version, no
 * audit entry); one refused (decommissioned, or widening a held agent) is answered with its error
 * and writes nothing. Neither touches the others.
 */
export async function applyRegistrations(trx: DbOrTrx, items: readonly RegistrationItem[], now: Date, events: EventRecording = {}): Promise<RegistrationBatch> {
  const ids = items.map((i) => i.reg.id);
  if (new Set(ids).size !== ids.length) throw new Error('a registration batch names an agent twice');
  if (items.length === 0) return { outcomes: [], held: [] };
  const { rows: locked } = await sql<{ id: string }>`select id from agents where id = any(${ids}::text[]) order by id for update`.execute(trx);
  // Only the agents that exist (and are now locked) are read: a batch of new agents (a first
  // registration, an import) reads nothing more. An agent another writer creates after the lock
  // is caught at the write (see RegistrationRaced).
  const before = new Map(locked.length === 0 ? [] : (await loadAgents(trx, { ids: locked.map((r) => r.id) })).map((a) => [a.id, a]));

  const outcomes: (RegistrationOutcome | undefined)[] = [];
  const writes: { index: number; item: RegistrationItem; before: Agent | undefined }[] = [];
  items.forEach((item, index) => {
    const agent = before.get(item.reg.id);
    const refused = refusal(agent, item.reg);
    if (refused) outcomes[index] = { ok: false, error: refused };
    else if (agent && sameRegistration(agent, item.reg)) outcomes[index] = { ok: true, created: false, changed: false, agent };
    else writes.push({ index, item, before: agent });
  });
  if (writes.length === 0) return { outcomes: outcomes as RegistrationOutcome[], held: null };
  const registered = items.filter((_, index) => outcomes[index]?.ok !== false).map((i) => i.reg.id);

  const mode = writes.length <= ROWS_UNDER_HEAD_LOCK_MAX ? 'under-lock' : 'split';
  const written = await writeRegistrations(trx, writes, registered, now, mode, events);
  if (!written) throw new Error('a registration batch under lock wrote nothing');
  writes.forEach(({ index }, k) => (outcomes[index] = written.outcomes[k]));
  return { outcomes: outcomes as RegistrationOutcome[], held: written.held };
}

/**
 * Registers agents none of which exists yet, in ONE statement outside any transaction (so one
 * round trip, its own commit): the statement first checks that no agent of the batch exists, and
 * writes nothing (answering `null`) if one does; the caller then takes the ordinary path
 * (`applyRegistrations`), which locks and reads them. Agent rows are inserted without ON CONFLICT,
 * so an agent another writer creates meanwhile fails the statement as a whole (unique violation,
 * nothing written); the caller takes the ordinary path then too. New agents have nothing to
 * refuse and nothing to compare with, so the lock-and-read of the ordinary path has nothing to do.
 */
export async function registerNewAgents(db: DbOrTrx, items: readonly RegistrationItem[], now: Date, events: EventRecording = {}): Promise<RegistrationBatch | null> {
  const ids = items.map((i) => i.reg.id);
  if (new Set(ids).size !== ids.length) throw new Error('a registration batch names an agent twice');
  if (items.length === 0) return { outcomes: [], held: [] };
  if (items.length > ROWS_UNDER_HEAD_LOCK_MAX) throw new Error(`registerNewAgents takes at most ${ROWS_UNDER_HEAD_LOCK_MAX} agents`);
  return writeRegistrations(db, items.map((item, index) => ({ index, item, before: undefined })), ids, now, 'new', events);
}

/**
 * How a batch writes (see `applyRegistrations` and `registerNewAgents`):
 * - `split`: the rows first, outside the head lock, then the versioned tail (an import's parts);
 * - `under-lock`: the rows in the statement that takes the head lock and chains the entries
 *   (`chainedTail`), each agent row written once, with its version (PUT batches);
 * - `new`: as `under-lock`, outside a transaction, only if no agent of the batch exists.
 */
type WriteMode = 'split' | 'under-lock' | 'new';

/**
 * Writes the changed registrations (`writes`, as locked and read, or all new) and answers each one's
 * outcome, in order, with the agents among `registered` that have webhook events held; `null` when
 * mode `new` found an agent of the batch already there (nothing written).
 */
async function writeRegistrations(
  db: DbOrTrx,
  writes: readonly { index: number; item: RegistrationItem; before: Agent | undefined }[],
  registered: readonly string[],
  now: Date,
  mode: WriteMode,
  events: EventRecording = {},
): Promise<{ outcomes: RegistrationOutcome[]; held: string[] } | null> {
  const w = writes.map((x) => x.item);
  const wIds = w.map((i) => i.reg.id);
  const actors = w.map((i) => i.actor);
  const grants = w.flatMap((i) => i.reg.grants.map((g) => ({ agentId: i.reg.id, actor: i.actor, ...g })));
  const grantAgents = grants.map((g) => g.agentId);
  const grantScopes = grants.map((g) => g.scope);
  const changes: VersionedChange[] = writes.map(({ item, before: was }) => {
    const { reg, actor } = item;
    const type: EventType = was ? 'agent.updated' : 'agent.registered';
    const payload = {
      name: reg.name,
      owner: reg.owner,
      riskTier: reg.riskTier,
      grants: reg.grants.map((g) => ({ ...g, expiresAt: g.expiresAt?.toISOString() ?? null })),
      ...(was ? { grantsRemoved: was.grants.filter((g) => !reg.grants.some((n) => n.scope === g.scope)).map((g) => g.scope) } : {}),
    };
    return {
      agentId: reg.id,
      audit: { actor, action: type, subject: reg.id, payload, at: now },
      outbox: [events.recordedOnly ? { ...eventRow(type, { agentId: reg.id, actor, ...payload }, now), publishedAt: now } : eventRow(type, { agentId: reg.id, actor, ...payload }, now)],
    };
  });
  // A small batch (concurrent PUTs) writes its rows in the statement that takes the head lock and
  // chains its entries (`chainedTail`): one round trip fewer, and each agent row is written once,
  // with its version. A large one (an import's part) writes its rows first, outside the lock, and
  // ends with the versioned tail: single actions never wait on the lock behind its rows.
  const underLock = mode !== 'split';
  const fresh = mode === 'new';
  const prepared = underLock ? changes.map((c) => prepareEntry(c.audit as AuditInput)) : [];
  // One statement for the agent rows and their grants (one round trip whatever the batch's size):
  // - agent rows: a new agent is active; its version is the one drawn under the head lock (small
  //   batches), or set by the versioned tail below;
  // - grants no longer listed are removed (kept as history);
  // - every listed grant is written as sent, so what the insert returns is each agent's whole
  //   grant set.
  // Every part runs to completion whether or not its output is read. The removal and the upsert
  // touch disjoint rows (unlisted and listed scopes), and a grant's foreign key to a new agent
  // row is checked at the end of the statement, once both are written.
  // The same statement reads which of the registered agents have webhook events held until they
  // were registered (applied by the caller after the commit): no round trip of its own.
  const { rows } = await sql<GrantRow & { written_id: string; inserted: boolean; held: string[]; versions?: string[]; entries?: number; moved?: number }>`
    with ${underLock ? sql`recursive ${fresh ? sql`guard as (select not exists (select 1 from agents where id = any(${wIds}::text[])) as ok),` : sql``}
      ${chainedTail(prepared, changes.flatMap((c) => c.outbox as OutboxRow[]), fresh ? sql`(select ok from guard)` : undefined)},` : sql``}
    written as (
      insert into agents (id, name, owner, risk_tier, status, version, created_by, created_at, updated_by, updated_at)
      select r.id, r.name, r.owner, r.risk_tier, 'active', ${underLock ? sql`d.version` : sql`0`}, r.actor, ${now}::timestamptz, r.actor, ${now}::timestamptz
      from unnest(${wIds}::text[], ${w.map((i) => i.reg.name)}::text[], ${w.map((i) => i.reg.owner)}::text[], ${w.map((i) => i.reg.riskTier)}::text[], ${actors}::text[])
        with ordinality as r(id, name, owner, risk_tier, actor, i)
        ${underLock ? sql`, drawn d where d.i = r.i` : sql``}
      ${fresh ? sql`` : sql`on conflict (id) do update set name = excluded.name, owner = excluded.owner, risk_tier = excluded.risk_tier,
        ${underLock ? sql`version = excluded.version,` : sql``} updated_by = excluded.updated_by, updated_at = excluded.updated_at`}
      -- xmax is 0 only in a row this statement inserted: an agent read as absent but updated here
      -- was inserted by another transaction after our read (see RegistrationRaced).
      returning id, xmax = 0 as inserted),
    ${
      // New agents have no grants to remove. Nor may this statement touch an agent that exists
      // after all: every part that writes is gated by the guard (through the head, or `written`).
      fresh
        ? sql``
        : sql`removed as (
      update grants set removed_at = ${now}::timestamptz, removed_by = r.actor
      from unnest(${wIds}::text[], ${actors}::text[]) as r(agent_id, actor)
      -- The redundant = any(…) keeps this an index scan while the table's statistics lag behind a
      -- burst of registrations (joined with unnest alone, the planner chose a scan of every grant).
      where grants.agent_id = r.agent_id and grants.agent_id = any(${wIds}::text[]) and grants.removed_at is null
        and not exists (select 1 from unnest(${grantAgents}::text[], ${grantScopes}::text[]) as k(agent_id, scope)
                        where k.agent_id = grants.agent_id and k.scope = grants.scope)
      returning 1),`
    }
    listed as (
      insert into grants (agent_id, scope, constraints, keep_in_containment, expires_at, granted_by, granted_at)
      select agent_id, scope, constraints, keep, expires_at, actor, ${now}::timestamptz
      from unnest(${grantAgents}::text[], ${grantScopes}::text[], ${grants.map((g) => JSON.stringify(g.constraints))}::jsonb[],
        ${grants.map((g) => g.keepInContainment)}::boolean[], ${grants.map((g) => g.expiresAt)}::timestamptz[], ${grants.map((g) => g.actor)}::text[])
        as g(agent_id, scope, constraints, keep, expires_at, actor)
      -- (new agents: grants only of agents this statement inserted; none when the guard said no)
      ${fresh ? sql`where g.agent_id in (select id from written)` : sql``}
      on conflict (agent_id, scope) do update set
        constraints = excluded.constraints,
        keep_in_containment = excluded.keep_in_containment,
        expires_at = excluded.expires_at,
        -- A grant that comes back after removal is a new grant: record who gave it and when.
        granted_by = case when grants.removed_at is null then grants.granted_by else excluded.granted_by end,
        granted_at = case when grants.removed_at is null then grants.granted_at else excluded.granted_at end,
        removed_at = null,
        removed_by = null
      returning agent_id, id, scope, constraints, keep_in_containment, expires_at, granted_by, granted_at),
    held as (
      select coalesce(array_agg(distinct agent_id), '{}') as ids from held_events where agent_id = any(${registered}::text[]) and applied_at is null)
    select listed.*, written.id as written_id, written.inserted, held.ids as held${underLock ? sql`, tail.*` : sql``}
    from ${fresh ? sql`held left join written on true` : sql`written cross join held`} left join listed on listed.agent_id = written.id
    ${underLock ? sql`cross join (select ${tailCounts}) as tail` : sql``}`.execute(db);
  // New agents: the guard found one of them already registered; nothing was written.
  if (fresh && !rows.some((r) => r.written_id)) return null;
  // Checked against what we read under lock: an agent we believed absent was created by another
  // writer in between (a second replica, an import). Its refusals (decommissioned, held) were not
  // checked against it: the caller rolls back and runs the batch again, now reading that row.
  const read = new Set(writes.filter((x) => x.before).map((x) => x.item.reg.id));
  const raced = rows.filter((r) => !r.inserted && !read.has(r.written_id)).map((r) => r.written_id);
  if (raced.length > 0) throw new RegistrationRaced([...new Set(raced)]);
  const current = new Map<string, Grant[]>(wIds.map((id) => [id, []]));
  for (const r of rows) {
    if (!r.agent_id) continue; // an agent registered without grants
    current.get(r.agent_id)!.push({
      id: r.id,
      scope: r.scope,
      constraints: r.constraints,
      keepInContainment: r.keep_in_containment,
      expiresAt: r.expires_at,
      grantedBy: r.granted_by,
      grantedAt: r.granted_at,
    });
  }

  let versions: bigint[];
  if (underLock) {
    const tail = rows[0];
    const n = changes.length;
    if (!tail || tail.entries !== n || tail.moved !== 1 || tail.versions?.length !== n || new Set(rows.map((r) => r.written_id)).size !== n) {
      throw new Error(`registration batch wrote ${tail?.entries ?? 0} of ${n} audit entries and ${new Set(rows.map((r) => r.written_id)).size} of ${n} agents`);
    }
    versions = tail.versions.map((v) => BigInt(v));
  } else {
    versions = await commitVersionedChanges(db, changes);
  }
  const outcomes: RegistrationOutcome[] = [];
  writes.forEach(({ item, before: was }, k) => {
    const { reg } = item;
    // The agent as it now stands, without reading it again: the row as written, the grants the
    // insert returned, and what a registration does not touch (actions in force, trust) as read.
    const agent: Agent = {
      id: reg.id,
      name: reg.name,
      owner: reg.owner,
      riskTier: reg.riskTier,
      status: was?.status ?? 'active',
      version: versions[k]!,
      grants: current.get(reg.id)!.sort((x, y) => (x.scope < y.scope ? -1 : x.scope > y.scope ? 1 : 0)),
      activeActions: was?.activeActions ?? [],
      updatedAt: now,
      trustTier: was?.trustTier ?? null,
      trustScore: was?.trustScore ?? null,
      newestEvidenceAt: was?.newestEvidenceAt ?? null,
      decommissioned: null,
    };
    outcomes.push({ ok: true, created: !was, changed: true, agent });
  });
  return { outcomes, held: rows[0]?.held ?? [] };
}

/** Of these agents, those with webhook events held until they were registered. */
export async function agentsWithHeldEvents(db: DbOrTrx, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await sql<{ agent_id: string }>`
    select distinct agent_id from held_events where agent_id = any(${ids}::text[]) and applied_at is null`.execute(db);
  return rows.map((r) => r.agent_id);
}
