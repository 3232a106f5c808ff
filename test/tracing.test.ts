// First import: tracing must be on before the fixture builds the app's logger, queues and workers.
import { ancestors, exporter, inTrace, spans, tracing } from './support/in-memory-tracing.js';
import { randomBytes } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signedWebhook, slashCommand } from './support/drive.js';
import type { FakeConnector } from './support/fake-connector.js';
import type { FakeSlack } from './support/fake-slack.js';
import type { WebhookReceiver } from './support/webhook-receiver.js';

// DESIGN §5 "Tracing": one trace from the command to the Slack call its notice makes, through the
// database, the outbox relay and the BullMQ job; an incoming traceparent honoured; log lines with
// trace ids. Tracing exports to memory here; test/tracing-otlp.test.ts runs the real entry point
// against an OTLP/HTTP receiver (and with tracing off).
const WEBHOOK_SECRET = 'armalo_inbound_secret_0123456789';
const TEAMS_CHANNEL = '19:incidents@thread.tacv2';
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  contain: [security-oncall]
channels:
  incidents: { slack: C0INCIDENTS, teams: "${TEAMS_CHANNEL}" }
`;
let app: TestApp;
let slack: FakeSlack;
let connector: FakeConnector;
let receiver: WebhookReceiver;

const it = appTest({
  policy: POLICY,
  slack: true,
  teams: true,
  events: true,
  env: { ARMALO_WEBHOOK_SECRET: WEBHOOK_SECRET },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started, slack: fakeSlack, connector: fakeConnector, receiver: fakeReceiver }) => {
  app = started;
  slack = fakeSlack;
  connector = fakeConnector;
  receiver = fakeReceiver;
  // The bot is added to the incidents channel in Teams (how it learns where to post there).
  const install = {
    type: 'conversationUpdate',
    id: 'cu-tracing',
    serviceUrl: connector.url,
    channelId: 'msteams',
    from: { id: '29:admin', aadObjectId: '00000000-0000-0000-0000-0000000000a1' },
    conversation: { id: TEAMS_CHANNEL, conversationType: 'channel', isGroup: true, tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot', name: 'Armalo' },
    membersAdded: [{ id: '28:armalo-bot' }],
    channelData: { team: { id: '19:team@thread.tacv2' }, channel: { id: TEAMS_CHANNEL }, tenant: { id: 'tenant-1' } },
  };
  expect((await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(install) })).status).toBeLessThan(300);
  await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('conversation_id', '=', TEAMS_CHANNEL).executeTakeFirst()) !== undefined, 5000, 'the Teams channel reference');
  // Starting the app (a database, three fakes) takes a while on a loaded 2-core machine.
}, 90_000);
it.afterAll(() => tracing.shutdown());

const named = (list: ReadableSpan[], test: (name: string) => boolean) => list.filter((s) => test(s.name));
const one = (list: ReadableSpan[], test: (name: string) => boolean, what: string) => {
  const found = named(list, test);
  expect(found.length, `${what}: ${list.map((s) => s.name).join(', ')}`).toBeGreaterThan(0);
  return found[0]!;
};
const isAncestor = (ancestor: ReadableSpan, of: ReadableSpan) => ancestors(of).some((a) => a.spanContext().spanId === ancestor.spanContext().spanId);
/** Outgoing HTTP calls (client spans) whose URL contains `part`, in any trace. */
const callsTo = (part: string) => spans().filter((s) => s.kind === SpanKind.CLIENT && String(s.attributes['url.full'] ?? s.attributes['http.url'] ?? '').includes(part));
/** Slack Web API calls of one method. */
const slackCalls = (method: string) => callsTo(`/api/${method}`);

describe('tracing', () => {
  it('a Slack /armalo contain is one trace: the command, its database writes, the outbox relay, the notice job and the Slack call (and the Teams notice and event webhook it causes)', async () => {
    await app.call('PUT', '/v1/agents/traced-bot', sampleAgent);
    exporter.reset();
    const before = slack.posts('C0INCIDENTS').length;
    await slashCommand(app, slack, 'U0ONCALL1', 'contain traced-bot suspicious transfers');
    await waitFor(() => slack.posts('C0INCIDENTS').length > before, 10_000, 'the incident notice');
    // The client span ends once Slack's answer is read: wait for it, not for a fixed time.
    await waitFor(() => slackCalls('chat.postMessage').length > 0, 5000, 'the chat.postMessage span');
    // ...and the job's own span once the job is done (it records the message after the call).
    await waitFor(() => spans().some((s) => s.name === 'process notify'), 5000, 'the notice job span');

    // The command: the server span of the signed Slack request, named after its route, the root.
    const command = one(spans(), (n) => n.startsWith('POST /slack/events'), 'the command span');
    expect(command.kind).toBe(SpanKind.SERVER);
    expect(command.attributes['http.route']).toBe('/slack/events');
    expect(command.parentSpanContext).toBeUndefined();
    const trace = inTrace(command.spanContext().traceId);

    // Its database writes: the containment's statements, inside the request.
    const writes = trace.filter((s) => /^(insert|update)\b/i.test(String(s.attributes['db.query.text'] ?? s.attributes['db.statement'] ?? '')));
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes.slice(0, 5)) expect(isAncestor(command, w)).toBe(true);
    const outboxInsert = trace.find((s) => /insert into outbox/i.test(String(s.attributes['db.query.text'] ?? s.attributes['db.statement'] ?? '')));
    expect(outboxInsert, 'the outbox row written in the command').toBeDefined();
    expect(isAncestor(command, outboxInsert!)).toBe(true);

    // The relay's hand-over of the notice row, continuing the command's trace.
    const relay = one(trace, (n) => n.startsWith('outbox relay notify.'), 'the relay span');
    expect(isAncestor(command, relay)).toBe(true);
    expect(relay.attributes['armalo.outbox.wait_ms']).toBeTypeOf('number');

    // The notice job: BullMQ's consumer span, a child of the relay's.
    const job = one(trace, (n) => n === 'process notify', 'the notice job span');
    expect(job.kind).toBe(SpanKind.CONSUMER);
    expect(isAncestor(relay, job)).toBe(true);

    // The Slack Web API call the job made, in the same trace, under the job.
    const post = slackCalls('chat.postMessage').find((s) => s.spanContext().traceId === command.spanContext().traceId);
    expect(post, 'the chat.postMessage call in the command trace').toBeDefined();
    expect(isAncestor(job, post!)).toBe(true);
    expect(ancestors(post!).at(-1)!.spanContext().spanId).toBe(command.spanContext().spanId);

    // The same notice in Teams (the Bot Connector call) and the signed event webhook the
    // containment causes: each made by its job, in the command's trace.
    const traceId = command.spanContext().traceId;
    await waitFor(() => connector.sent(TEAMS_CHANNEL).length > 0, 10_000, 'the Teams notice');
    await waitFor(() => receiver.events().some((e) => e.type === 'agent.contained' && e.data.agentId === 'traced-bot'), 10_000, 'the event webhook');
    const teamsCall = () => callsTo('/v3/conversations/').find((s) => s.spanContext().traceId === traceId);
    const webhookCall = () => callsTo(receiver.url()).find((s) => s.spanContext().traceId === traceId);
    await waitFor(() => teamsCall() !== undefined && webhookCall() !== undefined, 5000, 'the Bot Connector and webhook client spans in the command trace');
    expect(ancestors(teamsCall()!).some((s) => s.name === 'process notify')).toBe(true);
    expect(ancestors(webhookCall()!).some((s) => s.name === 'process events')).toBe(true);
  });

  it('honours an incoming traceparent on a REST call, and the notice it causes stays in that trace', async () => {
    await app.call('PUT', '/v1/agents/rest-traced-bot', sampleAgent);
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const before = slack.posts('C0INCIDENTS').length;
    const res = await app.call('POST', '/v1/agents/rest-traced-bot/actions', { action: 'contain', reason: 'traced over REST' }, { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } });
    expect(res.status).toBe(201);
    await waitFor(() => slack.posts('C0INCIDENTS').length > before, 10_000, 'the incident notice');
    await waitFor(() => slackCalls('chat.postMessage').some((s) => s.spanContext().traceId === traceId), 5000, 'the Slack call in the caller trace');
    await waitFor(() => inTrace(traceId).some((s) => s.name === 'process notify'), 5000, 'the notice job span');

    const server = one(inTrace(traceId), (n) => n.startsWith('POST /v1/agents/'), 'the REST server span');
    expect(server.name).toBe('POST /v1/agents/{agentId}/actions');
    expect(server.attributes['http.route']).toBe('/v1/agents/{agentId}/actions');
    expect(server.parentSpanContext?.spanId).toBe(callerSpan);
    expect(one(inTrace(traceId), (n) => n.startsWith('outbox relay notify.'), 'the relay span')).toBeDefined();
    // The relay's batch work (claiming rows, BullMQ's bulk add) serves many traces: it joins none.
    expect(named(inTrace(traceId), (n) => n.startsWith('addBulk'))).toEqual([]);
  });

  it('a route-less request still gets a span; health checks get none', async () => {
    exporter.reset();
    expect((await app.call('GET', '/healthz')).status).toBe(200);
    expect((await app.call('GET', '/v1/no-such-thing')).status).toBe(404);
    await waitFor(() => spans().some((s) => s.kind === SpanKind.SERVER), 5000, 'the 404 span');
    const server = spans().filter((s) => s.kind === SpanKind.SERVER);
    expect(server.map((s) => s.attributes['url.path'] ?? s.attributes['http.target'])).toEqual(['/v1/no-such-thing']);
  });

  it('a console sign-in link\'s token never reaches a span (only ids go into what is exported)', async () => {
    exporter.reset();
    const token = randomBytes(32).toString('base64url');
    const res = await fetch(`${app.url}/console/login?t=${token}`);
    expect(res.status).toBe(400);
    await waitFor(() => spans().some((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/console/login'), 5000, 'the sign-in page span');
    const server = spans().find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/console/login')!;
    expect(server.attributes['url.query']).toBe('t=REDACTED');
    expect(JSON.stringify(spans().map((s) => [s.name, s.attributes]))).not.toContain(token);
  });

  it('with ARMALO_TRACE_DECISIONS=traced, traces a decision (the hot path) only when its caller sends a traceparent', async () => {
    await app.call('PUT', '/v1/agents/decided-bot', sampleAgent);
    exporter.reset();
    expect((await app.call('POST', '/v1/decisions', { agentId: 'decided-bot', action: 'crm:write' })).body.decision).toBe('allow');
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const traced = await app.call('POST', '/v1/decisions', { agentId: 'decided-bot', action: 'crm:write' }, { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } });
    expect(traced.body.decision).toBe('allow');
    await waitFor(() => spans().some((s) => s.name === 'POST /v1/decisions'), 5000, 'the traced decision span');
    const decisions = spans().filter((s) => s.name === 'POST /v1/decisions');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]!.spanContext().traceId).toBe(traceId);
    expect(decisions[0]!.parentSpanContext?.spanId).toBe(callerSpan);
  });

  it('log lines written inside a trace carry its trace_id and span_id', async () => {
    // An event for an agent not registered yet is held; the registration applies it and logs so.
    expect((await signedWebhook(app, WEBHOOK_SECRET, { id: 'trace-held-1', type: 'score.changed', createdAt: new Date().toISOString(), data: { agentId: 'late-traced-bot', score: 700 } })).status).toBe(202);
    const traceId = randomBytes(16).toString('hex');
    const res = await app.call('PUT', '/v1/agents/late-traced-bot', sampleAgent, { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
    expect(res.status).toBeLessThan(300);
    await waitFor(() => app.logs.lines.some((l) => l.msg === 'held webhook events applied after the agent was registered' && l.agentId === 'late-traced-bot'), 5000, 'the log line');
    const line = app.logs.lines.find((l) => l.msg === 'held webhook events applied after the agent was registered' && l.agentId === 'late-traced-bot')!;
    expect(line.trace_id).toBe(traceId);
    expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
    // Lines written outside any span carry none.
    expect(app.logs.lines.find((l) => l.msg === 'armalo chat-ops started')).not.toHaveProperty('trace_id');
  });
});
