import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';
import { packetLink } from '../src/packets/packet-links.js';

const PROC = '00000000-0000-0000-0000-0000000000b1';
const LINK_SECRET = 'link-secret-for-tests-0123456789abcdef';
const POLICY = `
roles:
  procurement: { members: [{ teams: ${PROC} }] }
permissions:
  packet: [procurement]
`;
let app: TestApp;
let connector: FakeConnector;

const it = appTest({
  policy: POLICY,
  teams: true,
  env: { ARMALO_PUBLIC_URL: 'https://armalo.example.com', ARMALO_LINK_SECRET: LINK_SECRET },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started, connector: fakeConnector }) => {
  app = started;
  connector = fakeConnector;
  await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
});

describe('trust packets in Teams', () => {
  it('posts a summary card whose signed link downloads the PDF while valid; a wrong signature or an expired link is refused', async () => {
    const activity = teamsMessage(connector.url, { text: 'packet underwriting-bot for Fortress Bank', aadObjectId: PROC });
    await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
    const chat = activity.conversation.id;
    await waitFor(() => connector.sent(chat).some((c) => JSON.stringify(c.body).includes('Trust packet: Underwriting bot')), 10_000, 'the packet card');
    const card = connector.sent(chat).find((c) => JSON.stringify(c.body).includes('Trust packet: Underwriting bot'))!.body.attachments[0].content;
    const url = new URL(card.actions[0].url as string);
    expect(url.origin).toBe('https://armalo.example.com');
    const local = `${app.url}${url.pathname}${url.search}`;
    const ok = await fetch(local);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await ok.arrayBuffer()).subarray(0, 5).toString()).toBe('%PDF-');

    const forged = local.replace(/sig=[0-9a-f]{4}/, 'sig=0000');
    expect((await fetch(forged)).status).toBe(403);
    const id = url.pathname.slice('/packets/'.length, -'.pdf'.length);
    const expired = new URL(packetLink(app.url, LINK_SECRET, id, new Date(Date.now() - 2 * 86_400_000)));
    expect((await fetch(expired)).status).toBe(410);
    expect((await fetch(`${app.url}/packets/${id}.pdf`)).status).toBe(403);
  });
});
