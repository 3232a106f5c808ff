import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';
import type { FakeSlack } from './support/fake-slack.js';
import { blockActionBody } from './support/slack-requests.js';

// Socket Mode: the app opens a WebSocket (URL from apps.connections.open on the fake Web API) and
// Slack pushes envelopes through it; the app acknowledges each envelope with its answer.
let app: TestApp;
let slack: FakeSlack;
let wss: WebSocketServer;
let socket: WebSocket | undefined;
const acks = new Map<string, any>();

const it = appTest({
  // Packets too: a packet command is not an action with an idempotency key, so only the replay guard stops a second one.
  policy: SLACK_TEST_POLICY.replace('permissions:\n', 'permissions:\n  packet: [security-oncall]\n'),
  slack: { signed: false },
  env: { ARMALO_ROLE: 'web', SLACK_APP_TOKEN: 'xapp-1-test-app-token-0123456789' },
  // The Socket Mode server is listening, and the fake Web API hands out its URL, before the app starts.
  beforeStart: async ({ slack: fake }) => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    fake!.socketUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/link`;
    wss.on('connection', (ws) => {
      socket = ws;
      ws.on('message', (raw) => {
        const msg = JSON.parse(raw.toString());
        if (msg.envelope_id) acks.set(msg.envelope_id, msg);
      });
      ws.send(JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: 'A0APP' }, debug_info: { host: 'fake', approximate_connection_time: 3600 } }));
    });
  },
});
it.beforeAll(({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
});

afterAll(async () => {
  // The app first, so its socket client does not try to reconnect to a server that is going away.
  await app?.stop();
  for (const client of wss?.clients ?? []) client.terminate();
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
});

/** Pushes one envelope over the socket and waits for its acknowledgement. */
async function push(type: 'slash_commands' | 'interactive', payload: object, retryAttempt = 0): Promise<any> {
  const envelopeId = randomUUID();
  socket!.send(JSON.stringify({ envelope_id: envelopeId, type, accepts_response_payload: type === 'slash_commands', payload, retry_attempt: retryAttempt, retry_reason: retryAttempt ? 'timeout' : '' }));
  await waitFor(() => acks.has(envelopeId), 10_000, `the acknowledgement of envelope ${envelopeId}`);
  return acks.get(envelopeId);
}

const command = (text: string, trigger: string) => ({
  token: 'deprecated',
  team_id: 'T0TEAM',
  team_domain: 'example',
  channel_id: 'C0RANDOM',
  channel_name: 'ops',
  user_id: 'U0ONCALL1',
  user_name: 'oncall1',
  command: '/armalo',
  text,
  api_app_id: 'A0APP',
  response_url: slack.responseUrl(`socket-${trigger}`),
  trigger_id: trigger,
});

describe('Socket Mode', () => {
  it('connects without a public URL, and a slash command pushed over the socket contains the agent', async () => {
    expect(app.slack?.mode).toBe('socket');
    expect(slack.calls.some((c) => c.method === 'apps.connections.open')).toBe(true);
    await waitFor(() => socket !== undefined, 5000, 'the WebSocket connection');
    await app.call('PUT', '/v1/agents/socket-bot', sampleAgent);
    const envelopeId = randomUUID();
    socket!.send(
      JSON.stringify({
        envelope_id: envelopeId,
        type: 'slash_commands',
        accepts_response_payload: true,
        payload: {
          token: 'deprecated',
          team_id: 'T0TEAM',
          team_domain: 'example',
          channel_id: 'C0RANDOM',
          channel_name: 'ops',
          user_id: 'U0ONCALL1',
          user_name: 'oncall1',
          command: '/armalo',
          text: 'contain socket-bot seen over the socket',
          api_app_id: 'A0APP',
          response_url: slack.responseUrl('socket'),
          trigger_id: `${Date.now()}.socket.abc`,
        },
      }),
    );
    await waitFor(() => acks.has(envelopeId), 5000, 'the envelope acknowledgement');
    expect(JSON.stringify(acks.get(envelopeId).payload)).toContain('Contained socket-bot');
    const decision = await app.call('POST', '/v1/decisions', { agentId: 'socket-bot', action: 'crm:write' });
    expect(decision.body.decision).toBe('deny');
    // No HTTP endpoint for Slack in Socket Mode: requests there are not Slack's.
    expect((await fetch(`${app.url}/slack/events`, { method: 'POST' })).status).toBe(404);
  });

  it('a slash command Slack delivers again (same trigger id, a new envelope) is acknowledged as already applied and runs once', async () => {
    await waitFor(() => socket !== undefined, 5000, 'the WebSocket connection');
    await app.call('PUT', '/v1/agents/socket-replay-bot', sampleAgent);
    const packets = async () => (await app.db.selectFrom('trust_packets').select('id').where('agent_id', '=', 'socket-replay-bot').execute()).length;
    const trigger = `${Date.now()}.socket.replay`;
    const first = await push('slash_commands', command('packet socket-replay-bot for Fortress Bank', trigger));
    expect(JSON.stringify(first.payload)).toContain('Building the trust packet');
    const again = await push('slash_commands', command('packet socket-replay-bot for Fortress Bank', trigger), 1);
    expect(JSON.stringify(again.payload)).toContain('already applied');
    expect(await packets()).toBe(1);
    // A different command (a new trigger id) still runs.
    const next = await push('slash_commands', command('packet socket-replay-bot', `${Date.now()}.socket.next`));
    expect(JSON.stringify(next.payload)).toContain('Building the trust packet');
    expect(await packets()).toBe(2);
  });

  it('a button click Slack delivers again over the socket is acknowledged and answered once', async () => {
    await waitFor(() => socket !== undefined, 5000, 'the WebSocket connection');
    const payload = JSON.parse(new URLSearchParams(blockActionBody({ user_id: 'U0ONCALL1', action_id: 'armalo_confirm', value: 'no-such-confirmation', response_url: slack.responseUrl('socket-click') })).get('payload')!);
    await push('interactive', payload);
    await push('interactive', payload, 1);
    // A later, different click is answered; by then the redelivery would have been answered too.
    const later = { ...payload, trigger_id: `${Date.now()}.socket.later`, response_url: slack.responseUrl('socket-click-later') };
    await push('interactive', later);
    await waitFor(() => slack.responses.some((r) => r.id === 'socket-click-later') && slack.responses.some((r) => r.id === 'socket-click'), 10_000, 'the answers');
    expect(slack.responses.filter((r) => r.id === 'socket-click')).toHaveLength(1);
  });
});
