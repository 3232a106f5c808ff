import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/domain/events.js';
import { isJobName, JOBS, parseJob, QUEUES, queueOf, type JobName, type JobPayload } from '../../src/queue/job-contracts.js';
import { BREAK_GLASS_NOTICE_JOB, DECOMMISSION_NOTICE_JOB, INCIDENT_UPDATE_JOB, LIFT_ACTION_JOB } from '../../src/agents/agents.service.js';
import { APPROVAL_CALLBACK_JOB, APPROVAL_CARDS_JOB, APPROVAL_TIMER_JOB, APPROVAL_TIMERS_CANCEL_JOB } from '../../src/approvals/approvals.service.js';
import { CONFIRMATION_REQUEST_JOB } from '../../src/confirmations/confirmations.service.js';
import { BUILD_PACKET_JOB, PACKET_DELIVERY_JOB } from '../../src/packets/packets.service.js';
import { POLICY_INVALID_NOTICE_JOB } from '../../src/policy/policy-watcher.js';
import { CONSEQUENCES_JOB } from '../../src/trust/consequences.service.js';
import { TRUST_DAILY_JOB, TRUST_NOTICE_JOB } from '../../src/trust/trust.service.js';
import { SLACK_DIRECTORY_JOB, SLACK_HOME_JOB } from '../../src/slack/slack-directory.js';
import { SWEEP_JOB } from '../../jobs/sweep.job.js';
import { AUDIT_BROKEN_NOTICE_JOB, AUDIT_VERIFY_FULL_JOB } from '../../src/audit/scheduled-verify.js';
import { FLEET_RECORDS_JOB, FLEET_UPDATE_JOB } from '../../src/fleet/fleet.service.js';

/** Issue 13 item 4: one map from job name to queue and payload schema, used by the writer and the workers. */

const ID = '0b7e4c5e-8f0a-4c1d-9a59-2d7f1f0d6a11';
const ID2 = '6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b';
const AT = '2026-12-02T10:00:00.000Z';

/** One payload per job, as its producer writes it: the type makes a job without a sample fail to compile. */
const SAMPLES: { [N in JobName]: JobPayload<N> } = {
  ...(Object.fromEntries(EVENT_TYPES.map((type) => [type, { id: ID, type, createdAt: AT, data: { agentId: 'bot-1', extra: 1 } }])) as unknown as {
    [N in (typeof EVENT_TYPES)[number]]: JobPayload<N>;
  }),
  'approval-callback': { requestId: ID },
  'lift-action': { actionId: ID, agentId: 'bot-1' },
  'fleet-records': { fleetIncidentId: ID },
  'approval-timer': { requestId: ID, kind: 'escalate' },
  'approval-timers-cancel': { requestId: ID },
  consequences: { agentId: 'bot-1', trigger: { kind: 'score', eventId: 'score:7', score: 610, tier: 'silver', previousScore: 720, previousTier: 'gold' } },
  'build-packet': { packetId: ID },
  sweep: {},
  'trust-daily': {},
  'audit-verify-full': {},
  'incident-update': { incidentId: ID, actionId: ID2, event: 'expired' },
  'fleet-update': { fleetIncidentId: ID, event: 'restore', run: { id: ID2, actor: 'slack:U0A', restored: 3, held: ['bot-1'], heldCount: 1, at: AT } },
  'approval-cards': { requestId: ID, remind: true },
  'confirmation-request': { confirmationId: ID },
  'packet-delivery': { packetId: ID },
  'policy-invalid': { contentHash: 'a'.repeat(64), file: '/etc/armalo/policy.yaml', problems: ['roles: required'], runningHash: 'b'.repeat(64), at: AT },
  'break-glass': { agentId: 'bot-1', actionId: ID, actor: 'slack:U0A', reason: 'pager', incidentId: null, at: AT },
  'agent-decommissioned': { agentId: 'bot-1', actor: 'slack:U0A', reason: 'retired', at: AT },
  'trust-notice': { agentId: 'bot-1', key: 'violation:ev1', kind: 'violation', pactId: 'pact-7', severity: 'high', description: null, evidenceUrl: null },
  'slack-home': { userId: 'U0ABC' },
  'slack-directory': {},
  'audit-broken-notice': { firstBrokenSeq: '3', problem: 'content does not match its hash (entry altered)', at: AT },
};

const names = Object.keys(JOBS) as JobName[];

describe('the job contracts', () => {
  it('name every job the services and schedulers start, each on a known queue', () => {
    const produced = [
      LIFT_ACTION_JOB, INCIDENT_UPDATE_JOB, BREAK_GLASS_NOTICE_JOB, DECOMMISSION_NOTICE_JOB,
      APPROVAL_TIMER_JOB, APPROVAL_CARDS_JOB, APPROVAL_CALLBACK_JOB, APPROVAL_TIMERS_CANCEL_JOB,
      CONFIRMATION_REQUEST_JOB, BUILD_PACKET_JOB, PACKET_DELIVERY_JOB, POLICY_INVALID_NOTICE_JOB,
      CONSEQUENCES_JOB, TRUST_NOTICE_JOB, FLEET_UPDATE_JOB, FLEET_RECORDS_JOB, TRUST_DAILY_JOB, SLACK_DIRECTORY_JOB, SLACK_HOME_JOB, SWEEP_JOB, AUDIT_BROKEN_NOTICE_JOB, AUDIT_VERIFY_FULL_JOB,
      ...EVENT_TYPES,
    ];
    expect(new Set(produced).size).toBe(produced.length);
    expect([...names].sort()).toEqual([...produced].sort());
    for (const name of names) {
      expect(Object.values(QUEUES)).toContain(queueOf(name));
      expect(typeof JOBS[name].payload.safeParse).toBe('function');
    }
    expect(EVENT_TYPES.every((t) => queueOf(t) === 'events')).toBe(true);
    expect(queueOf(APPROVAL_CALLBACK_JOB)).toBe('events');
    expect(queueOf(LIFT_ACTION_JOB)).toBe('timers');
    expect(queueOf(FLEET_RECORDS_JOB)).toBe('timers');
    expect(queueOf(TRUST_NOTICE_JOB)).toBe('notify');
  });

  it.each(names)('%s: the payload its producer writes parses after the trip through the outbox (JSON)', (name) => {
    const written = JSON.parse(JSON.stringify(SAMPLES[name])) as unknown;
    expect(parseJob(name, written)).toEqual(SAMPLES[name]);
  });

  it.each(names)('%s: a malformed payload is refused for good, naming the job', (name) => {
    let thrown: unknown;
    try {
      parseJob(name, name === 'sweep' || name === 'trust-daily' || name === 'audit-verify-full' || name === 'slack-directory' ? 'not an object' : { nothing: 'useful' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UnrecoverableError);
    expect((thrown as Error).message).toContain(`malformed ${name} payload`);
  });

  it('says which field is wrong', () => {
    expect(() => parseJob('lift-action', { actionId: 'not-a-uuid', agentId: 'bot-1' })).toThrow(/malformed lift-action payload: actionId: /);
  });

  it('holds the trust tier and severity to their enums (no string then cast)', () => {
    const score = { agentId: 'bot-1', key: 'score:1', kind: 'score', score: 500, tier: 'diamond', previousScore: null, previousTier: null };
    expect(() => parseJob('trust-notice', score)).toThrow(UnrecoverableError);
    expect(parseJob('trust-notice', { ...score, tier: 'bronze' })).toMatchObject({ tier: 'bronze' });
    const violation = { agentId: 'bot-1', key: 'violation:1', kind: 'violation', pactId: 'p', severity: 'catastrophic', description: null, evidenceUrl: null };
    expect(() => parseJob('trust-notice', violation)).toThrow(/malformed trust-notice payload/);
    expect(() => parseJob('consequences', { agentId: 'bot-1', trigger: { kind: 'score', eventId: 'e', score: 1, tier: 'tin', previousScore: null, previousTier: null } })).toThrow(UnrecoverableError);
  });

  it('refuses a job it does not know, for good', () => {
    expect(isJobName('mystery')).toBe(false);
    expect(isJobName('lift-action')).toBe(true);
    expect(() => parseJob('mystery' as JobName, {})).toThrow(UnrecoverableError);
    expect(() => parseJob('mystery' as JobName, {})).toThrow('unknown job mystery');
  });

  it('an event envelope keeps the fields of its data (the webhook carries them all)', () => {
    const event = { id: ID, type: 'agent.contained', createdAt: AT, data: { agentId: 'bot-1', reason: 'r', grants: [{ scope: 'a' }] } };
    expect(parseJob('agent.contained', event)).toEqual(event);
    expect(() => parseJob('agent.contained', { ...event, type: 'agent.vanished' })).toThrow(UnrecoverableError);
  });
});
