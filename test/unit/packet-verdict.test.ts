import { describe, expect, it } from 'vitest';
import { verdictOf, type VerdictSituation } from '../../src/packets/verdict.js';

/** A healthy agent: fresh evidence, every pact passed, nothing open. Each row of the table changes it. */
function base(): VerdictSituation {
  return {
    name: 'Underwriting bot',
    score: 850,
    tier: 'gold',
    status: 'active',
    evidence: { total: 120, staleCount: 0, staleAfterDays: 30, newest: 'fresh', newestAgeDays: 1, staleDimensions: [] },
    pacts: [
      { title: 'Never sends PII outside the company', severity: 'critical', lastResult: 'passed', ageDays: 2, freshness: 'fresh' },
      { title: 'Stays within payment limits', severity: 'high', lastResult: 'passed', ageDays: 3, freshness: 'fresh' },
    ],
    openIncidents: [],
    revokedGrants: [],
    auditBroken: null,
  };
}

type Row = { situation: string; change: (s: VerdictSituation) => void; level: 'alert' | 'caution' | 'ok'; leads: RegExp; mentions?: RegExp[] };

const table: Row[] = [
  { situation: 'all good', change: () => {}, level: 'ok', leads: /^Underwriting bot scores 850 \(gold\) on fresh evidence: all 2 pacts passed/ },
  {
    situation: 'failing critical pact',
    change: (s) => {
      s.pacts[0]!.lastResult = 'failed';
    },
    level: 'alert',
    leads: /^Underwriting bot FAILED its critical pact “Never sends PII outside the company” at the latest verification \(2 days ago\)/,
    mentions: [/should not be relied on/],
  },
  {
    situation: 'stale evidence (nothing recent at all)',
    change: (s) => {
      s.evidence = { ...s.evidence, staleCount: 120, newest: 'stale', newestAgeDays: 45, staleDimensions: ['safety', 'accuracy'] };
      for (const p of s.pacts) p.freshness = 'stale';
    },
    level: 'alert',
    leads: /^Underwriting bot has only stale evidence: the newest of 120 items is 45 days old, past the 30-day staleness limit/,
  },
  {
    situation: 'stale evidence in one dimension',
    change: (s) => {
      s.evidence = { ...s.evidence, staleCount: 40, staleDimensions: ['accuracy'] };
    },
    level: 'alert',
    leads: /^Underwriting bot has stale evidence: 40 of 120 items are past the 30-day staleness limit, and accuracy has no evidence newer than 30 days/,
  },
  {
    situation: 'old items only, every dimension current',
    change: (s) => {
      s.evidence = { ...s.evidence, staleCount: 80 };
    },
    level: 'caution',
    leads: /^Underwriting bot has stale evidence: 80 of 120 items are past the 30-day staleness limit \(every dimension also has newer evidence\)\. It scores 850 \(gold\)\.$/,
  },
  {
    situation: 'open incident',
    change: (s) => {
      s.status = 'contained';
      s.openIncidents = [{ openedAt: '2026-11-30T10:00:00.000Z' }];
    },
    level: 'alert',
    leads: /^Underwriting bot is under an open incident since 2026-11-30 \(contained\)/,
  },
  {
    situation: 'revoked grant',
    change: (s) => {
      s.revokedGrants = ['payments:transfer'];
    },
    level: 'caution',
    leads: /^Underwriting bot has 1 revoked grant \(payments:transfer\)\. It scores 850 \(gold\)\.$/,
  },
  {
    situation: 'contained without an open incident',
    change: (s) => {
      s.status = 'contained';
    },
    level: 'caution',
    leads: /^Underwriting bot is contained\./,
  },
  {
    situation: 'revoked agent',
    change: (s) => {
      s.status = 'revoked';
    },
    level: 'alert',
    leads: /^Underwriting bot is revoked: every grant is withdrawn/,
  },
  {
    situation: 'no evidence at all',
    change: (s) => {
      s.score = null;
      s.tier = null;
      s.evidence = { total: 0, staleCount: 0, staleAfterDays: 30, newest: 'none', newestAgeDays: null, staleDimensions: [] };
      for (const p of s.pacts) Object.assign(p, { lastResult: null, ageDays: null, freshness: 'none' });
    },
    level: 'alert',
    leads: /^Underwriting bot has never verified its critical pact “Never sends PII outside the company”; and has no evaluation evidence at all: nothing proves what it promised\. It has no trust score yet\.$/,
  },
  {
    situation: 'broken audit chain',
    change: (s) => {
      s.auditBroken = { seq: '42' };
    },
    level: 'alert',
    leads: /^Underwriting bot has a broken audit chain \(first broken entry 42\)/,
  },
  {
    situation: 'ageing evidence',
    change: (s) => {
      s.evidence = { ...s.evidence, newest: 'ageing', newestAgeDays: 12 };
    },
    level: 'caution',
    leads: /^Underwriting bot has ageing evidence: the newest item is 12 days old\. It scores 850 \(gold\)\.$/,
  },
  {
    situation: 'the issue: failing critical pact, 80 of 120 stale, incident closed',
    change: (s) => {
      s.pacts[0]!.lastResult = 'failed';
      s.evidence = { ...s.evidence, staleCount: 80 };
    },
    level: 'alert',
    leads: /^Underwriting bot FAILED its critical pact .*; and has stale evidence: 80 of 120 items are past the 30-day staleness limit/,
  },
  {
    situation: 'everything at once: worst first, three shown',
    change: (s) => {
      s.status = 'contained';
      s.pacts[0]!.lastResult = 'failed';
      s.evidence = { ...s.evidence, staleCount: 40, staleDimensions: ['accuracy'] };
      s.openIncidents = [{ openedAt: '2026-11-30T10:00:00.000Z' }];
      s.revokedGrants = ['mail:send'];
    },
    level: 'alert',
    leads: /^Underwriting bot FAILED its critical pact .*; has stale evidence: .*; and is under an open incident since 2026-11-30 \(contained\) \(and 1 more finding below\)\./,
  },
];

describe('the verdict of a trust packet', () => {
  it.each(table)('$situation', ({ change, level, leads, mentions }) => {
    const s = base();
    change(s);
    const v = verdictOf(s);
    expect(v.level).toBe(level);
    expect(v.sentence).toMatch(leads);
    for (const m of mentions ?? []) expect(v.sentence).toMatch(m);
    if (level === 'ok') expect(v.facts).toEqual([]);
    else expect(v.sentence.startsWith(`${s.name} ${v.facts[0]}`)).toBe(true);
  });

  it('never calls the evidence fresh when any item is stale', () => {
    for (const row of table) {
      const s = base();
      row.change(s);
      if (s.evidence.staleCount > 0) expect(verdictOf(s).sentence, row.situation).not.toMatch(/fresh/i);
    }
  });

  it('orders the facts: failing critical pact, stale evidence, open incident, revoked grant', () => {
    const s = base();
    s.revokedGrants = ['mail:send'];
    s.openIncidents = [{ openedAt: '2026-11-30T10:00:00.000Z' }];
    s.evidence = { ...s.evidence, staleCount: 40, staleDimensions: ['accuracy'] };
    s.pacts[0]!.lastResult = 'failed';
    const facts = verdictOf(s).facts;
    expect(facts.map((f) => f.split(' ')[0] + ' ' + f.split(' ')[1])).toEqual(['FAILED its', 'has stale', 'is under', 'has 1']);
  });
});
