import { createConfig, lintFromString, type NormalizedProblem } from '@redocly/openapi-core';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument, renderOpenApiFile } from '../src/api/openapi.js';

/**
 * The API document through an independent OpenAPI linter (Redocly's `recommended` ruleset, offline),
 * with a missing operationId made an error: client generators name their methods after it.
 * test/ops.test.ts keeps docs/openapi.json equal to what is linted here.
 */

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

async function lint(source: string): Promise<NormalizedProblem[]> {
  const config = await createConfig({ extends: ['recommended'], rules: { 'operation-operationId': 'error' } });
  return lintFromString({ source, absoluteRef: 'openapi.json', config });
}

const describeProblem = (p: NormalizedProblem) => `${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`;

function operations(doc: Record<string, any>) {
  return Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]) => ({ at: `${method} ${path}`, op })),
  );
}

describe('the OpenAPI document under an independent linter', () => {
  it('has no errors under the recommended ruleset', async () => {
    const problems = await lint(renderOpenApiFile());
    const errors = problems.filter((p) => p.severity === 'error').map(describeProblem);
    expect(errors).toEqual([]);
  });

  it('every operation has a unique camelCase operationId', () => {
    const ops = operations(buildOpenApiDocument());
    expect(ops.length).toBeGreaterThanOrEqual(21);
    const missing = ops.filter(({ op }) => typeof op.operationId !== 'string').map(({ at }) => at);
    expect(missing).toEqual([]);
    const notCamel = ops.filter(({ op }) => !/^[a-z][A-Za-z0-9]*$/.test(op.operationId)).map(({ at, op }) => `${at}: ${op.operationId}`);
    expect(notCamel).toEqual([]);
    const ids = ops.map(({ op }) => op.operationId as string);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('keeps the names clients already use', () => {
    const idOf = (path: string, method: string) => (buildOpenApiDocument().paths as Record<string, Record<string, any>>)[path]?.[method]?.operationId;
    expect(idOf('/v1/agents/{agentId}', 'put')).toBe('putAgent');
    expect(idOf('/v1/agents/{agentId}', 'get')).toBe('getAgent');
    expect(idOf('/v1/agents/{agentId}/actions', 'post')).toBe('actOnAgent');
    expect(idOf('/v1/decisions', 'post')).toBe('createDecision');
    expect(idOf('/v1/approval-requests', 'post')).toBe('createApprovalRequest');
    expect(idOf('/v1/approval-requests/{id}', 'get')).toBe('getApprovalRequest');
    expect(idOf('/v1/approval-requests/{id}/cancel', 'post')).toBe('cancelApprovalRequest');
    expect(idOf('/v1/stream', 'get')).toBe('streamChanges');
    expect(idOf('/mcp', 'post')).toBe('sendMcpMessage');
  });

  it('a missing or duplicated operationId is reported as an error (the check bites)', async () => {
    const doc = buildOpenApiDocument() as Record<string, any>;
    delete doc.paths['/v1/decisions'].post.operationId;
    doc.paths['/v1/agents/{agentId}'].get.operationId = 'putAgent';
    const errors = (await lint(JSON.stringify(doc))).filter((p) => p.severity === 'error');
    expect(errors.map((p) => p.ruleId).sort()).toEqual(['operation-operationId', 'operation-operationId-unique']);
    expect(errors.find((p) => p.ruleId === 'operation-operationId')?.location[0]?.pointer).toBe('#/paths/~1v1~1decisions/post/operationId');
  });

  it('a dangling $ref is reported as an error (the check bites)', async () => {
    const doc = buildOpenApiDocument() as Record<string, any>;
    doc.paths['/mcp'].post.requestBody.content['application/json'].schema.$ref = '#/components/schemas/NoSuchThing';
    const errors = (await lint(JSON.stringify(doc))).filter((p) => p.severity === 'error');
    expect(errors.map((p) => p.ruleId)).toContain('no-unresolved-refs');
  });
});

describe('the change stream and the MCP endpoint are documented', () => {
  const doc = buildOpenApiDocument() as Record<string, any>;

  it('GET /v1/stream: Server-Sent Events, agentId and Last-Event-ID, its errors, platform scope', () => {
    const op = doc.paths['/v1/stream'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/event-stream']);
    for (const event of ['snapshot', 'agent', 'approval']) expect(op.description).toContain(`\`${event}\``);
    expect(op.parameters.map((p: { in: string; name: string }) => `${p.in} ${p.name}`).sort()).toEqual(['header Last-Event-ID', 'query agentId']);
    expect(Object.keys(op.responses).sort()).toEqual(['200', '400', '401', '403', '503']);
    expect(op['x-token-scope']).toBe('platform');
    expect(op.security).toEqual([{ bearerAuth: [] }]);
  });

  it('POST /mcp: a JSON-RPC body, agentId for platform tokens, bearer token, platform scope', () => {
    const op = doc.paths['/mcp'].post;
    expect(op.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/JsonRpcMessage' });
    expect(doc.components.schemas.JsonRpcMessage.properties.jsonrpc).toEqual({ const: '2.0' });
    expect(op.description).toMatch(/JSON-RPC 2\.0/);
    expect(op.parameters).toEqual([expect.objectContaining({ name: 'agentId', in: 'query', required: false })]);
    for (const status of ['200', '401', '403']) expect(op.responses[status], status).toBeDefined();
    expect(op['x-token-scope']).toBe('platform');
    expect(op.security).toEqual([{ bearerAuth: [] }]);
  });
});
