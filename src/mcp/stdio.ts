import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Server } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { agentIdSchema } from '../api/schemas.js';

/**
 * `npx armalo-mcp`: the MCP server for clients that start their servers as a process (stdio).
 *
 * A thin bridge: it connects to the Armalo service's Streamable HTTP endpoint (`/mcp`) as an MCP
 * client, with the bearer token, and re-exposes that server's tools unchanged (list and call pass
 * through). The tool rules, the policy's `mcp.toolActions` and every authorization check stay on the
 * server, in one place. Standard output carries the protocol only; messages go to standard error,
 * and never contain the token.
 */

/** An upstream call may wait up to 50 s on the server (wait_for_approval, request_permission): leave room. */
const UPSTREAM_CALL_TIMEOUT_MS = 58_000;

export interface BridgeSettings {
  url: URL;
  token: string;
  agentId: string;
}

/** Reads ARMALO_URL, ARMALO_TOKEN and ARMALO_AGENT_ID; answers the problems (by variable name) when any is missing or bad. */
export function bridgeSettings(env: NodeJS.ProcessEnv): BridgeSettings | { problems: string[] } {
  const problems: string[] = [];
  const rawUrl = env.ARMALO_URL?.trim();
  const token = env.ARMALO_TOKEN?.trim();
  const agentId = env.ARMALO_AGENT_ID?.trim();
  let url: URL | undefined;
  if (!rawUrl) problems.push('ARMALO_URL is required: the base URL of the Armalo service, e.g. https://armalo.example.com');
  else {
    try {
      url = new URL(rawUrl);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
      if (url.username || url.password) problems.push('ARMALO_URL must not carry credentials: put the token in ARMALO_TOKEN');
    } catch {
      problems.push('ARMALO_URL must be an http(s) URL, e.g. https://armalo.example.com');
    }
  }
  if (!token) problems.push('ARMALO_TOKEN is required: an API token with scope agent=<id> or platform');
  else if (/\s/.test(token)) problems.push('ARMALO_TOKEN must not contain spaces');
  if (!agentId) problems.push('ARMALO_AGENT_ID is required: the id of the agent this server acts for');
  else if (!agentIdSchema.safeParse(agentId).success) problems.push('ARMALO_AGENT_ID: expected 1-128 letters, digits, dots, dashes or underscores, starting with a letter or digit');
  if (problems.length > 0 || !url || !token || !agentId) return { problems };
  return { url, token, agentId };
}

/** The `/mcp` URL for this agent, under the service's base URL (a path prefix is kept). */
export function endpointFor(settings: BridgeSettings): URL {
  const base = new URL(settings.url);
  base.search = '';
  base.hash = '';
  const endpoint = new URL('mcp', base.href.endsWith('/') ? base : `${base.href}/`);
  endpoint.searchParams.set('agentId', settings.agentId);
  return endpoint;
}

/** Connects to the service's MCP endpoint as a client. Throws when it cannot (unreachable, 401, 403). */
export async function connectUpstream(settings: BridgeSettings): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(endpointFor(settings), {
    requestInit: { headers: { authorization: `Bearer ${settings.token}` } },
  });
  const client = new Client({ name: 'armalo-mcp-stdio', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** A server for the stdio side whose tools are the upstream server's, called through. */
export function bridgeServer(upstream: Client): Server {
  const server = new Server(
    { name: 'armalo', version: '1.0.0' },
    { capabilities: { tools: {} }, instructions: upstream.getInstructions() ?? 'Armalo governs what this agent may do.' },
  );
  server.setRequestHandler('tools/list', async () => ({ tools: (await upstream.listTools()).tools }));
  server.setRequestHandler('tools/call', async (request) => upstream.callTool(request.params, { timeout: UPSTREAM_CALL_TIMEOUT_MS }));
  return server;
}

/** Runs the bridge until standard input closes. Exit codes: 2 bad settings, 1 the service refused or is unreachable. */
export async function runStdioBridge(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const settings = bridgeSettings(env);
  if ('problems' in settings) {
    process.stderr.write(`armalo-mcp: cannot start:\n${settings.problems.map((p) => `  ${p}`).join('\n')}\n`);
    process.exit(2);
  }
  let upstream: Client;
  try {
    upstream = await connectUpstream(settings);
  } catch (err) {
    // The message names the service, never the token.
    const why = err instanceof Error ? err.message : String(err);
    process.stderr.write(`armalo-mcp: cannot connect to ${settings.url.origin}/mcp for agent ${settings.agentId}: ${why.replaceAll(settings.token, '***')}\n`);
    process.exit(1);
  }
  const handle = serveStdio(() => bridgeServer(upstream), {
    onerror: (err) => process.stderr.write(`armalo-mcp: ${err.message.replaceAll(settings.token, '***')}\n`),
  });
  const stop = async () => {
    await handle.close().catch(() => undefined);
    await upstream.close().catch(() => undefined);
    process.exit(0);
  };
  process.stdin.once('end', () => void stop());
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
