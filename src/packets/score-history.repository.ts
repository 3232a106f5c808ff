import type { DbOrTrx } from '../db/database.js';
import type { Policy } from '../policy/policy.schema.js';
import { externalScoreTime } from './build-packet.js';
import { replayScoreHistory, type HistoryPoint } from './score-history.js';

const DAY = 86_400_000;

/**
 * An agent's daily score over the last `days`, as the trust packet charts it: replayed from the
 * evidence observed up to each day (and the external scores Armalo set, at their own time), today's
 * point being the score in force. For views that show the packet's chart without building a packet
 * (the web console's agent page). `buildPacket` runs the same three reads inside its own batch.
 */
export async function loadScoreHistory(db: DbOrTrx, agentId: string, now: Date, trust: Policy['trust'], days = 90): Promise<{ from: string; points: HistoryPoint[] }> {
  // The replay needs the 90-day scoring window before the first day of the chart.
  const replayFrom = new Date(now.getTime() - (days + 91) * DAY);
  const [evaluations, externals, live] = await Promise.all([
    db.selectFrom('evaluations').select(['dimension', 'passed', 'score', 'observed_at']).where('agent_id', '=', agentId).where('observed_at', '>=', replayFrom).where('observed_at', '<=', now).execute(),
    db.selectFrom('trust_scores').select(['score', 'tier', 'computed_at', 'inputs']).where('agent_id', '=', agentId).where('source', '=', 'external').where('computed_at', '<=', now).orderBy('computed_at').orderBy('id').execute(),
    db.selectFrom('trust_scores').select(['score', 'tier', 'source', 'computed_at']).where('agent_id', '=', agentId).where('computed_at', '<=', now).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst(),
  ]);
  return replayScoreHistory(
    evaluations.map((e) => ({ dimension: e.dimension, passed: e.passed, score: e.score, observedAt: e.observed_at })),
    externals.map((e) => ({ at: externalScoreTime(e.inputs, e.computed_at), score: e.score, tier: e.tier })),
    now,
    { days, weights: trust.weights, thresholds: trust.tiers, live: live ? { score: live.score, tier: live.tier, source: live.source } : null },
  );
}
