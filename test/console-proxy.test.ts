import { describe, expect, it as plain } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { appTest } from './support/fixture.js';
import type { TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { consoleLink, consolePost } from './support/console.js';
import { clientAddress } from '../src/http/client-address.js';

/**
 * The console's sign-in limiter behind a load balancer (`ARMALO_TRUSTED_PROXY_HOPS`): it counts
 * failures per client, not per balancer, so one client's failures do not block everyone's sign-in,
 * and a client cannot dodge the limit by sending its own X-Forwarded-For.
 */
const POLICY = `
roles:
  ciso: { members: [{ slack: U0CISO }] }
permissions:
  contain: [ciso]
`;

const it = appTest({ policy: POLICY, slack: true, env: { ARMALO_PUBLIC_URL: 'https://armalo.example.test', ARMALO_TRUSTED_PROXY_HOPS: '1' } });
let app: TestApp;
let slack: FakeSlack;
it.beforeAll(({ app: started, slack: fake }) => {
  app = started;
  slack = fake;
});

/** A sign-in post as the balancer forwards it: the client's address appended to X-Forwarded-For. */
const postVia = (forwardedFor: string, token: string) => consolePost(app, '/console/login', { t: token }, undefined, { 'x-forwarded-for': forwardedFor });
const badToken = (i: number) => `${'B'.repeat(41)}${String(i).padStart(2, '0')}`;

describe('console sign-in behind a trusted proxy', () => {
  it('blocks the client that failed, not every client behind the same balancer; a spoofed X-Forwarded-For does not dodge it', async () => {
    for (let i = 0; i < 10; i++) expect((await postVia('203.0.113.7', badToken(i))).status).toBe(400);
    expect((await postVia('203.0.113.7', badToken(10))).status).toBe(429);
    // The same client naming another address in front of its own: the balancer's entry (the rightmost) still counts.
    const good = await consoleLink(app, slack, 'U0CISO');
    expect((await postVia('198.51.100.9, 203.0.113.7', good.token)).status).toBe(429);
    // Another client behind the same balancer signs in.
    const signedIn = await postVia('203.0.113.8', good.token);
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get('set-cookie')).toContain('armalo_session=');
  });
});

describe('console sign-in across replicas', () => {
  it('failures count in Redis: a client that failed on one replica is refused by another', async ({ startApp }) => {
    const replica = await startApp({ env: { ARMALO_ROLE: 'web' } });
    const via = (target: TestApp, token: string) => consolePost(target, '/console/login', { t: token }, undefined, { 'x-forwarded-for': '203.0.113.20' });
    // Five failures on each replica: ten in all.
    for (let i = 0; i < 5; i++) {
      expect((await via(app, badToken(20 + i))).status).toBe(400);
      expect((await via(replica, badToken(30 + i))).status).toBe(400);
    }
    expect((await via(app, badToken(40))).status).toBe(429);
    expect((await via(replica, badToken(41))).status).toBe(429);
  });
});

describe('clientAddress', () => {
  const req = (peer: string, forwardedFor?: string | string[]) => ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } }) as unknown as IncomingMessage;

  plain('with no trusted proxy, the peer; X-Forwarded-For is ignored', () => {
    expect(clientAddress(req('10.0.0.5', '203.0.113.7'), 0)).toBe('10.0.0.5');
  });
  plain('behind n proxies, the n-th entry from the right; the leftmost when there are fewer; the peer without the header', () => {
    expect(clientAddress(req('10.0.0.5', '198.51.100.9, 203.0.113.7'), 1)).toBe('203.0.113.7');
    expect(clientAddress(req('10.0.0.5', '198.51.100.9, 203.0.113.7, 10.0.0.4'), 2)).toBe('203.0.113.7');
    expect(clientAddress(req('10.0.0.5', ['198.51.100.9', '203.0.113.7']), 1)).toBe('203.0.113.7');
    expect(clientAddress(req('10.0.0.5', '203.0.113.7'), 3)).toBe('203.0.113.7');
    expect(clientAddress(req('10.0.0.5'), 1)).toBe('10.0.0.5');
    expect(clientAddress(req('10.0.0.5', ' , '), 1)).toBe('10.0.0.5');
    expect(clientAddress(req('10.0.0.5', 'x'.repeat(500)), 1)).toHaveLength(64);
  });
});
