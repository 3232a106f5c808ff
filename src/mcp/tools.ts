import { createHash } from 'node:crypto';
import { decisionAnswerBody } from '../decisions/decision.service.js';
import { McpServer, type CallToolResult } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { ApprovalService, ApprovalView } from '../approvals/approvals.service.js';
import { approvalIdSchema, decisionContextSchema } from '../api/schemas.js';
import type { DecisionAnswer, DecisionService } from '../decisions/decision.service.js';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { grantStatus } from '../domain/agent.js';
import { isCodedError } from '../domain/errors.js';
import { ACTION_PATTERN, globMatches } from '../domain/scope.js';
import { approvalToWire } from '../domain/wire.js';
import { apiActor } from '../http/routes/agents.routes.js';
import type { Logger } from '../observability/logger.js';
import type { PermissionView } from '../permissions/permission-view.js';
import type { Policy } from '../policy/policy.schema.js';

/** MCP clients give up on a call after 60 s: every wait here ends well before that (DESIGN §5). */
export const MAX_WAIT_SECONDS = 50;

/** A denial of the same tool call with the same input, this recent, is repeated instead of asking people again. */
export const PERMISSION_DENIAL_MEMORY_MS = 60 * 60 * 1000;

/** The tool names of DESIGN §5, in the order they are listed. */
export const TOOL_NAMES = ['check_action', 'request_approval', 'get_approval', 'wait_for_approval', 'request_permission', 'my_status'] as const;

export interface McpToolDeps {
  view: PermissionView;
  decisions: DecisionService;
  approvals: ApprovalService;
  db: Db;
  clock: Clock;
  logger: Logger;
  policy: Policy;
}

/** Who a session acts for: the agent (fixed per HTTP request) and the API token's name (the audit actor). */
export interface McpSession {
  agentId: string;
  tokenName: string;
}

/**
 * The action `request_permission` asks about: the policy's `mcp.toolActions` (first glob matching the
 * tool name, in file order), else `tool:` + the tool name lower-cased with every character outside
 * `a-z0-9_.-` replaced by `_` (so `Bash` asks about `tool:bash`).
 */
export function toolAction(toolActions: Readonly<Record<string, string>>, toolName: string): string {
  for (const [glob, action] of Object.entries(toolActions)) if (globMatches(glob, toolName)) return action;
  return `tool:${toolName.toLowerCase().replace(/[^a-z0-9_.-]/g, '_')}`;
}

/** JSON with object keys sorted, so the same input always hashes the same whatever its key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const actionSchema = z
  .string()
  .max(200)
  .regex(ACTION_PATTERN, 'expected a concrete action such as payments:transfer (lowercase segments separated by ":", no wildcards)')
  .describe('The action, e.g. payments:transfer or mail:send');
const contextSchema = decisionContextSchema.optional().describe('Facts about the action: amount (number), currency, recipientDomain, anything routing rules look at');

const json = (value: unknown): CallToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value) }] });
const toolError = (message: string): CallToolResult => ({ content: [{ type: 'text', text: message }], isError: true });

/** The answer of `POST /v1/decisions`, field for field. */
const decisionBody = (answer: DecisionAnswer, view: PermissionView) => decisionAnswerBody(answer, view.version);

/**
 * One MCP server instance for one session (one HTTP request in stateless mode): the six tools of
 * DESIGN §5, bound to one agent. Everything goes through the same use cases as REST; an approval
 * request of another agent is "not found", exactly as REST answers an agent-scoped token.
 */
export function createArmaloMcpServer(deps: McpToolDeps, session: McpSession): McpServer {
  const server = new McpServer({ name: 'armalo', version: '1.0.0' }, { instructions: `Armalo governs what agent ${session.agentId} may do. Ask check_action before a sensitive action; request_approval when it answers approval_required.` });
  const actor = apiActor(session.tokenName);
  const { agentId } = session;

  /** Runs a tool body; domain refusals (unknown agent, contained agent, no route) become tool errors, never a crash. */
  const guarded = async (name: string, body: () => Promise<CallToolResult>): Promise<CallToolResult> => {
    try {
      return await body();
    } catch (err) {
      if (isCodedError(err)) return toolError(err.message);
      deps.logger.error({ err, tool: name, agentId }, 'MCP tool failed');
      return toolError(`${name} failed on the server; nothing was changed (see the server log)`);
    }
  };

  /** An approval request of this session's agent, or undefined (another agent's id is not found either). */
  const ownApproval = async (id: string): Promise<ApprovalView | undefined> => {
    const found = await deps.approvals.get(id);
    return found && found.agentId === agentId ? found : undefined;
  };

  server.registerTool(
    'check_action',
    {
      title: 'Check an action',
      description: 'May this agent do this now? Answers the decision API: allow, deny or approval_required, with reasons. An approved single-use approval request is used up by an allow.',
      inputSchema: z.strictObject({ action: actionSchema, context: contextSchema }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    ({ action, context }) => guarded('check_action', async () => json(decisionBody(await deps.decisions.decide({ agentId, action, context: context ?? {} }), deps.view))),
  );

  server.registerTool(
    'request_approval',
    {
      title: 'Request approval',
      description: 'Asks people (per the policy\'s routing) to approve an action. Answers the request {id, status, route}. The same idempotencyKey answers the same request.',
      inputSchema: z.strictObject({
        action: actionSchema,
        context: contextSchema,
        justification: z.string().trim().min(1).max(4000).describe('Why the agent wants to do this; shown to approvers'),
        idempotencyKey: z.string().min(1).max(200).optional().describe('Same key → the same request'),
      }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    ({ action, context, justification, idempotencyKey }) =>
      guarded('request_approval', async () => {
        const { request } = await deps.approvals.create({ agentId, action, context: context ?? {}, justification, ...(idempotencyKey ? { idempotencyKey } : {}) }, actor);
        return json(request);
      }),
  );

  server.registerTool(
    'get_approval',
    {
      title: 'Get an approval request',
      description: 'The state of an approval request of this agent: pending, approved, denied, expired or cancelled, with its decisions.',
      inputSchema: z.strictObject({ id: approvalIdSchema.describe('The approval request id') }),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ id }) =>
      guarded('get_approval', async () => {
        const found = await ownApproval(id);
        return found ? json(found) : toolError(`unknown approval request ${id}`);
      }),
  );

  server.registerTool(
    'wait_for_approval',
    {
      title: 'Wait for an approval request',
      description: `Waits until the approval request is decided (or expires), at most timeoutSeconds (above ${MAX_WAIT_SECONDS} waits ${MAX_WAIT_SECONDS}), and answers its state. Still pending after the wait: call again.`,
      inputSchema: z.strictObject({
        id: approvalIdSchema.describe('The approval request id'),
        timeoutSeconds: z.number().finite().min(0).describe(`How long to wait, in seconds (at most ${MAX_WAIT_SECONDS})`),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ id, timeoutSeconds }) =>
      guarded('wait_for_approval', async () => {
        if (!(await ownApproval(id))) return toolError(`unknown approval request ${id}`);
        const view = await deps.approvals.waitFor(id, Math.min(timeoutSeconds, MAX_WAIT_SECONDS));
        return view ? json(view) : toolError(`unknown approval request ${id}`);
      }),
  );

  server.registerTool(
    'request_permission',
    {
      title: 'Permission prompt for a coding agent',
      description:
        'The permission-prompt contract of coding agents (e.g. Claude Code --permission-prompt-tool): answers {"behavior":"allow","updatedInput":…} or {"behavior":"deny","message":…}. ' +
        `When people must approve, asks them and waits up to ${MAX_WAIT_SECONDS} s.`,
      // Not strict: coding agents may add fields to their permission prompt; only these two matter.
      inputSchema: z.object({
        tool_name: z.string().min(1).max(190).describe('The tool the coding agent wants to use, e.g. Bash'),
        input: z.record(z.string(), z.unknown()).describe('The tool input, passed back unchanged when allowed'),
        tool_use_id: z.string().max(200).optional().describe('The coding agent\'s id for this tool use (ignored)'),
      }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    ({ tool_name, input }) => guarded('request_permission', () => requestPermission(deps, session, tool_name, input)),
  );

  server.registerTool(
    'my_status',
    {
      title: 'My status',
      description: "This agent's status (active, narrowed, contained, revoked), the grants in force, the restrictions in force and its open approval requests.",
      inputSchema: z.strictObject({}),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    () => guarded('my_status', async () => myStatus(deps, agentId)),
  );

  return server;
}

function myStatus(deps: McpToolDeps, agentId: string): CallToolResult {
  const agent = deps.view.get(agentId);
  if (!agent) return toolError(`unknown agent ${agentId}: it is not registered (every decision for it is deny)`);
  const now = deps.clock.now();
  const grants = agent.grants.map((grant) => ({ grant, status: grantStatus(agent, grant, now) }));
  return json({
    agentId: agent.id,
    name: agent.name,
    status: agent.status,
    riskTier: agent.riskTier,
    trustScore: agent.trustScore ?? null,
    trustTier: agent.trustTier ?? null,
    version: agent.version.toString(),
    viewFresh: deps.view.isFresh(),
    grantsInForce: grants
      .filter((g) => g.status.state === 'active')
      .map(({ grant }) => ({ scope: grant.scope, constraints: grant.constraints, expiresAt: grant.expiresAt?.toISOString() ?? null })),
    grantsHeld: grants
      .filter((g) => g.status.state !== 'active')
      .map(({ grant, status }) => ({ scope: grant.scope, state: status.state, ...(status.heldBy ? { by: status.heldBy.kind, reason: status.heldBy.reason } : {}) })),
    restrictions: agent.activeActions.map((a) => ({ kind: a.kind, scopes: a.scopes, reason: a.reason, since: a.createdAt.toISOString(), until: a.expiresAt?.toISOString() ?? null })),
    openApprovals: deps.view.approvalsFor(agentId).map(approvalToWire),
  });
}

const allow = (input: Record<string, unknown>) => json({ behavior: 'allow', updatedInput: input });
const deny = (message: string) => json({ behavior: 'deny', message });
const reasonsOf = (answer: DecisionAnswer) => answer.decision.reasons.map((r) => r.message).join('; ') || answer.decision.decision;

/**
 * A coding agent's permission prompt. The decision is bound to this exact input: the context carries
 * the tool name and a hash of the input, so an approval people gave for one command never covers
 * another. Approval requests are reused while open (an idempotency key derived from agent, action and
 * input hash), and a fresh one is asked for once an earlier one expired, was cancelled or used up.
 */
async function requestPermission(deps: McpToolDeps, session: McpSession, toolName: string, input: Record<string, unknown>): Promise<CallToolResult> {
  const { agentId } = session;
  const action = toolAction(deps.policy.mcp.toolActions, toolName);
  const inputJson = canonicalJson(input);
  const inputHash = createHash('sha256').update(inputJson).digest('hex');
  const context = { tool: toolName, inputSha256: inputHash };
  const request = { agentId, action, context };

  const first = await deps.decisions.decide(request);
  if (first.decision.decision === 'allow') return allow(input);
  if (first.decision.decision === 'deny') return deny(`Armalo denied ${action}: ${reasonsOf(first)}`);

  let requestId = first.approvalRequestId;
  if (!requestId) {
    const asked = await askForPermission(deps, session, { action, context, toolName, inputJson, inputHash });
    if ('denied' in asked) return deny(asked.denied);
    requestId = asked.id;
  }
  const settled = await deps.approvals.waitFor(requestId, MAX_WAIT_SECONDS);
  if (!settled) return deny(`approval request ${requestId} is gone; ask again`);
  if (settled.status === 'pending') {
    return deny(`Armalo: approval request ${requestId} for ${action} is still pending (people are asked in chat); try again once it is decided`);
  }
  if (settled.status !== 'approved') {
    const why = settled.finalReason ?? settled.decisions.find((d) => d.decision === 'deny')?.reason ?? settled.status;
    return deny(`Armalo: approval request ${requestId} for ${action} was ${settled.status}: ${why}`);
  }
  // Approved: decide again, which uses a single-use approval up (as REST does), and allow on its word only.
  const second = await deps.decisions.decide(request);
  if (second.decision.decision === 'allow') return allow(input);
  return deny(`Armalo: approval request ${requestId} was approved, but ${action} is not allowed now: ${reasonsOf(second)}`);
}

/** Finds or creates the approval request for this exact tool call; a recent denial is repeated instead. */
async function askForPermission(
  deps: McpToolDeps,
  session: McpSession,
  ask: { action: string; context: Record<string, unknown>; toolName: string; inputJson: string; inputHash: string },
): Promise<{ id: string } | { denied: string }> {
  const actor = apiActor(session.tokenName);
  const base = `mcp-permission:${createHash('sha256').update(`${session.agentId}\n${ask.action}\n${ask.inputHash}`).digest('hex')}`;
  const earlier = await deps.db
    .selectFrom('approval_requests')
    .select(['id', 'status', 'decided_at', 'consumed_at', 'final_reason', 'idempotency_key'])
    .where('requested_by', '=', actor)
    .where('agent_id', '=', session.agentId)
    .where('idempotency_key', 'like', `${base}:%`)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (earlier) {
    const open = earlier.status === 'pending' || (earlier.status === 'approved' && earlier.consumed_at === null);
    if (open) return { id: earlier.id };
    const recentDenial = earlier.status === 'denied' && earlier.decided_at !== null && deps.clock.now().getTime() - earlier.decided_at.getTime() < PERMISSION_DENIAL_MEMORY_MS;
    if (recentDenial) return { denied: `Armalo: people denied this exact ${ask.action} request (${earlier.id}): ${earlier.final_reason ?? 'no reason given'}` };
  }
  const generation = earlier ? Number(earlier.idempotency_key?.slice(base.length + 1)) + 1 || 1 : 1;
  const preview = ask.inputJson.length > 3000 ? `${ask.inputJson.slice(0, 3000)}…` : ask.inputJson;
  const { request } = await deps.approvals.create(
    {
      agentId: session.agentId,
      action: ask.action,
      context: ask.context,
      justification: `The coding agent asks to use the tool ${ask.toolName} with this input: ${preview}`,
      idempotencyKey: `${base}:${generation}`,
    },
    actor,
  );
  return { id: request.id };
}
