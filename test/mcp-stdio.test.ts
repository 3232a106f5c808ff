import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, describe, expect } from 'vitest';
import { TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

/**
 * `npx armalo-mcp` (DESIGN §5): the stdio server, spawned as an MCP client would spawn it, bridging to
 * the service's /mcp endpoint with the agent's token.
 */
const AGENT_TOKEN = 'tok_mcp_stdio_agent_0123456789abcdef';
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = fileURLToPath(new URL('../bin/armalo-mcp.js', import.meta.url));

let app: TestApp;
let client: Client | undefined;
/** What the child inherits: enough to run node, nothing of ours. */
const baseEnv = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' });

const it = appTest({
  policy: `${APPROVALS_TEST_POLICY}\nmcp:\n  toolActions:\n    Write: crm:write\n`,
  env: { ARMALO_API_TOKENS: `root:${TOKEN},stdio-bot:${AGENT_TOKEN}:agent=stdio-bot` },
});
it.beforeAll(async ({ app: started }) => {
  app = started;
  const agent = { name: 'Stdio bot', owner: 'owner@example.com', riskTier: 'low', grants: [{ scope: 'crm:write' }, { scope: 'tool:bash' }] };
  expect((await app.call('PUT', '/v1/agents/stdio-bot', agent)).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await client?.close().catch(() => undefined);
});

/** Runs the bin to its end (asynchronously: the service it calls runs in this process). */
function runBin(env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end();
  });
}

const textOf = (result: { content: unknown }) => (result.content as { text?: string }[]).map((c) => c.text ?? '').join('');

describe('npx armalo-mcp (stdio)', () => {
  it('lists the tools and answers check_action and request_permission through the service', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [bin],
      cwd: root,
      env: { ...baseEnv(), ARMALO_URL: app.url, ARMALO_TOKEN: AGENT_TOKEN, ARMALO_AGENT_ID: 'stdio-bot' },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    client = new Client({ name: 'stdio-test', version: '1.0.0' });
    await client.connect(transport, { timeout: 60_000 });

    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['check_action', 'get_approval', 'my_status', 'request_approval', 'request_permission', 'wait_for_approval']);

    const allowed = JSON.parse(textOf(await client.callTool({ name: 'check_action', arguments: { action: 'crm:write' } })));
    expect(allowed).toMatchObject({ decision: 'allow', agentStatus: 'active' });
    const denied = JSON.parse(textOf(await client.callTool({ name: 'check_action', arguments: { action: 'payments:transfer' } })));
    expect(denied.decision).toBe('deny');
    // The mapping lives on the server: Write → crm:write.
    const write = JSON.parse(textOf(await client.callTool({ name: 'request_permission', arguments: { tool_name: 'Write', input: { file_path: 'a.txt' } } })));
    expect(write).toEqual({ behavior: 'allow', updatedInput: { file_path: 'a.txt' } });

    // Bad arguments: a tool error, and the bridge keeps serving.
    const bad = await client.callTool({ name: 'check_action', arguments: { action: 'NOPE!' } }).then(
      (r) => r.isError === true,
      () => true,
    );
    expect(bad).toBe(true);
    expect(JSON.parse(textOf(await client.callTool({ name: 'my_status', arguments: {} }))).agentId).toBe('stdio-bot');
    expect(stderr).not.toContain(AGENT_TOKEN);
  }, 60_000);

  it('missing settings: a clear message on stderr and exit code 2', async () => {
    const run = await runBin({ ...baseEnv(), ARMALO_TOKEN: AGENT_TOKEN });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('ARMALO_URL is required');
    expect(run.stderr).toContain('ARMALO_AGENT_ID is required');
    expect(run.stderr).not.toContain(AGENT_TOKEN);
    expect(run.stdout).toBe('');
  }, 60_000);

  it('a token the service refuses: exit code 1, and the token is not printed', async () => {
    const wrong = 'tok_wrong_0123456789abcdef';
    const run = await runBin({ ...baseEnv(), ARMALO_URL: app.url, ARMALO_TOKEN: wrong, ARMALO_AGENT_ID: 'stdio-bot' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('cannot connect');
    expect(run.stderr).not.toContain(wrong);
  }, 60_000);
});
