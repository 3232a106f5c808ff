import { describe, expect } from 'vitest';
import { cleanRedisPrefix, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { SWEEP_JOB } from '../jobs/sweep.job.js';
import { TRUST_DAILY_JOB } from '../src/trust/trust.service.js';
import { AUDIT_VERIFY_FULL_JOB } from '../src/audit/scheduled-verify.js';
import { SLACK_DIRECTORY_JOB } from '../src/slack/slack-directory.js';

/**
 * The worker's watchdog: a Redis that loses its data (no persistence, a failover) loses the job
 * schedulers, and with them the sweep that rebuilds every other lost timer. The worker puts back
 * whichever is missing. The check runs every 30 s in production; here every 200 ms.
 */
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1, email: oncall@example.com }] }
permissions:
  contain: [security-oncall]
channels:
  incidents: { slack: C0INCIDENTS }
`;

let app: TestApp;
let prefix: string;
const it = appTest({ policy: POLICY, slack: true, appOptions: { worker: { scheduleWatchMs: 200 } } });
let directoryLookups: () => number;
it.beforeAll(({ app: started, prefix: p, slack }) => {
  app = started;
  prefix = p;
  directoryLookups = () => slack!.calls.filter((c) => c.method === 'users.lookupByEmail' || c.method === 'users.list').length;
});

const schedulers = async () => ({
  sweep: !!(await app.queues.timers.getJobScheduler(SWEEP_JOB)),
  trustDaily: !!(await app.queues.timers.getJobScheduler(TRUST_DAILY_JOB)),
  auditVerify: !!(await app.queues.timers.getJobScheduler(AUDIT_VERIFY_FULL_JOB)),
  slackDirectory: !!(await app.queues.notify.getJobScheduler(SLACK_DIRECTORY_JOB)),
});
const ALL = { sweep: true, trustDaily: true, auditVerify: true, slackDirectory: true };

describe('the worker puts back job schedulers Redis lost', () => {
  it('every repeating job (sweep, daily trust, full audit verify, Slack directory) is scheduled again, and the sweep runs again', async () => {
    expect(await schedulers()).toEqual(ALL);
    await waitFor(() => directoryLookups() > 0, 10_000, 'the first Slack directory refresh');
    const before = directoryLookups();

    // What a Redis without persistence keeps after a restart: nothing (only this test's keys).
    expect(await cleanRedisPrefix(prefix)).toBeGreaterThan(0);
    await waitFor(async () => JSON.stringify(await schedulers()) === JSON.stringify(ALL), 10_000, 'every scheduler to be put back');
    // Upserting a scheduler with `every` runs its job at once: the sweep and the Slack directory
    // refresh run again, without waiting for their next period.
    await waitFor(async () => ((await app.queues.timers.getJobCounts('completed')).completed ?? 0) > 0, 10_000, 'a sweep to run after the loss');
    await waitFor(() => directoryLookups() > before, 10_000, 'the Slack directory refresh to run again');
  });
});
