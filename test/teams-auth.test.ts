import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

// With an app id configured, every activity's Bot Framework token is checked: signature (against
// keys from the OpenID metadata, here a local server with locally generated keys), issuer,
// audience, expiry and endorsement. Nothing reaches Microsoft.
const APP_ID = '11111111-2222-3333-4444-555555555555';
const ISSUER = 'https://api.botframework.com';
const SERVICE_URL = 'https://smba.example.com/teams/';
let app: TestApp;
let keys: Server;
const good = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 });

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');
function token(claims: Record<string, unknown>, key: KeyObject = good.privateKey, kid = 'test-key'): string {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
  const body = b64url(JSON.stringify(claims));
  const signer = createSign('RSA-SHA256');
  signer.update(`${head}.${body}`);
  return `${head}.${body}.${signer.sign(key).toString('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const claims = (over: Record<string, unknown> = {}) => ({ iss: ISSUER, aud: APP_ID, nbf: now() - 60, exp: now() + 3600, serviceurl: SERVICE_URL, ...over });

const it = appTest({
  env: { ARMALO_ROLE: 'web', TEAMS_APP_ID: APP_ID, TEAMS_APP_PASSWORD: 'not-used-for-inbound-checks-0123', TEAMS_TOKEN_ISSUER: ISSUER },
  // The OpenID metadata and keys are served before the app starts.
  beforeStart: async () => {
    keys = createServer((req, res) => {
      const base = `http://127.0.0.1:${(keys.address() as AddressInfo).port}`;
      if (req.url === '/openid') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: ISSUER, jwks_uri: `${base}/keys`, id_token_signing_alg_values_supported: ['RS256'] }));
      } else {
        const jwk = good.publicKey.export({ format: 'jwk' });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...jwk, kid: 'test-key', use: 'sig', alg: 'RS256', endorsements: ['msteams'] }] }));
      }
    });
    await new Promise<void>((resolve) => keys.listen(0, '127.0.0.1', resolve));
    return { TEAMS_OPENID_METADATA_URL: `http://127.0.0.1:${(keys.address() as AddressInfo).port}/openid` };
  },
});
it.beforeAll(({ app: started }) => {
  app = started;
});

afterAll(async () => {
  await app?.stop();
  keys?.closeAllConnections();
  await new Promise<void>((resolve) => (keys ? keys.close(() => resolve()) : resolve()));
});

// A conversationUpdate needs no reply, so an accepted one completes without calling Teams back.
const activity = {
  type: 'conversationUpdate',
  id: 'cu-auth',
  serviceUrl: SERVICE_URL,
  channelId: 'msteams',
  from: { id: '29:admin', aadObjectId: '00000000-0000-0000-0000-0000000000a1' },
  conversation: { id: '19:auth@thread.tacv2', conversationType: 'channel', tenantId: 'tenant-1' },
  recipient: { id: `28:${APP_ID}` },
  membersAdded: [{ id: `28:${APP_ID}` }],
  channelData: { tenant: { id: 'tenant-1' } },
};

async function send(authorization?: string) {
  const res = await fetch(`${app.url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: JSON.stringify(activity),
  });
  return res.status;
}

describe('Bot Framework token validation', () => {
  it.each([
    ['no token', undefined],
    ['a malformed token', 'Bearer not.a.jwt'],
    ['an expired token', `Bearer ${token(claims({ nbf: now() - 7200, exp: now() - 3600 }))}`],
    ['a token for another bot (audience)', `Bearer ${token(claims({ aud: '99999999-2222-3333-4444-555555555555' }))}`],
    ['a token from another issuer', `Bearer ${token(claims({ iss: 'https://evil.example.com' }))}`],
    ['a token signed with another key', `Bearer ${token(claims(), rogue.privateKey)}`],
  ])('refuses %s', async (_name, authorization) => {
    expect(await send(authorization)).toBe(401);
    const stored = await app.db.selectFrom('teams_conversations').select('conversation_id').execute();
    expect(stored).toHaveLength(0);
  });

  it('accepts a valid token', async () => {
    expect(await send(`Bearer ${token(claims())}`)).toBe(200);
    const stored = await app.db.selectFrom('teams_conversations').select('conversation_id').execute();
    expect(stored.map((s) => s.conversation_id)).toEqual(['19:auth@thread.tacv2']);
  });
});
