import type { Freshness } from '../domain/trust-score.js';

/** How bad the worst fact of a packet is: `alert` (do not rely on it), `caution`, or `ok`. */
export type VerdictLevel = 'alert' | 'caution' | 'ok';

/** Evidence of one dimension or one pact, aggregated over everything recorded (not only the appendix). */
export interface EvidenceAggregate {
  /** The dimension name, or the pact id. */
  key: string;
  /** The pact title (pact aggregates only). */
  title?: string;
  count: number;
  /** Share of the graded items that passed (a graded score passes at 0.5 or more); null when none is graded. */
  passRate: number | null;
  lastFailure: string | null;
  oldest: string | null;
  newest: string | null;
  /** Freshness of the newest item: `stale` means nothing recent proves this dimension or pact. */
  freshness: Freshness;
  /** Items past the freshness window. */
  staleCount: number;
}

/**
 * A trust packet: one snapshot document that tells a CISO or a procurement team what an agent
 * promised, whether the proof is current, and what changes when the proof weakens; then what it may
 * do and what went wrong before. Every section carries the time it describes ("as of"). The JSON
 * form is canonical: its hash is stored, and the Markdown and PDF are renderings of it.
 */
export interface TrustPacket {
  id: string;
  version: 2;
  generatedAt: string;
  requestedBy: string;
  audience: string | null;
  workflow: string | null;
  /**
   * The workflow the packet is scoped to (policy `workflows`): its actions, and how much of the
   * agent's grants and the policy's rules they touch. `missing`: the workflow was asked for but is
   * no longer in the policy, so the packet is not scoped.
   */
  scope: null | {
    workflow: string;
    actions: string[];
    missing: boolean;
    grants: { inScope: number; total: number };
    routingRules: { inScope: number; total: number };
    consequenceRules: { inScope: number; total: number };
  };
  agent: { id: string; name: string; owner: string; riskTier: string; status: string };
  summary: {
    asOf: string;
    score: number | null;
    tier: string | null;
    /** Score change over the last 30 days, from the daily series; null without a score 30 days ago. */
    change30d: number | null;
    trend: 'up' | 'down' | 'flat' | 'none';
    /** Freshness of the newest evidence item. */
    evidence: Freshness;
    /** One sentence a reviewer can quote, led by the worst fact. */
    verdict: string;
    verdictLevel: VerdictLevel;
    /** The facts behind the verdict, worst first (each a short clause). */
    facts: string[];
  };
  /** The three questions of page one, each answered in one short line (chat summaries carry these). */
  answers: { promised: string; proofCurrent: string; whenProofWeakens: string };
  pacts: {
    asOf: string;
    items: {
      id: string;
      title: string;
      severity: string;
      clauses: string[];
      verification: string;
      lastVerified: string | null;
      lastResult: 'passed' | 'failed' | null;
      /** Whole days since the latest verification. */
      ageDays: number | null;
      freshness: Freshness;
      evaluations: number;
      passRate: number | null;
      lastFailure: string | null;
    }[];
  };
  evidence: {
    asOf: string;
    /** Every evaluation recorded for the agent. */
    total: number;
    /** Items past the freshness window, of `total`. */
    staleCount: number;
    staleAfterDays: number;
    oldest: string | null;
    newest: string | null;
    byDimension: EvidenceAggregate[];
    byPact: EvidenceAggregate[];
    /** The most recent items (at most 50); `omitted` more are not shown. */
    items: {
      id: string;
      pactId: string | null;
      dimension: string;
      result: string;
      observedAt: string;
      ageDays: number;
      source: string;
      evidenceUrl: string | null;
      stale: boolean;
    }[];
    omitted: number;
  };
  /**
   * The score as of each day (UTC) of the last `days`, replayed from the evidence observed up to
   * that day with the live formula; an external score stands from its own time on. The last point
   * is the live score now.
   */
  scoreHistory: { asOf: string; days: number; from: string; points: { at: string; score: number; tier: string; source: 'computed' | 'external' }[] };
  runtimeControls: {
    asOf: string;
    status: string;
    grants: { scope: string; state: string; constraints: Record<string, unknown>; keepInContainment: boolean }[];
    needsApproval: { ruleId: string; action: string | null; approvers: string[]; quorum: number }[];
    /** Routing rules that add approvers or route differently when the proof weakens (stale evidence, low tier or score). */
    tightens: { ruleId: string; action: string | null; condition: string; effect: string; inForceNow: boolean }[];
    activeActions: { kind: string; actor: string; reason: string; since: string; until: string | null }[];
  };
  /** The policy's consequence rules that would change this agent, and what they would do. */
  consequences: {
    asOf: string;
    rules: { ruleId: string; when: string; effect: string; applies: boolean; conditionHoldsNow: boolean }[];
  };
  incidents: {
    asOf: string;
    openCount: number;
    items: { id: string; openedAt: string; closedAt: string | null; durationMinutes: number | null; steps: { kind: string; actor: string; reason: string; at: string; breakGlass?: true }[] }[];
  };
  approvals: {
    asOf: string;
    days: number;
    counts: { approved: number; denied: number; expired: number; cancelled: number; pending: number };
    medianMinutesToDecision: number | null;
  };
  auditIntegrity: { asOf: string; headSeq: string; headHash: string; verified: boolean; entries: number; firstBroken: { seq: string; problem: string } | null };
}
