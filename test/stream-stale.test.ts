import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { TcpProxy } from './support/tcp-proxy.js';

// A replica that cannot vouch for its permission view refuses new streams (503) until it can again.
const STALE_AFTER_MS = 1500;
let app: TestApp;
const proxy = new TcpProxy('127.0.0.1', 6379);

const openStream = (signal?: AbortSignal) => fetch(`${app.url}/v1/stream`, { headers: { authorization: `Bearer ${TOKEN}` }, ...(signal ? { signal } : {}) });

const it = appTest({
  env: { ARMALO_ROLE: 'web', ARMALO_VIEW_STALE_AFTER_MS: String(STALE_AFTER_MS) },
  // Redis through the proxy the test cuts.
  beforeStart: async () => ({ REDIS_URL: `redis://127.0.0.1:${await proxy.start()}` }),
});
it.beforeAll(async ({ app: started }) => {
  app = started;
  await app.call('PUT', '/v1/agents/stale-bot', sampleAgent);
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await proxy.stop();
}, 60_000);

describe('GET /v1/stream on a replica whose view is stale', () => {
  it('answers 503 while the view is stale, and streams again once it is fresh', async () => {
    const before = new AbortController();
    const ok = await openStream(before.signal);
    expect(ok.status).toBe(200);
    before.abort();

    await proxy.cut();
    await waitFor(() => !app.view!.isFresh(), STALE_AFTER_MS + 3000, 'the view to go stale');
    const refused = await openStream();
    expect(refused.status).toBe(503);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unavailable');
    expect(body.error.message).toContain('view_stale');

    await proxy.start();
    await waitFor(() => app.view!.isFresh(), 10_000, 'the view to be fresh again');
    const again = new AbortController();
    const back = await openStream(again.signal);
    expect(back.status).toBe(200);
    const reader = back.body!.getReader();
    let text = '';
    while (!text.includes('event: snapshot')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('stale-bot');
    again.abort();
  }, 60_000);
});
