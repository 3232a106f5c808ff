import { createRequire } from 'node:module';
import { describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';

// Issue 11, item 6: the Teams SDK (teams-ai over botbuilder) costs about 60 MB per process. A
// replica with Teams configured loads it with its first Teams activity (or notice), not at start.
const requireHere = createRequire(import.meta.url);
const teamsSdkLoaded = () => Object.keys(requireHere.cache).some((p) => p.includes('/node_modules/@microsoft/teams-ai/') || p.includes('/node_modules/botbuilder/'));

let app: TestApp;
let connector: FakeConnector;

const it = appTest({ teams: true });
it.beforeAll(({ app: started, connector: fakeConnector }) => {
  app = started;
  connector = fakeConnector;
});

describe('Teams SDK loads on first use', () => {
  it('a started replica (web and worker, Teams on) has not loaded the Teams SDK; the first message loads it and is answered', async () => {
    expect((await app.call('GET', '/healthz')).status).toBe(200);
    expect(teamsSdkLoaded()).toBe(false);

    const activity = teamsMessage(connector.url, { text: 'help', aadObjectId: '00000000-0000-0000-0000-0000000000a1' });
    const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
    expect(res.status).toBeLessThan(300);
    await waitFor(() => connector.calls.length > 0, 10_000, 'the reply to the first Teams message');
    expect(JSON.stringify(connector.calls[0]!.body)).toContain('contain <agent>');
    expect(teamsSdkLoaded()).toBe(true);
  });

  it('a body that is not JSON is refused with 400 before the SDK is involved', async () => {
    const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    expect(res.status).toBe(400);
  });
});
