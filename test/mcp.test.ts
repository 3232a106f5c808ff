import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, describe, expect } from 'vitest';
import { TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { approvalClickBody, postSigned } from './support/slack-requests.js';

/**
 * DESIGN §5 "Agents' side: MCP" over Streamable HTTP, driven by the official MCP client: the tool
 * list, every tool, token and origin checks, and approvals people decide in Slack reaching a waiting
 * tool call.
 */
const PLATFORM_TOKEN = 'tok_mcp_platform_0123456789abcdef';
const AGENT_TOKEN = 'tok_mcp_agent_pay_0123456789abcdef';

const POLICY = `${APPROVALS_TEST_POLICY}
mcp:
  toolActions:
    "mcp__mail__*": mail:send
    Write: crm:write
`;

let app: TestApp;
let slack: FakeSlack;
const clients: Client[] = [];
let n = 0;

const payBot = {
  name: 'Pay bot',
  owner: 'owner@example.com',
  riskTier: 'medium',
  grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }, { scope: 'crm:write' }, { scope: 'tool:bash' }],
};

const it = appTest({
  policy: POLICY,
  slack: true,
  env: { ARMALO_API_TOKENS: `root:${TOKEN},platform-svc:${PLATFORM_TOKEN}:platform,pay-bot-mcp:${AGENT_TOKEN}:agent=pay-bot` },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  expect((await app.call('PUT', '/v1/agents/pay-bot', payBot)).status).toBe(201);
  expect((await app.call('PUT', '/v1/agents/side-bot', { ...payBot, name: 'Side bot' })).status).toBe(201);
  expect((await app.call('PUT', '/v1/agents/third-bot', { ...payBot, name: 'Third bot' })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
});

async function connect(token: string, query = '', headers: Record<string, string> = {}): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${app.url}/mcp${query}`), { requestInit: { headers: { authorization: `Bearer ${token}`, ...headers } } });
  const client = new Client({ name: 'armalo-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

/** Calls a tool; answers the parsed JSON of its text, and whether it is a tool error. */
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; text: string; json: any }> {
  const result = await client.callTool({ name, arguments: args }, { timeout: 60_000 });
  const text = (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { isError: result.isError === true, text, json };
}

/** A raw POST to /mcp: an initialize request, so an accepted one would get a real answer. */
async function rawPost(path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(app.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // SSE or empty: keep the text.
  }
  return { status: res.status, body };
}

async function approveInSlack(user: string, requestId: string): Promise<void> {
  const id = `r${++n}`;
  const res = await postSigned(app.url, approvalClickBody({ user_id: user, request_id: requestId, response_url: slack.responseUrl(id) }));
  expect(res.status).toBe(200);
}

/** A Slack denial: the Deny button, then the reason modal. */
async function denyInSlack(user: string, requestId: string, reason: string): Promise<void> {
  const base = { user: { id: user, username: user.toLowerCase(), team_id: 'T0TEAM' }, team: { id: 'T0TEAM', domain: 'example' }, api_app_id: 'A0APP', token: 'x' };
  const id = `r${++n}`;
  const click = approvalClickBody({ user_id: user, request_id: requestId, response_url: slack.responseUrl(id), action_id: 'armalo_deny' });
  expect((await postSigned(app.url, click)).status).toBe(200);
  await waitFor(() => slack.calls.some((c) => c.method === 'views.open' && c.args.view?.private_metadata === requestId), 5000, 'the deny modal');
  const submit = {
    ...base,
    type: 'view_submission',
    trigger_id: `${Date.now()}.${++n}.trig`,
    view: { id: `V${n}`, type: 'modal', callback_id: 'armalo_deny_modal', private_metadata: requestId, state: { values: { reason: { reason_input: { type: 'plain_text_input', value: reason } } } } },
  };
  expect((await postSigned(app.url, new URLSearchParams({ payload: JSON.stringify(submit) }).toString())).status).toBe(200);
}

const cardPosted = (requestId: string) => slack.posts().some((p) => JSON.stringify(p.args).includes(requestId));

describe('MCP over Streamable HTTP', () => {
  it('lists exactly the six tools of the contract, with input schemas', async () => {
    const client = await connect(AGENT_TOKEN);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['check_action', 'get_approval', 'my_status', 'request_approval', 'request_permission', 'wait_for_approval']);
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    expect(byName.check_action!.inputSchema.required).toEqual(['action']);
    expect(byName.request_permission!.inputSchema.required).toEqual(expect.arrayContaining(['tool_name', 'input']));
    expect(byName.get_approval!.annotations?.readOnlyHint).toBe(true);
  });

  it('check_action answers like POST /v1/decisions, and turns to deny once the agent is contained over REST', async () => {
    const client = await connect(PLATFORM_TOKEN, '?agentId=side-bot');
    const before = await call(client, 'check_action', { action: 'crm:write' });
    expect(before.isError).toBe(false);
    const rest = (await app.call('POST', '/v1/decisions', { agentId: 'side-bot', action: 'crm:write' })).body;
    expect(before.json).toMatchObject({ decision: 'allow', agentStatus: 'active', grantId: rest.grantId });
    expect(Object.keys(before.json).sort()).toEqual(Object.keys(rest).sort());

    expect((await app.call('POST', '/v1/agents/side-bot/actions', { action: 'contain', reason: 'suspicious writes' })).status).toBe(201);
    await waitFor(async () => (await call(client, 'check_action', { action: 'crm:write' })).json?.decision === 'deny', 5000, 'the decision to turn to deny');
    const after = await call(client, 'check_action', { action: 'crm:write' });
    expect(after.json).toMatchObject({ decision: 'deny', agentStatus: 'contained' });
    expect(after.json.reasons.join(' ')).toContain('suspicious writes');
    const status = await call(client, 'my_status', {});
    expect(status.json).toMatchObject({ agentId: 'side-bot', status: 'contained' });
    expect(status.json.grantsInForce).toEqual([]);
    expect(status.json.restrictions[0]).toMatchObject({ kind: 'contain', reason: 'suspicious writes' });
  });

  it('my_status shows the grants in force and the open approvals', async () => {
    const client = await connect(AGENT_TOKEN);
    const status = await call(client, 'my_status', {});
    expect(status.isError).toBe(false);
    expect(status.json).toMatchObject({ agentId: 'pay-bot', status: 'active', riskTier: 'medium' });
    expect(status.json.grantsInForce.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'mail:send', 'payments:transfer', 'tool:bash']);
    expect(status.json.openApprovals).toEqual([]);
  });

  it('request_approval and get_approval; an approval decided in Slack reaches a waiting wait_for_approval', async () => {
    const client = await connect(AGENT_TOKEN);
    const asked = await call(client, 'request_approval', { action: 'mail:send', context: { recipientDomain: 'partner.example' }, justification: 'send the contract', idempotencyKey: 'contract-1' });
    expect(asked.isError).toBe(false);
    expect(asked.json).toMatchObject({ agentId: 'pay-bot', action: 'mail:send', status: 'pending', requestedBy: 'api:pay-bot-mcp' });
    const id = asked.json.id as string;
    // Same key, same request.
    expect((await call(client, 'request_approval', { action: 'mail:send', context: { recipientDomain: 'partner.example' }, justification: 'send the contract', idempotencyKey: 'contract-1' })).json.id).toBe(id);
    expect((await call(client, 'get_approval', { id })).json).toMatchObject({ id, status: 'pending' });
    expect((await call(client, 'my_status', {})).json.openApprovals.map((a: any) => a.id)).toContain(id);

    const waiting = call(client, 'wait_for_approval', { id, timeoutSeconds: 45 });
    await waitFor(() => cardPosted(id), 10_000, 'the approval card');
    await approveInSlack('U0ONCALL1', id);
    const settled = await waiting;
    expect(settled.json).toMatchObject({ id, status: 'approved', decisions: [{ by: 'slack:U0ONCALL1', decision: 'approve' }] });
    // The approval is bound to what people saw: it allows that mail, not another one.
    expect((await call(client, 'check_action', { action: 'mail:send', context: { recipientDomain: 'partner.example' } })).json.decision).toBe('allow');
    expect((await call(client, 'check_action', { action: 'mail:send', context: { recipientDomain: 'attacker.example' } })).json.decision).toBe('approval_required');
  }, 60_000);

  it('wait_for_approval: 0 answers a pending request at once; a wait above 50 s is accepted (clamped) and ends when the request does', async () => {
    const client = await connect(AGENT_TOKEN);
    const asked = await call(client, 'request_approval', { action: 'payments:transfer', context: { amount: 50_000 }, justification: 'pay the reinsurer' });
    const id = asked.json.id as string;
    expect((await call(client, 'wait_for_approval', { id, timeoutSeconds: 0 })).json).toMatchObject({ id, status: 'pending' });
    const waiting = call(client, 'wait_for_approval', { id, timeoutSeconds: 3600 });
    await waitFor(() => cardPosted(id), 10_000, 'the approval card');
    expect((await app.call('POST', `/v1/approval-requests/${id}/cancel`, undefined, { token: AGENT_TOKEN })).status).toBe(200);
    const ended = await waiting;
    expect(ended.isError).toBe(false);
    expect(ended.json).toMatchObject({ id, status: 'cancelled' });
    expect((await client.listTools()).tools.find((t) => t.name === 'wait_for_approval')!.description).toContain('50');
  }, 60_000);

  it('request_permission: allow passes the input back, deny says why, mcp.toolActions maps tool names', async () => {
    const client = await connect(AGENT_TOKEN);
    const input = { command: 'ls -la', description: 'list files' };
    const bash = await call(client, 'request_permission', { tool_name: 'Bash', input });
    expect(bash.json).toEqual({ behavior: 'allow', updatedInput: input });

    // Unmapped and not granted: tool:edit → deny.
    const edit = await call(client, 'request_permission', { tool_name: 'Edit', input: { file_path: '/etc/passwd' } });
    expect(edit.json.behavior).toBe('deny');
    expect(edit.json.message).toContain('tool:edit');
    // Characters outside a-z0-9_.- become "_".
    const odd = await call(client, 'request_permission', { tool_name: 'My Tool/x', input: {} });
    expect(odd.json.message).toContain('tool:my_tool_x');

    // Mapped by mcp.toolActions: Write → crm:write (granted).
    expect((await call(client, 'request_permission', { tool_name: 'Write', input: { file_path: 'a.txt', content: 'x' } })).json.behavior).toBe('allow');
  });

  it('request_permission asks people when the mapped action needs approval, waits, and allows once approved in Slack', async () => {
    const client = await connect(AGENT_TOKEN);
    const input = { to: 'cfo@partner.example', subject: 'Q3' };
    const asking = call(client, 'request_permission', { tool_name: 'mcp__mail__send', input });
    let requestId: string | undefined;
    await waitFor(async () => {
      const row = await app.db.selectFrom('approval_requests').select(['id', 'justification']).where('agent_id', '=', 'pay-bot').where('idempotency_key', 'like', 'mcp-permission:%').executeTakeFirst();
      requestId = row?.id;
      return requestId !== undefined && cardPosted(requestId);
    }, 10_000, 'the permission request and its card');
    const row = await app.db.selectFrom('approval_requests').selectAll().where('id', '=', requestId!).executeTakeFirstOrThrow();
    expect(row.action).toBe('mail:send');
    expect(row.justification).toContain('cfo@partner.example');
    await approveInSlack('U0ONCALL1', requestId!);
    expect((await asking).json).toEqual({ behavior: 'allow', updatedInput: input });
    // The approval covers this exact input only: other input asks again (a new request, not this one).
    const other = call(client, 'request_permission', { tool_name: 'mcp__mail__send', input: { to: 'someone@else.example' } });
    await waitFor(async () => (await app.db.selectFrom('approval_requests').select('id').where('idempotency_key', 'like', 'mcp-permission:%').execute()).length === 2, 10_000, 'a second request');
    const second = (await app.db.selectFrom('approval_requests').select('id').where('idempotency_key', 'like', 'mcp-permission:%').where('id', '!=', requestId!).executeTakeFirstOrThrow()).id;
    expect((await app.call('POST', `/v1/approval-requests/${second}/cancel`, undefined, { token: AGENT_TOKEN })).status).toBe(200);
    const cancelled = (await other).json;
    expect(cancelled.behavior).toBe('deny');
    expect(cancelled.message).toContain(second);
    expect(cancelled.message).toContain('cancelled');
  }, 60_000);

  it('request_permission: a denial in Slack is the answer, and the same call is not put to people again', async () => {
    const client = await connect(AGENT_TOKEN);
    const input = { to: 'press@news.example', subject: 'leak' };
    const key = 'mcp-permission:%';
    const count = async () => (await app.db.selectFrom('approval_requests').select('id').where('idempotency_key', 'like', key).execute()).length;
    const before = await count();
    const asking = call(client, 'request_permission', { tool_name: 'mcp__mail__send', input });
    let requestId: string | undefined;
    await waitFor(async () => {
      const rows = await app.db.selectFrom('approval_requests').select(['id', 'justification']).where('idempotency_key', 'like', key).where('status', '=', 'pending').execute();
      requestId = rows.find((r) => r.justification.includes('press@news.example'))?.id;
      return requestId !== undefined && cardPosted(requestId);
    }, 10_000, 'the permission request and its card');
    await denyInSlack('U0ONCALL1', requestId!, 'no mail to the press');
    const denied = (await asking).json;
    expect(denied).toMatchObject({ behavior: 'deny' });
    expect(denied.message).toContain('no mail to the press');
    const again = (await call(client, 'request_permission', { tool_name: 'mcp__mail__send', input: { subject: 'leak', to: 'press@news.example' } })).json;
    expect(again.behavior).toBe('deny');
    expect(again.message).toContain('no mail to the press');
    expect(await count()).toBe(before + 1);
  }, 60_000);
});

describe('MCP refusals', () => {
  it('401 without a token or with a wrong one', async () => {
    expect((await rawPost('/mcp', {})).status).toBe(401);
    expect((await rawPost('/mcp', { authorization: 'Bearer nope' })).status).toBe(401);
  });

  it('GET and DELETE answer 405: the endpoint is stateless', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(`${app.url}/mcp`, { method, headers: { authorization: `Bearer ${AGENT_TOKEN}`, accept: 'text/event-stream' } });
      expect(res.status, method).toBe(405);
      await res.body?.cancel();
    }
  });

  it('403 for a request from another origin; the own origin is served', async () => {
    const foreign = await rawPost('/mcp', { authorization: `Bearer ${AGENT_TOKEN}`, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(JSON.stringify(foreign.body)).toContain('origin');
    expect((await rawPost('/mcp', { authorization: `Bearer ${AGENT_TOKEN}`, origin: 'http://127.0.0.1:1' })).status).toBe(403);
    const client = await connect(AGENT_TOKEN, '', { origin: app.url });
    expect((await client.listTools()).tools).toHaveLength(6);
  });

  it('an agent token naming another agent is refused; a platform token must name one', async () => {
    const other = await rawPost('/mcp?agentId=side-bot', { authorization: `Bearer ${AGENT_TOKEN}` });
    expect(other.status).toBe(403);
    expect(JSON.stringify(other.body)).toContain('agent=pay-bot');
    await expect(connect(AGENT_TOKEN, '?agentId=side-bot')).rejects.toThrow();
    expect((await rawPost('/mcp', { authorization: `Bearer ${PLATFORM_TOKEN}` })).status).toBe(400);
    expect((await rawPost('/mcp?agentId=..%2Fx', { authorization: `Bearer ${PLATFORM_TOKEN}` })).status).toBe(400);
    // Its own id on the URL is fine.
    expect((await (await connect(AGENT_TOKEN, '?agentId=pay-bot')).listTools()).tools).toHaveLength(6);
  });

  it("another agent's approval request is not found", async () => {
    const foreign = await app.call('POST', '/v1/approval-requests', { agentId: 'third-bot', action: 'mail:send', justification: 'not yours' });
    expect(foreign.status).toBe(201);
    const id = foreign.body.id as string;
    const client = await connect(AGENT_TOKEN);
    const got = await call(client, 'get_approval', { id });
    expect(got.isError).toBe(true);
    expect(got.text).toContain('unknown approval request');
    expect((await call(client, 'wait_for_approval', { id, timeoutSeconds: 1 })).isError).toBe(true);
    // The platform token bound to third-bot sees it.
    expect((await call(await connect(PLATFORM_TOKEN, '?agentId=third-bot'), 'get_approval', { id })).json).toMatchObject({ id, agentId: 'third-bot' });
  });

  it('bad tool arguments are a tool error and change nothing; the server keeps serving', async () => {
    const client = await connect(AGENT_TOKEN);
    const before = await app.db.selectFrom('approval_requests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    const attempts: [string, Record<string, unknown>][] = [
      ['check_action', { action: 'Not An Action!' }],
      ['check_action', {}],
      ['check_action', { action: 'payments:transfer', context: { amount: 'lots' } }],
      ['request_approval', { action: 'mail:send', justification: '   ' }],
      ['get_approval', { id: 'not-a-uuid' }],
      ['wait_for_approval', { id: '00000000-0000-4000-8000-000000000000', timeoutSeconds: -1 }],
      ['request_permission', { tool_name: '', input: {} }],
      ['request_permission', { tool_name: 'Bash', input: 'rm -rf /' }],
      ['my_status', { extra: true }],
    ];
    for (const [name, args] of attempts) {
      const outcome = await client.callTool({ name, arguments: args }).then(
        (r) => ({ isError: r.isError === true }),
        (err: Error) => ({ isError: true, thrown: err.message }),
      );
      expect(outcome.isError, `${name} ${JSON.stringify(args)}`).toBe(true);
    }
    const after = await app.db.selectFrom('approval_requests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
    expect((await call(client, 'get_approval', { id: '00000000-0000-4000-8000-000000000000' })).isError).toBe(true);
    expect((await call(client, 'check_action', { action: 'crm:write' })).json.decision).toBe('allow');
  });

  it('never logs a token', () => {
    const logs = app.logs.text();
    for (const secret of [TOKEN, PLATFORM_TOKEN, AGENT_TOKEN]) expect(logs).not.toContain(secret);
  });
});
