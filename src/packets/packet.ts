import type { Freshness } from '../domain/trust-score.js';

/**
 * A trust packet: one snapshot document that tells a CISO or a procurement team what an agent
 * promised, what the evidence shows and how fresh it is, what it may do, and what went wrong
 * before. Every section carries the time it describes ("as of"). The JSON form is canonical: its
 * hash is stored, and the Markdown and PDF are renderings of it.
 */
export interface TrustPacket {
  id: string;
  version: 1;
  generatedAt: string;
  requestedBy: string;
  audience: string | null;
  workflow: string | null;
  agent: { id: string; name: string; owner: string; riskTier: string; status: string };
  summary: {
    asOf: string;
    score: number | null;
    tier: string | null;
    /** Score change over the last 30 days; null without history. */
    change30d: number | null;
    trend: 'up' | 'down' | 'flat' | 'none';
    evidence: Freshness;
    /** One sentence a reviewer can quote. */
    verdict: string;
  };
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
      freshness: Freshness;
    }[];
  };
  evidence: {
    asOf: string;
    staleCount: number;
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
  };
  scoreHistory: { asOf: string; days: number; points: { at: string; score: number; tier: string }[] };
  runtimeControls: {
    asOf: string;
    status: string;
    grants: { scope: string; state: string; constraints: Record<string, unknown>; keepInContainment: boolean }[];
    needsApproval: { ruleId: string; action: string | null; approvers: string[]; quorum: number }[];
    activeActions: { kind: string; actor: string; reason: string; since: string; until: string | null }[];
  };
  incidents: {
    asOf: string;
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
