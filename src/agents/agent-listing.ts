import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { Agent, AgentStatus, RiskTier } from '../domain/agent.js';
import { loadAgents } from './agents.repository.js';

/** What `GET /v1/agents` and `/armalo agents` filter on; every key given must hold (AND). */
export interface AgentListFilter {
  status?: AgentStatus;
  /** Exact owner, compared case-insensitively. */
  owner?: string;
  riskTier?: RiskTier;
  /** A scope glob: agents holding a grant (not removed) whose scope it matches. */
  scope?: string;
  /** Case-insensitive substring of the id or the name. */
  q?: string;
  /** Only this agent (an agent-scoped token sees its own agent only). */
  onlyId?: string;
}

/** Escapes LIKE's own wildcards (and the escape character) so the text matches only itself. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * A scope glob as a LIKE pattern with the same meaning as `globMatches` (src/domain/scope.ts):
 * `*` is any run of characters (`:` included, or none), everything else matches only itself.
 */
export function globToLike(glob: string): string {
  return glob.split('*').map(escapeLike).join('%');
}

/**
 * One page of agents in id order, with their full state. The filters run in SQL (one statement
 * for the page's ids, one `loadAgents` for their state), so a page costs the same whatever the
 * fleet's size. `afterId` is the last id of the previous page.
 */
export async function listAgents(db: DbOrTrx, filter: AgentListFilter, page: { limit: number; afterId?: string }): Promise<{ agents: Agent[]; nextAfterId: string | null }> {
  let q = db.selectFrom('agents as a').select('a.id');
  if (filter.onlyId !== undefined) q = q.where('a.id', '=', filter.onlyId);
  // The stored status is written with every action and lift, in the same transaction.
  if (filter.status) q = q.where('a.status', '=', filter.status);
  if (filter.riskTier) q = q.where('a.risk_tier', '=', filter.riskTier);
  if (filter.owner !== undefined) q = q.where(sql<boolean>`lower(a.owner) = lower(${filter.owner})`);
  if (filter.q !== undefined) {
    const pattern = `%${escapeLike(filter.q)}%`;
    q = q.where(sql<boolean>`(a.id ilike ${pattern} escape '\\' or a.name ilike ${pattern} escape '\\')`);
  }
  if (filter.scope !== undefined) {
    const pattern = globToLike(filter.scope);
    q = q.where(sql<boolean>`exists (select 1 from grants g where g.agent_id = a.id and g.removed_at is null and g.scope like ${pattern} escape '\\')`);
  }
  if (page.afterId !== undefined) q = q.where('a.id', '>', page.afterId);
  // One more than asked: tells whether another page follows without a count.
  const rows = await q.orderBy('a.id').limit(page.limit + 1).execute();
  const ids = rows.slice(0, page.limit).map((r) => r.id);
  const loaded = await loadAgents(db, { ids });
  const byId = new Map(loaded.map((a) => [a.id, a]));
  // An agent is never deleted, so every id loads; keep the page's order.
  const agents = ids.map((id) => byId.get(id)).filter((a): a is Agent => a !== undefined);
  return { agents, nextAfterId: rows.length > page.limit ? ids[ids.length - 1]! : null };
}
