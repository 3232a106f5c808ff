import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { checkCallbackTarget, forbiddenAddressReason } from '../src/net/callback-guard.js';
import { postPinned } from '../src/net/pinned-post.js';

/** Issue 10 item 10: approval callbacks may not reach internal addresses (SSRF). */

/** A local HTTP server that records what reaches it and answers with `answer` (status and headers). */
class Receiver {
  readonly hits: { url: string; host: string | undefined }[] = [];
  answer: () => { status: number; headers?: Record<string, string> } = () => ({ status: 200 });
  private server: Server | undefined;
  port = 0;
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.hits.push({ url: req.url ?? '', host: req.headers.host });
        const { status, headers } = this.answer();
        res.writeHead(status, headers);
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as AddressInfo).port;
    return this;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const SECRET = 'whsec_callbacks_0123456789abcdef';
const agent = { name: 'Callback bot', owner: 'owner@example.com', riskTier: 'low', grants: [{ scope: 'mail:send' }] };
const oncall = { actor: 'slack:U0ONCALL1', platform: 'slack' as const, slack: 'U0ONCALL1', emails: [] as string[] };

const internal = new Receiver();
const allowed = new Receiver();
/** No ARMALO_CALLBACK_HOSTS: public addresses only. */
let open: TestApp;
/** ARMALO_CALLBACK_HOSTS names one local receiver (host and port). */
let listed: TestApp;

// Both instances stream events to the webhook receiver; each has a database and queue prefix of its own.
const it = appTest({ policy: APPROVALS_TEST_POLICY, events: { secret: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: first, startApp }) => {
  await Promise.all([internal.start(), allowed.start()]);
  open = first;
  listed = await startApp({ isolated: true, env: { ARMALO_CALLBACK_HOSTS: `127.0.0.1:${allowed.port}` } });
  for (const app of [open, listed]) await app.call('PUT', '/v1/agents/cb-bot', agent);
});

afterAll(async () => {
  await Promise.all([open?.stop(), listed?.stop()]);
  await Promise.all([internal.stop(), allowed.stop()]);
});

const create = (app: TestApp, callbackUrl: string) => app.call('POST', '/v1/approval-requests', { agentId: 'cb-bot', action: 'mail:send', justification: 'callback test', callbackUrl });
const countRequests = async (app: TestApp) => Number((await app.db.selectFrom('approval_requests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

describe('a callbackUrl to an internal address is refused at creation (400, nothing stored)', () => {
  // PORT is the internal receiver's port (known once it listens).
  const hostile = [
    'http://127.0.0.1:PORT/cb',
    'http://0x7f000001:PORT/cb',
    'http://2130706433:PORT/cb',
    'http://0177.0.0.1:PORT/cb',
    'http://127.1:PORT/cb',
    'http://[::1]:PORT/cb',
    'http://[::ffff:127.0.0.1]:PORT/cb',
    'http://localhost:PORT/cb',
    'http://0.0.0.0:PORT/cb',
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'http://[::ffff:169.254.169.254]/latest/meta-data/',
    'http://10.1.2.3/cb',
    'http://172.16.0.1/cb',
    'http://192.168.1.1/cb',
    'http://100.64.0.1/cb',
    'http://[fe80::1]/cb',
    'http://[fd00::1]/cb',
    'http://[::]/cb',
    'https://127.0.0.1/cb',
  ];
  it.each(hostile)('%s', async (shown) => {
    const url = shown.replace('PORT', String(internal.port));
    const before = await countRequests(open);
    const res = await create(open, url);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^callbackUrl refused: host \S+ (is|resolves to)/);
    expect(res.body.error.message).toMatch(/loopback|private|link-local|unspecified|carrier-grade/);
    expect(await countRequests(open)).toBe(before);
  });

  it('the internal receiver was never called', () => {
    expect(internal.hits).toEqual([]);
  });

  it('with an allow-list, a host not on it is refused, even on the same address', async () => {
    const res = await create(listed, `http://127.0.0.1:${internal.port}/cb`);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain(`callbackUrl refused: host 127.0.0.1:${internal.port} is not in ARMALO_CALLBACK_HOSTS`);
    expect((await create(listed, `http://localhost:${allowed.port}/cb`)).status).toBe(400);
  });
});

describe('at delivery', () => {
  async function approveAndSettle(requestId: string): Promise<void> {
    await listed.approvals.decide(requestId, oncall, 'approve', null);
    // The callback job ends for good (refused or not retried): wait for that, not for a while.
    await waitFor(
      async () => {
        const rows = await listed.db.selectFrom('outbox').select(['id', 'payload']).where('job_name', '=', 'approval-callback').execute();
        const row = rows.find((r) => (r.payload as { requestId?: string }).requestId === requestId);
        const job = row ? await listed.queues.events.getJob(row.id) : undefined;
        return job !== undefined && (await job.isFailed());
      },
      8000,
      'the callback job to fail for good',
    );
  }

  it('an allow-listed receiver gets the callback', async () => {
    allowed.answer = () => ({ status: 200 });
    const created = await create(listed, `http://127.0.0.1:${allowed.port}/ok`);
    expect(created.status).toBe(201);
    await listed.approvals.decide(created.body.id, oncall, 'approve', null);
    await waitFor(() => allowed.hits.some((h) => h.url === '/ok'), 8000, 'the callback');
  });

  it('a redirect from an allowed receiver to an internal address is not followed, nor retried', async () => {
    allowed.answer = () => ({ status: 302, headers: { location: `http://127.0.0.1:${internal.port}/stolen` } });
    const created = await create(listed, `http://127.0.0.1:${allowed.port}/redirect`);
    expect(created.status).toBe(201);
    await approveAndSettle(created.body.id);
    expect(allowed.hits.filter((h) => h.url === '/redirect')).toHaveLength(1);
    expect(internal.hits).toEqual([]);
  });

  it('a stored URL that is no longer allowed is checked again and not called', async () => {
    allowed.answer = () => ({ status: 200 });
    const created = await create(listed, `http://127.0.0.1:${allowed.port}/later`);
    // As if the allow-list had been narrowed (or the row written before this check existed).
    await listed.db.updateTable('approval_requests').set({ callback_url: `http://127.0.0.1:${internal.port}/later` }).where('id', '=', created.body.id).execute();
    await approveAndSettle(created.body.id);
    expect(internal.hits).toEqual([]);
    // The worker logs the failure after BullMQ has marked the job failed: wait for the line.
    await waitFor(() => listed.logs.text().includes('approval callback refused: host 127.0.0.1'), 5000, 'the refusal in the log');
  });
});

describe('the guard', () => {
  it.each([
    ['127.0.0.1', 'a loopback address'],
    ['127.255.255.254', 'a loopback address'],
    ['10.0.0.1', 'a private address'],
    ['172.31.255.255', 'a private address'],
    ['192.168.0.1', 'a private address'],
    ['169.254.169.254', 'a link-local address (cloud metadata lives here)'],
    ['100.64.0.1', 'a carrier-grade NAT address'],
    ['100.127.255.255', 'a carrier-grade NAT address'],
    ['0.0.0.0', 'an unspecified ("this network") address'],
    ['::', 'the unspecified address'],
    ['::1', 'a loopback address'],
    ['fe80::1', 'a link-local address'],
    ['febf::1', 'a link-local address'],
    ['fc00::1', 'a private (unique local) address'],
    ['fdff:ffff::1', 'a private (unique local) address'],
    ['::ffff:127.0.0.1', 'a loopback address (as IPv6 ::ffff:127.0.0.1)'],
    ['::ffff:7f00:1', 'a loopback address (as IPv6 ::ffff:7f00:1)'],
    ['::ffff:a9fe:a9fe', 'a link-local address (cloud metadata lives here) (as IPv6 ::ffff:a9fe:a9fe)'],
    ['64:ff9b::a00:1', 'a private address (as IPv6 64:ff9b::a00:1)'],
    ['::7f00:1', 'an IPv4-compatible address'],
    ['fe80::1%eth0', 'a link-local address'],
  ])('%s is %s', (address, reason) => {
    expect(forbiddenAddressReason(address)).toBe(reason);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '169.255.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (address) => {
    expect(forbiddenAddressReason(address)).toBeNull();
  });

  it('checks every address a name resolves to, and pins the one it checked', async () => {
    const resolveTo = (addresses: string[]) => async () => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    const mixed = await checkCallbackTarget('https://hooks.example.net/cb', [], resolveTo(['93.184.216.34', '10.0.0.7']));
    expect(mixed).toMatchObject({ ok: false, retryable: false });
    expect(!mixed.ok && mixed.reason).toContain('host hooks.example.net resolves to 10.0.0.7, a private address');
    const v6 = await checkCallbackTarget('https://hooks.example.net/cb', [], resolveTo(['2606:4700:4700::1111', '::1']));
    expect(v6.ok).toBe(false);
    const good = await checkCallbackTarget('https://hooks.example.net/cb', [], resolveTo(['93.184.216.34']));
    expect(good).toMatchObject({ ok: true, address: { address: '93.184.216.34', family: 4 } });
    const unresolved = await checkCallbackTarget('https://nowhere.invalid/cb', [], async () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' })));
    expect(unresolved).toMatchObject({ ok: false, retryable: true });
  });

  it('the delivery connects to the pinned address, not to what the name resolves to now', async () => {
    internal.answer = () => ({ status: 204 });
    // rebinding.invalid resolves nowhere: only the pinned address can have been used.
    const res = await postPinned(new URL(`http://rebinding.invalid:${internal.port}/pinned`), { address: '127.0.0.1', family: 4 }, { headers: {}, body: '{}', timeoutMs: 5000 });
    expect(res.status).toBe(204);
    expect(internal.hits.pop()).toEqual({ url: '/pinned', host: `rebinding.invalid:${internal.port}` });
  });
});
