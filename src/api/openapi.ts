import { z } from 'zod';
import {
  actionAwaitingConfirmationSchema,
  fleetActionInputSchema,
  fleetAwaitingSchema,
  fleetPreviewSchema,
  policyCheckResultSchema,
  fleetResultSchema,
  actionInputSchema,
  actionResultSchema,
  decommissionQuerySchema,
  decommissionResultSchema,
  confirmationIdSchema,
  confirmationOutputSchema,
  agentIdSchema,
  agentInputSchema,
  agentOutputSchema,
  agentImportLineSchema,
  agentImportResultSchema,
  auditListSchema,
  auditQuerySchema,
  auditVerifyQuerySchema,
  auditVerifySchema,
  approvalIdSchema,
  approvalOutputSchema,
  approvalRequestInputSchema,
  approvalWaitQuerySchema,
  evaluationInputSchema,
  inboundEventSchema,
  pactInputSchema,
  decisionInputSchema,
  decisionOutputSchema,
  errorSchema,
  packetInputSchema,
  agentListItemSchema,
  agentListQuerySchema,
  approvalListQuerySchema,
  incidentDetailSchema,
  incidentIdSchema,
  incidentListQuerySchema,
  incidentSummarySchema,
  fleetIncidentSummarySchema,
  incidentListItemSchema,
  consoleSessionDeleteQuerySchema,
  consoleSessionIdSchema,
  consoleSessionListQuerySchema,
  consoleSessionRevocationSchema,
  consoleSessionRevokeInputSchema,
  consoleSessionSchema,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  pageOf,
} from './schemas.js';
import { IMPORT_MAX_BYTES, IMPORT_MAX_LINE_BYTES } from '../agents/agent-import.js';

type JsonObject = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonObject;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schemaRef: JsonObject) => ({ content: { 'application/json': { schema: schemaRef } } });
const errors = (...codes: number[]): JsonObject =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      {
        description: ({ 400: 'Invalid input', 401: 'Missing or wrong bearer token', 404: 'Unknown agent', 409: 'Conflicts with the agent\'s state', 413: 'Body too large', 415: 'Not JSON' } as Record<number, string>)[c] ?? 'Error',
        ...json(ref('Error')),
      },
    ]),
  );
const agentIdParam = { name: 'agentId', in: 'path', required: true, schema: jsonSchema(agentIdSchema, 'input') };

/** The change stream's contract (docs/stream.md); the events are the `Wire*` shapes of src/domain/wire.ts. */
const STREAM_DESCRIPTION = [
  'Keeps an agent\'s (or a platform\'s) copy of permission state current; the agent SDK answers `check()` from it. Send `Accept: text/event-stream`. Errors before the stream starts are JSON as usual.',
  '',
  'Every event\'s `data:` is one line of JSON (dates as ISO-8601 strings, versions as decimal strings):',
  '',
  '| event | `id:` | `data` | when |',
  '|---|---|---|---|',
  '| `snapshot` | view version | `{version, agents, approvals, routing}`: every agent in scope, their open approval requests, the policy\'s routing rules (role names, never people) | first, and whenever a resume cannot be replayed |',
  '| `agent` | the agent\'s version | `{version, agent}`: one agent\'s whole new state (status, grants, actions in force, trust) | every change to an agent in scope |',
  '| `approval` | view version | `{approval}`: a request\'s new status (`pending`, `approved`, `denied`, `expired`, `cancelled`, `consumed`) | every change to an approval request of an agent in scope |',
  '',
  'A comment heartbeat (`: ok <version>`) arrives at least every 15 seconds while the replica\'s view is fresh; a replica that cannot confirm its view stops sending them, so a client\'s staleness bound trips. `retry: 1000` is sent once. Reconnect with `Last-Event-ID` to resume.',
].join('\n');

/** The MCP endpoint's contract (DESIGN §5); the protocol itself is the MCP specification's. */
const MCP_DESCRIPTION = [
  'A stateless Streamable HTTP endpoint of the Model Context Protocol: the body is one JSON-RPC 2.0 message (`initialize`, `tools/list`, `tools/call`, …) as the MCP specification defines it, and the client accepts both `application/json` and `text/event-stream`.',
  '',
  'Tools: `check_action {action, context?}`, `request_approval {action, context?, justification, idempotencyKey?}`, `get_approval {id}`, `wait_for_approval {id, timeoutSeconds}` (at most 50), `request_permission {tool_name, input}` (answers `{"behavior":"allow","updatedInput":{…}}` or `{"behavior":"deny","message":"…"}`), `my_status {}`.',
  '',
  'The bearer token and its scope are checked before any message is read. What the tools answer (allow, deny, approval required, a request\'s status) is a tool result inside a 200, never an HTTP error status.',
].join('\n');

/** A JSON-RPC 2.0 message (request, notification or response); MCP defines the methods and their params. */
const JSON_RPC_MESSAGE: JsonObject = {
  type: 'object',
  description: 'A JSON-RPC 2.0 message; see the Model Context Protocol specification for methods, params and results',
  properties: {
    jsonrpc: { const: '2.0' },
    id: { type: ['string', 'integer'] },
    method: { type: 'string', examples: ['tools/call'] },
    params: { type: 'object' },
    result: { type: 'object' },
    error: {
      type: 'object',
      properties: { code: { type: 'integer' }, message: { type: 'string' }, data: {} },
      required: ['code', 'message'],
    },
  },
  required: ['jsonrpc'],
};

/** JSON content with an example answer. */
const jsonExample = (schemaRef: JsonObject, example: unknown) => ({ content: { 'application/json': { schema: schemaRef, example } } });

/** Descriptions for listing filters whose schema carries none (plain enums and ids). */
const LIST_PARAM_HELP: Record<string, string> = {
  status: 'Only items with this status',
  riskTier: 'Only agents with this risk tier',
  agentId: "Only this agent's items (an `agent=<agentId>` token: its own agent only; naming another is 403)",
};

/** A listing's query parameters, from the zod schema its handler validates with (unknown parameters are a 400). */
function listParams(schema: z.ZodType): JsonObject[] {
  const { properties } = jsonSchema(schema, 'input') as { properties: Record<string, JsonObject> };
  return Object.entries(properties).map(([name, raw]) => {
    const { description, ...rest } = raw as { description?: string } & JsonObject;
    const paramSchema = name === 'limit' ? { type: 'integer', minimum: 1, maximum: LIST_LIMIT_MAX, default: LIST_LIMIT_DEFAULT } : rest;
    return { name, in: 'query', required: false, description: description ?? LIST_PARAM_HELP[name] ?? name, schema: paramSchema };
  });
}

const LIST_400 = 'Bad query input: an unknown parameter or value, a parameter given twice, a limit outside 1-200, or a cursor that is not the `nextCursor` of this listing';
const EXAMPLE_CURSOR = 'eyJrIjoiYSIsImlkIjoidW5kZXJ3cml0aW5nLWJvdCJ9';
const EXAMPLE_AGENT = {
  id: 'underwriting-bot',
  name: 'Underwriting bot',
  owner: 'ana@example.com',
  riskTier: 'high',
  status: 'contained',
  score: 712,
  tier: 'gold',
  grants: [
    { id: '41', scope: 'mail:send', constraints: {}, keepInContainment: true, expiresAt: null, state: 'active', heldBy: null, grantedBy: 'api:platform', grantedAt: '2026-12-01T09:00:00.000Z' },
    { id: '42', scope: 'payments:transfer', constraints: { maxAmount: 10000 }, keepInContainment: false, expiresAt: null, state: 'suspended', heldBy: { actionId: '9b2f3c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f', kind: 'contain' }, grantedBy: 'api:platform', grantedAt: '2026-12-01T09:00:00.000Z' },
  ],
  activeActions: [
    { id: '9b2f3c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f', kind: 'contain', scopes: [], reason: 'prompt injection suspected', actor: 'slack:U0ONCALL1', createdAt: '2026-12-02T08:14:03.120Z', expiresAt: null, grants: [{ grantId: '42', scope: 'payments:transfer' }] },
  ],
  updatedAt: '2026-12-02T08:14:03.120Z',
  version: '1042',
};
const EXAMPLE_APPROVAL = {
  id: '0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5',
  agentId: 'underwriting-bot',
  action: 'payments:transfer',
  context: { amount: 25000, currency: 'USD' },
  justification: 'Quarterly reinsurance premium',
  requestedBy: 'api:platform',
  status: 'pending',
  route: {
    ruleId: 'big-payments',
    matched: ['big-payments'],
    quorum: 2,
    requirements: [{ ruleId: 'big-payments', roles: ['risk-owner', 'ciso'], count: 2, approvers: ['risk@example.com', 'ciso@example.com'] }],
    escalated: false,
    channel: null,
    why: { 'big-payments': ['action payments:transfer matches payments:*', 'amount 25000 is over 10000'] },
    trust: { score: 712, tier: 'gold', evidenceAgeDays: 3 },
  },
  decisions: [{ by: 'slack:U0RISK', decision: 'approve', reason: null, at: '2026-12-02T08:03:10.442Z', via: 'slack' }],
  createdAt: '2026-12-02T08:01:55.000Z',
  expiresAt: '2026-12-02T12:01:55.000Z',
  decidedAt: null,
  finalReason: null,
  grantUntil: null,
};
const EXAMPLE_INCIDENT = {
  id: '5d6e7f80-91a2-4b3c-8d4e-5f60718293a4',
  kind: 'agent',
  agentId: 'underwriting-bot',
  agentName: 'Underwriting bot',
  agentStatus: 'contained',
  status: 'open',
  openedAt: '2026-12-02T08:14:03.120Z',
  openedBy: 'slack:U0ONCALL1',
  openedVia: 'slack',
  openedWith: 'contain',
  reason: 'prompt injection suspected',
  closedAt: null,
  closedBy: null,
  steps: 2,
  fleetIncidentId: null,
};
const EXAMPLE_FLEET_INCIDENT = {
  id: '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  kind: 'fleet',
  status: 'open',
  openedAt: '2026-12-02T08:20:11.500Z',
  openedBy: 'slack:U0CISO',
  openedVia: 'slack',
  openedWith: 'contain',
  reason: 'payments vendor SDK compromised',
  closedAt: null,
  closedBy: null,
  selector: { scope: 'payments:*' },
  selectorText: 'scope:payments:*',
  count: 9000,
  heldNow: 9000,
};
const EXAMPLE_INCIDENT_DETAIL = {
  ...EXAMPLE_INCIDENT,
  agent: { id: 'underwriting-bot', name: 'Underwriting bot', owner: 'ana@example.com', riskTier: 'high', status: 'contained' },
  heldGrants: [{ scope: 'payments:transfer', state: 'suspended' }],
  timeline: [
    { at: '2026-12-02T08:14:03.120Z', actor: 'slack:U0ONCALL1', via: 'slack', event: 'contain', actionId: '9b2f3c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f', reason: 'prompt injection suspected', scopes: [], grants: ['payments:transfer'], expiresAt: null, liftedAt: null, liftedBy: null, approvalsCancelled: ['0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5'], auditSeq: '311' },
    { at: '2026-12-02T08:20:41.007Z', actor: 'api:platform', via: 'api', event: 'restore_requested', confirmationId: '7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d', reason: 'false alarm', outcome: null, decidedBy: null, decidedAt: null },
  ],
};

const EXAMPLE_CONSOLE_SESSION = {
  id: '8c9d0e1f-2a3b-4c5d-8e6f-7a8b9c0d1e2f',
  person: 'slack:U0ONCALL1',
  platform: 'slack',
  userId: 'U0ONCALL1',
  emails: ['oncall@example.com'],
  createdAt: '2026-12-02T08:02:11.000Z',
  expiresAt: '2026-12-02T16:02:11.000Z',
};

/** The OpenAPI 3.1 document of the REST API, generated from the same zod schemas the handlers use. */
export function buildOpenApiDocument(): JsonObject {
  const auditQuery = jsonSchema(auditQuerySchema, 'input') as { properties: Record<string, JsonObject> };
  const auditVerifyQuery = jsonSchema(auditVerifyQuerySchema, 'input') as { properties: Record<string, JsonObject> };
  return withTokenScopes({
    openapi: '3.1.0',
    info: {
      title: 'Armalo chat-ops API',
      version: '1.0.0',
      description:
        'Register agents and their grants, ask for runtime decisions, act on agents (narrow, contain, revoke, restore) and read the hash-chained audit log. Every call needs `Authorization: Bearer <token>` (ARMALO_API_TOKENS).',
    },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    paths: {
      '/v1/agents': {
        get: {
          operationId: 'listAgents',
          summary: 'Agents, page by page in id order, filtered by status, owner, risk tier, a scope glob they hold, or a search',
          description:
            'Filters combine (AND). Each item has the shape of GET /v1/agents/{agentId}. Follow `nextCursor` until it is null; a page may hold fewer than `limit` items only when it is the last. An `agent=<agentId>` token sees only its own agent.',
          parameters: listParams(agentListQuerySchema),
          responses: {
            '200': { description: 'A page of agents', ...jsonExample(ref('AgentPage'), { items: [EXAMPLE_AGENT], nextCursor: EXAMPLE_CURSOR }) },
            '400': { description: LIST_400, ...json(ref('Error')) },
            ...errors(401),
          },
        },
      },
      '/v1/agents:import': {
        post: {
          operationId: 'importAgents',
          summary: 'Register or update many agents from NDJSON, one agent per line; each line applied or refused on its own',
          description: [
            'The body is streamed: lines are checked as `PUT /v1/agents/{agentId}` checks its body (plus `id`) and applied in batches while the rest arrives; a refused line (bad JSON, an invalid field, a widening of a contained or revoked agent, a decommissioned id) is listed with its line number and the others go on. Each agent that changes gets its own audit entry and event, and a new version; a line that changes nothing (a repeated import) is counted as `unchanged`. Two lines for one agent apply in order. Blank lines are skipped (they still count).',
            '',
            `Limits: ${IMPORT_MAX_LINE_BYTES} bytes per line (a longer line is refused, the rest goes on), ${IMPORT_MAX_BYTES} bytes per import (413). What was applied before an error that stops the import (413, 503) stays applied: the error says up to which line; sending the lines again is safe. The upload must end within the server's request timeout (60 s): split larger fleets into several imports.`,
          ].join('\n'),
          requestBody: { required: true, content: { 'application/x-ndjson': { schema: ref('AgentImportLine'), example: `${JSON.stringify({ id: 'underwriting-bot', name: 'Underwriting bot', owner: 'ana@example.com', riskTier: 'high', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 10000 } }] })}\n${JSON.stringify({ id: 'claims-bot', name: 'Claims bot', owner: 'li@example.com', riskTier: 'medium', grants: [{ scope: 'crm:read' }] })}\n` } } },
          responses: {
            '200': { description: 'Every line read: how many were applied, and each refused line with its number and why', ...jsonExample(ref('AgentImportResult'), { applied: 2, created: 1, updated: 0, unchanged: 1, refused: [{ line: 3, error: 'invalid agent: riskTier: Invalid option: expected one of "low"|"medium"|"high"|"critical"' }], refusedCount: 1, lines: 3 }) },
            '400': { description: 'The body has no line at all', ...json(ref('Error')) },
            ...errors(401),
            '413': { description: `The import is larger than ${IMPORT_MAX_BYTES} bytes; what was applied before stays applied`, ...json(ref('Error')) },
            '415': { description: 'Not `application/x-ndjson`', ...json(ref('Error')) },
            '503': { description: 'The import stopped on our side; the message says up to which line it got, and sending the lines again is safe', ...json(ref('Error')) },
          },
        },
      },
      '/v1/agents/{agentId}': {
        put: {
          operationId: 'putAgent',
          summary: 'Register or update an agent; its grant set becomes exactly the list sent',
          parameters: [agentIdParam],
          requestBody: { required: true, ...json(ref('AgentInput')) },
          responses: {
            '200': { description: 'Updated (or unchanged)', ...json(ref('Agent')) },
            '201': { description: 'Registered', ...json(ref('Agent')) },
            ...errors(400, 401, 413, 415),
            '409': { description: 'The agent is contained or revoked and this update would widen it (a new grant, a higher or removed limit, a new keepInContainment, a removed or later expiry, a lower risk tier); nothing changed. `error.details` lists each widening', ...json(ref('Error')) },
          },
        },
        get: {
          operationId: 'getAgent',
          summary: 'Agent status, grants with their state, actions in force',
          parameters: [agentIdParam],
          responses: { '200': { description: 'The agent', ...json(ref('Agent')) }, ...errors(400, 401, 404) },
        },
        delete: {
          operationId: 'decommissionAgent',
          summary: 'Decommission: retire the agent for good; its history stays and its id stays reserved',
          description:
            'Removes every grant, lifts the actions in force, cancels its pending and approved-but-unused approval requests, ends open restore confirmations and closes an open incident, in one transaction. Decisions then answer `deny` with reason code `agent_decommissioned`; `PUT` of the same id and actions answer 409. Audited (`agent.decommissioned`, also an outbound event) and announced in the incidents channel. Idempotent: a second call changes nothing and answers the first result with `replayed: true`.',
          parameters: [agentIdParam, ...listParams(decommissionQuerySchema)],
          responses: {
            '200': {
              description: 'Decommissioned (or already decommissioned: `replayed` is true)',
              ...{ content: { 'application/json': { schema: ref('DecommissionResult'), example: { agentId: 'underwriting-bot', status: 'decommissioned', statusBefore: 'contained', decommissionedAt: '2026-12-02T09:30:00.000Z', decommissionedBy: 'api:ops', reason: 'replaced by underwriting-bot-v2', grantsRemoved: [{ grantId: '5b0c…', scope: 'payments:transfer' }], approvalRequestsCancelled: [], incidentClosed: null, version: '42', replayed: false } } } },
            },
            ...errors(400, 401, 404),
          },
        },
      },
      '/v1/agents/{agentId}/actions': {
        post: {
          operationId: 'actOnAgent',
          summary: 'Narrow, contain, revoke or restore an agent (or a dry run of it)',
          description:
            'A retry with the same `Idempotency-Key` header (per API token) answers the first result, with `replayed: true`, instead of acting again; a restore waiting for a second person answers the same 202 and confirmation again (no second question in the incident thread). A key that is empty, longer than 200 characters or not visible ASCII is refused (400).',
          parameters: [
            agentIdParam,
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description: 'Makes a retry safe: the same key (per API token) answers the first result instead of acting again',
              schema: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' },
            },
          ],
          requestBody: { required: true, ...json(ref('ActionInput')) },
          responses: {
            '200': { description: 'Dry run: what would change; nothing changed', ...json(ref('ActionResult')) },
            '201': { description: 'Applied', ...json(ref('ActionResult')) },
            '202': {
              description:
                "A restore under the policy's `permissions.restore.secondPerson`: nothing changed yet; a person with a restore role is asked in the incident thread. `GET /v1/confirmations/{id}` tells how it ended",
              ...json(ref('ActionAwaitingConfirmation')),
            },
            ...errors(400, 401, 404, 409, 413, 415),
          },
        },
      },
      '/v1/actions': {
        post: {
          operationId: 'actOnFleet',
          summary: 'Contain, narrow or restore every agent a selector matches, as one fleet incident (or a dry run of it)',
          description:
            "`selector` keys combine with AND (`scope`: agents holding a grant the glob overlaps; `owner`; `riskTier`); an empty selector is refused. The set is resolved from Postgres inside the action's transaction: the agents answered are exactly the agents acted on. A containment commits a hold on the set first (the answer's `version`: every replica that holds it treats the set as contained), then, right after, each agent's action as a single action records it (audit entry, event, its own version and incident), linked to one fleet incident with one notice in the incidents channel; a narrow records them in one commit. Agents already contained are reported in `unchanged`, not contained again. A restore lifts exactly what the open fleet incident with the same selector still holds; agents the policy's `restore.freshEvaluation` blocks stay held and are listed in `stillHeld`. Admin tokens act at any count (the policy's `permissions.bulk.confirmAbove` asks people in chat); under `restore.secondPerson` a restore waits for one person's confirmation for the whole set (202). A retry with the same `idempotencyKey` (or `Idempotency-Key` header) gets the first answer, with `replayed: true` (a restore: the same result, or the same 202 and confirmation); keys are per API token; a header that is empty, longer than 200 characters or not visible ASCII is refused (400).",
          requestBody: { required: true, ...json(ref('FleetActionInput')) },
          responses: {
            '200': { description: 'Dry run: the count and a sample; nothing changed', ...json(ref('FleetPreview')) },
            '201': { description: 'Applied', ...json(ref('FleetResult')) },
            '202': { description: "A restore under `permissions.restore.secondPerson`: nothing changed yet; a person with a restore role is asked in the fleet incident's thread", ...json(ref('FleetAwaitingConfirmation')) },
            ...errors(400, 401, 403, 409, 413, 415),
          },
        },
      },
      '/v1/confirmations/{id}': {
        get: {
          operationId: 'getConfirmation',
          summary: 'A two-step action waiting for a person (a restore asked for over the API): pending, confirmed, cancelled or expired',
          parameters: [{ name: 'id', in: 'path', required: true, schema: jsonSchema(confirmationIdSchema, 'input') }],
          responses: { '200': { description: 'The confirmation', ...json(ref('Confirmation')) }, ...errors(400, 401), '404': { description: 'Unknown confirmation', ...json(ref('Error')) } },
        },
      },
      '/v1/decisions': {
        post: {
          operationId: 'createDecision',
          summary: 'May this agent do this now? Unknown agents are denied (fail closed).',
          requestBody: { required: true, ...json(ref('DecisionInput')) },
          responses: { '200': { description: 'The decision with its reasons', ...json(ref('Decision')) }, ...errors(400, 401, 413, 415) },
        },
      },
      '/v1/approval-requests': {
        get: {
          operationId: 'listApprovalRequests',
          summary: 'Approval requests, newest first, filtered by status, agent or approver',
          description: 'Filters combine (AND). Each item has the shape of GET /v1/approval-requests/{id}. Follow `nextCursor` until it is null. An `agent=<agentId>` token sees only its own agent\'s requests.',
          parameters: listParams(approvalListQuerySchema),
          responses: {
            '200': { description: 'A page of approval requests', ...jsonExample(ref('ApprovalRequestPage'), { items: [EXAMPLE_APPROVAL], nextCursor: null }) },
            '400': { description: LIST_400, ...json(ref('Error')) },
            ...errors(401),
          },
        },
        post: {
          operationId: 'createApprovalRequest',
          summary: 'Ask for approval of an action; routed by the policy. Same idempotencyKey (per token) → the same request.',
          requestBody: { required: true, ...json(ref('ApprovalRequestInput')) },
          responses: {
            '200': { description: 'The existing request for this idempotencyKey', ...json(ref('ApprovalRequest')) },
            '201': { description: 'Created, pending', ...json(ref('ApprovalRequest')) },
            ...errors(400, 401, 404, 409, 413, 415),
          },
        },
      },
      '/v1/approval-requests/{id}': {
        get: {
          operationId: 'getApprovalRequest',
          summary: 'A request with its route and decisions; `?wait=N` long-polls until it ends (at most N seconds)',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: jsonSchema(approvalIdSchema, 'input') },
            { name: 'wait', in: 'query', required: false, schema: (jsonSchema(approvalWaitQuerySchema, 'input') as { properties: Record<string, JsonObject> }).properties.wait },
          ],
          responses: { '200': { description: 'The request', ...json(ref('ApprovalRequest')) }, ...errors(400, 401, 404) },
        },
      },
      '/v1/approval-requests/{id}/cancel': {
        post: {
          operationId: 'cancelApprovalRequest',
          summary: 'Cancel a pending request (the requesting token only); no body needed',
          parameters: [{ name: 'id', in: 'path', required: true, schema: jsonSchema(approvalIdSchema, 'input') }],
          responses: { '200': { description: 'Cancelled', ...json(ref('ApprovalRequest')) }, ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/stream': {
        get: {
          operationId: 'streamChanges',
          summary: 'Server-Sent Events: the permission state of the agents in scope, then every change to it',
          description: STREAM_DESCRIPTION,
          parameters: [
            {
              name: 'agentId',
              in: 'query',
              required: false,
              description: 'Only this agent. Admin and platform tokens see every agent without it; an `agent=<agentId>` token sees only its own agent (naming another is 403).',
              schema: jsonSchema(agentIdSchema, 'input'),
            },
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description:
                'Resume: the last `id:` (a version) this client saw. Changes after it are replayed as `agent` events; a version the replica can no longer replay (too old, unknown or ahead of its view) gets a fresh `snapshot` instead.',
              schema: { type: 'string', pattern: '^[0-9]+$', example: '1042' },
            },
          ],
          responses: {
            '200': {
              description: 'The stream (`Cache-Control: no-store`); it stays open until the client or the server closes it',
              content: { 'text/event-stream': { schema: { type: 'string', description: 'Server-Sent Events as described above; every `data:` is one line of JSON' } } },
            },
            ...errors(400, 401),
            '503': { description: 'This replica cannot confirm its permission view is fresh (`view_stale`); try again or another replica', ...json(ref('Error')) },
          },
        },
      },
      '/mcp': {
        post: {
          operationId: 'sendMcpMessage',
          summary: 'Model Context Protocol server (Streamable HTTP) with the agent tools: check_action, request_approval, get_approval, wait_for_approval, request_permission, my_status',
          description: MCP_DESCRIPTION,
          parameters: [
            {
              name: 'agentId',
              in: 'query',
              required: false,
              description: 'The agent the tools act for. Required with an admin or platform token; an `agent=<agentId>` token fixes the agent (naming another is 403).',
              schema: jsonSchema(agentIdSchema, 'input'),
            },
          ],
          requestBody: { required: true, description: 'One JSON-RPC 2.0 message as the MCP specification defines it', ...json(ref('JsonRpcMessage')) },
          responses: {
            '200': {
              description: 'The JSON-RPC response to a request, as JSON or as a short Server-Sent Events stream ending with it (the client sends `Accept: application/json, text/event-stream`)',
              content: {
                'application/json': { schema: ref('JsonRpcMessage') },
                'text/event-stream': { schema: { type: 'string', description: 'Server-Sent Events whose `data:` are JSON-RPC messages' } },
              },
            },
            '202': { description: 'A notification or a response was accepted; no body' },
            '400': { description: 'Not a valid MCP message, or an admin or platform token without `agentId`; nothing ran' },
            ...errors(401),
            '403': {
              description: 'An `agent=<agentId>` token used for another agent, or a request from a browser origin other than this service (the MCP specification asks servers to check `Origin`)',
              ...json(ref('Error')),
            },
          },
        },
      },
      '/v1/agents/{agentId}/pacts': {
        post: {
          operationId: 'upsertPact',
          summary: "Create or update one of the agent's pacts (by pact id)",
          parameters: [agentIdParam],
          requestBody: { required: true, ...json(ref('PactInput')) },
          responses: { '200': { description: 'Updated; all pacts' }, '201': { description: 'Created; all pacts' }, ...errors(400, 401, 404, 413, 415) },
        },
        get: { operationId: 'listPacts', summary: "The agent's pacts", parameters: [agentIdParam], responses: { '200': { description: 'Pacts' }, ...errors(400, 401, 404) } },
      },
      '/v1/agents/{agentId}/evaluations': {
        post: {
          operationId: 'recordEvaluation',
          summary: 'Record an evaluation result (idempotent by its id) and recompute the Score',
          parameters: [agentIdParam],
          requestBody: { required: true, ...json(ref('EvaluationInput')) },
          responses: { '200': { description: 'Already recorded; nothing changed' }, '201': { description: 'Recorded; the current score' }, ...errors(400, 401, 404, 413, 415) },
        },
      },
      '/v1/agents/{agentId}/score': {
        get: { operationId: 'getAgentScore', summary: 'Score, tier, 30-day trend, evidence freshness per pact', parameters: [agentIdParam], responses: { '200': { description: 'The score (null when there is no data)' }, ...errors(400, 401, 404) } },
      },
      '/webhooks/armalo': {
        post: {
          operationId: 'receiveArmaloEvent',
          summary: 'Signed Armalo events (X-Armalo-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">, 5 minutes of skew at most; deduped by id)',
          security: [],
          requestBody: { required: true, ...json(ref('InboundEvent')) },
          responses: {
            '200': { description: 'Applied, or a duplicate id (acknowledged, nothing changed)' },
            '202': { description: 'Unknown agent: held (status "held"), applied when the agent is registered. At most 10,000 events are held; held events of agents never registered are dropped after 7 days' },
            ...errors(400, 401, 413, 503),
          },
        },
      },
      '/v1/trust-packets': {
        post: {
          operationId: 'createTrustPacket',
          summary: 'Request a trust packet; it is built by a job (202, then GET it)',
          requestBody: { required: true, ...json(ref('TrustPacketRequest')) },
          responses: { '202': { description: 'Accepted: building' }, ...errors(400, 401, 404, 413, 415) },
        },
      },
      '/v1/trust-packets/{id}': {
        get: {
          operationId: 'getTrustPacket',
          summary: 'The packet: status and content as JSON, or ?format=markdown|pdf once ready',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
            { name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'markdown', 'pdf'], default: 'json' } },
          ],
          responses: { '200': { description: 'The packet' }, ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/trust-packets/{id}/verify': {
        get: {
          operationId: 'verifyTrustPacket',
          summary: 'Recompute the stored packet hash (intact or tampered) and report how current its evidence still is',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
          responses: { '200': { description: 'Verification' }, ...errors(400, 401, 404) },
        },
      },
      '/v1/incidents': {
        get: {
          operationId: 'listIncidents',
          summary: 'Incidents, newest first, filtered by status (open or closed) and agent',
          description: 'An incident runs from the first restriction of an agent until it is active again (`kind: "agent"`; `fleetIncidentId` names the fleet incident that opened it, if any). Without `agentId`, admin and platform tokens also see fleet incidents (`kind: "fleet"`: one per `POST /v1/actions` contain or narrow, with its `selector`, `selectorText`, `count` and `heldNow`), in the same order; a fleet incident closes once none of its agent actions is in force. Follow `nextCursor` until it is null. An `agent=<agentId>` token sees only its own agent\'s incidents.',
          parameters: listParams(incidentListQuerySchema),
          responses: {
            '200': { description: 'A page of incidents', ...jsonExample(ref('IncidentPage'), { items: [EXAMPLE_FLEET_INCIDENT, EXAMPLE_INCIDENT], nextCursor: null }) },
            '400': { description: LIST_400, ...json(ref('Error')) },
            ...errors(401),
          },
        },
      },
      '/v1/incidents/{id}': {
        get: {
          operationId: 'getIncident',
          summary: 'One incident with its timeline: who did what, when, via which platform (as the Slack and Teams threads tell it)',
          description:
            'The timeline holds the incident\'s actions (narrow, contain, revoke, restore) with the audit entry recording each, lifts by ttl (`expired`), two-step revokes and restores asked for during it with their outcome, and its end (`closed`); oldest first. Nothing else from the audit log. A fleet incident (the `incidentId` of `POST /v1/actions`) answers with `kind: "fleet"`: its selector, action, `count`, the first 100 `agents`, `heldNow`, `restored`, `expired` and a timeline of its steps grouped per run (`{at, actor, event, agents}`); agent-scoped tokens do not see fleet incidents.',
          parameters: [{ name: 'id', in: 'path', required: true, schema: jsonSchema(incidentIdSchema, 'input') }],
          responses: {
            '200': { description: 'The incident', ...jsonExample(ref('Incident'), EXAMPLE_INCIDENT_DETAIL) },
            ...errors(400, 401),
            '404': { description: 'Unknown incident', ...json(ref('Error')) },
          },
        },
      },
      '/v1/console/sessions': {
        get: {
          operationId: 'listConsoleSessions',
          summary: 'Open web console sessions (not expired, not ended), newest first, optionally one person\'s',
          description:
            'Each item names the session by its public `id` (never the cookie, which only its holder has) and the chat person it acts as. Follow `nextCursor` until it is null. Sessions last 8 hours from sign-in; a person removed from the policy keeps a listed session but it opens nothing (every request reads the policy in force).',
          parameters: listParams(consoleSessionListQuerySchema),
          responses: {
            '200': { description: 'A page of open sessions', ...jsonExample(ref('ConsoleSessionPage'), { items: [EXAMPLE_CONSOLE_SESSION], nextCursor: null }) },
            '400': { description: 'Bad query input: an unknown parameter, a `person` that is not `slack:…`, `teams:…` or an email, a limit outside 1-200, or a cursor that is not the `nextCursor` of this listing', ...json(ref('Error')) },
            ...errors(401),
          },
        },
      },
      '/v1/console/sessions/{sessionId}': {
        delete: {
          operationId: 'revokeConsoleSession',
          summary: 'End one web console session',
          description:
            'The session ends at once: its next page load answers 401 and its next form post 403, as for a session that signed out or expired. One audit entry (`console.sessions_revoked`, actor `api:<token name>`, subject the person, payload `{sessionIds, ended, reason, scope: "session"}`) is written in the same transaction. A session that had already ended answers `ended: 0` and changes nothing (no audit entry).',
          parameters: [
            { name: 'sessionId', in: 'path', required: true, description: 'The `id` GET /v1/console/sessions lists', schema: jsonSchema(consoleSessionIdSchema, 'input') },
            ...listParams(consoleSessionDeleteQuerySchema),
          ],
          responses: {
            '200': { description: 'What was ended', ...jsonExample(ref('ConsoleSessionRevocation'), { person: 'slack:U0ONCALL1', ended: 1, sessionIds: [EXAMPLE_CONSOLE_SESSION.id] }) },
            ...errors(400, 401),
            '404': { description: 'No session has this id', ...json(ref('Error')) },
          },
        },
      },
      '/v1/console/sessions:revoke': {
        post: {
          operationId: 'revokeConsoleSessionsOfPerson',
          summary: 'End every open web console session of one person (a lost laptop, someone leaving)',
          description:
            'Ends, in one transaction, every open session of the person: by chat identity (`slack:<user id>`, `teams:<AAD object id>`) or by an email the chat platform resolved for them at sign-in (so one call reaches their Slack and Teams sessions). One audit entry (`console.sessions_revoked`, actor `api:<token name>`, subject the person as given, payload `{sessionIds, ended, reason, scope: "person"}`) is written in the same transaction when any session ended; with none open it answers `ended: 0` and changes nothing. Ending sessions does not take the person out of the policy: they can sign in again from chat until they are removed from it (or from the chat workspace).',
          requestBody: { required: true, ...jsonExample(ref('ConsoleSessionRevokeInput'), { person: 'slack:U0ONCALL1', reason: 'laptop reported lost' }) },
          responses: {
            '200': { description: 'What was ended', ...jsonExample(ref('ConsoleSessionRevocation'), { person: 'slack:U0ONCALL1', ended: 2, sessionIds: [EXAMPLE_CONSOLE_SESSION.id, '3f2e1d0c-9b8a-4765-8432-10fedcba9876'] }) },
            ...errors(400, 401, 413, 415),
          },
        },
      },
      '/v1/audit': {
        get: {
          operationId: 'listAuditEntries',
          summary: 'Audit entries, newest first',
          parameters: Object.entries(auditQuery.properties).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
          responses: { '200': { description: 'A page of entries', ...json(ref('AuditPage')) }, ...errors(400, 401) },
        },
      },
      '/v1/audit/verify': {
        get: {
          operationId: 'verifyAuditChain',
          summary: 'Walk the hash chain and name the first broken entry',
          description:
            'Walks from the last audit checkpoint (kept in Postgres, itself a hash chain) to the head, so the cost follows the entries added since; `?full=true` walks the whole chain and checks every checkpoint against it. A verify that passes records a new checkpoint once enough entries lie past the last one.',
          parameters: Object.entries(auditVerifyQuery.properties).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
          responses: { '200': { description: 'Verification result', ...json(ref('AuditVerification')) }, ...errors(401) },
        },
      },
      '/v1/policy/check': {
        post: {
          operationId: 'checkPolicy',
          summary: 'Check a policy file (YAML) as a reload would, and what it would change against the running policy; nothing is applied',
          description:
            "The body is the policy file's text. A valid file answers 200 with its hash, the hash in force on this replica and the change summary the `policy.changed` audit entry would record; an invalid one answers 400 with every problem as `<path>: <message>` in `details`. A policy is changed only through its file (or SIGHUP). `npm run policy:check -- FILE --against URL` calls this with `ARMALO_TOKEN`.",
          requestBody: { required: true, content: { 'application/yaml': { schema: { type: 'string' } } } },
          responses: { '200': { description: 'Valid: what it would change', ...json(ref('PolicyCheckResult')) }, ...errors(400, 401, 413) },
        },
      },
      '/v1/openapi.json': {
        get: { operationId: 'getOpenApiDocument', summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1 document' } } },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A token from ARMALO_API_TOKENS (`name:token[:scope]`). Scope `admin` (the default) may call every operation; `platform` only operations marked `x-token-scope: platform`; `agent=<agentId>` the same as platform, for that one agent only.',
        },
      },
      schemas: {
        AgentInput: jsonSchema(agentInputSchema, 'input'),
        AgentImportLine: jsonSchema(agentImportLineSchema, 'input'),
        AgentImportResult: jsonSchema(agentImportResultSchema, 'output'),
        Agent: jsonSchema(agentOutputSchema, 'output'),
        ActionInput: jsonSchema(actionInputSchema, 'input'),
        ActionResult: jsonSchema(actionResultSchema, 'output'),
        DecommissionResult: jsonSchema(decommissionResultSchema, 'output'),
        ActionAwaitingConfirmation: jsonSchema(actionAwaitingConfirmationSchema, 'output'),
        FleetActionInput: jsonSchema(fleetActionInputSchema, 'input'),
        FleetPreview: jsonSchema(fleetPreviewSchema, 'output'),
        PolicyCheckResult: jsonSchema(policyCheckResultSchema, 'output'),
        FleetResult: jsonSchema(fleetResultSchema, 'output'),
        FleetAwaitingConfirmation: jsonSchema(fleetAwaitingSchema, 'output'),
        Confirmation: jsonSchema(confirmationOutputSchema, 'output'),
        DecisionInput: jsonSchema(decisionInputSchema, 'input'),
        Decision: jsonSchema(decisionOutputSchema, 'output'),
        AuditPage: jsonSchema(auditListSchema, 'output'),
        AuditVerification: jsonSchema(auditVerifySchema, 'output'),
        ApprovalRequestInput: jsonSchema(approvalRequestInputSchema, 'input'),
        ApprovalRequest: jsonSchema(approvalOutputSchema, 'output'),
        PactInput: jsonSchema(pactInputSchema, 'input'),
        EvaluationInput: jsonSchema(evaluationInputSchema, 'input'),
        InboundEvent: jsonSchema(inboundEventSchema, 'input'),
        TrustPacketRequest: jsonSchema(packetInputSchema, 'input'),
        AgentPage: jsonSchema(pageOf(agentListItemSchema), 'output'),
        ApprovalRequestPage: jsonSchema(pageOf(approvalOutputSchema), 'output'),
        IncidentSummary: jsonSchema(incidentSummarySchema, 'output'),
        FleetIncidentSummary: jsonSchema(fleetIncidentSummarySchema, 'output'),
        IncidentPage: jsonSchema(pageOf(incidentListItemSchema), 'output'),
        Incident: jsonSchema(incidentDetailSchema, 'output'),
        ConsoleSessionPage: jsonSchema(pageOf(consoleSessionSchema), 'output'),
        ConsoleSessionRevokeInput: jsonSchema(consoleSessionRevokeInputSchema, 'input'),
        ConsoleSessionRevocation: jsonSchema(consoleSessionRevocationSchema, 'output'),
        JsonRpcMessage: JSON_RPC_MESSAGE,
        Error: jsonSchema(errorSchema, 'output'),
      },
    },
  });
}

/** What a token needs for each operation (DESIGN §5); every other authenticated operation needs admin. */
const PLATFORM_OPERATIONS = new Set([
  'get /v1/agents',
  'get /v1/agents/{agentId}',
  'get /v1/incidents',
  'get /v1/incidents/{id}',
  'get /v1/approval-requests',
  'get /v1/agents/{agentId}/score',
  'post /v1/decisions',
  'post /v1/approval-requests',
  'get /v1/approval-requests/{id}',
  'post /v1/approval-requests/{id}/cancel',
  'get /v1/confirmations/{id}',
  'get /v1/stream',
  'post /mcp',
]);

/**
 * Marks every authenticated operation with the token scope it needs (`x-token-scope`), the bearer
 * requirement and its 403. Operations with `security: []` are public and left alone. The router's
 * `auth` on each route says the same; a test calls every operation with each scope to hold them together.
 */
function withTokenScopes(doc: JsonObject): JsonObject {
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, JsonObject>>)) {
    for (const [method, op] of Object.entries(item)) {
      if (Array.isArray(op.security) && op.security.length === 0) continue;
      const scope = PLATFORM_OPERATIONS.has(`${method} ${path}`) ? 'platform' : 'admin';
      op['x-token-scope'] = scope;
      op.security = [{ bearerAuth: [] }];
      const responses = op.responses as Record<string, JsonObject>;
      // An operation that documents its own 403 (more reasons than the scope) keeps it.
      responses['403'] ??= {
        description:
          scope === 'admin'
            ? 'The token\'s scope is not admin (platform and agent tokens may not call this)'
            : 'An `agent=<agentId>` token used for another agent',
        ...json(ref('Error')),
      };
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
    }
  }
  return doc;
}

/** The checked-in file's exact text (a test keeps docs/openapi.json equal to it). */
export function renderOpenApiFile(): string {
  return `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;
}
