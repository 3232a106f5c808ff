import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

/**
 * The API document checked by an independent OpenAPI 3.1 validator (not our own generator's idea of
 * the format), both as checked in and as served.
 */
const it = appTest();
const checkedIn = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8')) as Record<string, any>;

/** Every `$ref` in the document, with where it sits. */
function refsOf(node: unknown, at = '#'): { at: string; ref: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => refsOf(v, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) =>
    k === '$ref' && typeof v === 'string' ? [{ at, ref: v }] : refsOf(v, `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`),
  );
}

/** Follows a local JSON pointer (`#/components/schemas/Agent`); undefined when it leads nowhere. */
function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

async function expectValid31(doc: unknown): Promise<void> {
  const validator = new Validator();
  // The validator dereferences in place: give it a copy.
  const result = await validator.validate(structuredClone(doc) as Parameters<Validator['validate']>[0]);
  expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe('3.1');
}

const operations = () =>
  Object.entries(checkedIn.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op })),
  );

describe('docs/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document for an independent validator', async () => {
    expect(checkedIn.openapi).toMatch(/^3\.1\./);
    await expectValid31(checkedIn);
  });

  it('every $ref resolves inside the document', () => {
    const refs = refsOf(checkedIn);
    expect(refs.length).toBeGreaterThan(10);
    const broken = refs.filter(({ ref }) => resolvePointer(checkedIn, ref) === undefined);
    expect(broken).toEqual([]);
    // And the validator's own dereferencing agrees.
    const validator = new Validator();
    return validator.validate(structuredClone(checkedIn)).then(() => expect(() => validator.resolveRefs()).not.toThrow());
  });

  it('a broken $ref is caught (the check bites)', () => {
    const doc = structuredClone(checkedIn);
    doc.paths['/v1/decisions'].post.requestBody.content['application/json'].schema.$ref = '#/components/schemas/NoSuchThing';
    expect(refsOf(doc).filter(({ ref }) => resolvePointer(doc, ref) === undefined)).toEqual([
      { at: '#/paths/~1v1~1decisions/post/requestBody/content/application~1json/schema', ref: '#/components/schemas/NoSuchThing' },
    ]);
  });

  it('an invalid document is refused by the validator (the check bites)', async () => {
    const doc = structuredClone(checkedIn);
    doc.paths['/v1/decisions'].post.responses = 'none';
    const result = await new Validator().validate(doc);
    expect(result.valid).toBe(false);
  });

  it('documents bearerAuth, the scope each operation needs and its 403', () => {
    expect(checkedIn.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(checkedIn.security).toEqual([{ bearerAuth: [] }]);
    for (const { path, method, op } of operations()) {
      if (Array.isArray(op.security) && op.security.length === 0) {
        expect(op['x-token-scope'], `${method} ${path}`).toBeUndefined();
        continue;
      }
      expect(op.security, `${method} ${path}`).toEqual([{ bearerAuth: [] }]);
      expect(['admin', 'platform'], `${method} ${path}`).toContain(op['x-token-scope']);
      expect(op.responses['401'], `${method} ${path}`).toBeDefined();
      expect(op.responses['403'], `${method} ${path}`).toBeDefined();
    }
    const platform = operations().filter(({ op }) => op['x-token-scope'] === 'platform').map(({ method, path }) => `${method} ${path}`);
    expect(platform.sort()).toEqual(
      [
        'get /v1/agents/{agentId}',
        'get /v1/agents/{agentId}/score',
        'post /v1/decisions',
        'post /v1/approval-requests',
        'get /v1/approval-requests/{id}',
        'post /v1/approval-requests/{id}/cancel',
        ...(checkedIn.paths['/v1/confirmations/{id}'] ? ['get /v1/confirmations/{id}'] : []),
        ...(checkedIn.paths['/v1/stream'] ? ['get /v1/stream'] : []),
        ...(checkedIn.paths['/mcp'] ? ['post /mcp'] : []),
        // Listing (issue 18): reading agents, incidents and approval requests.
        'get /v1/agents',
        'get /v1/incidents',
        'get /v1/incidents/{id}',
        'get /v1/approval-requests',
      ].sort(),
    );
    expect(checkedIn.paths['/v1/agents/{agentId}'].put.responses['409'].description).toMatch(/contained or revoked.*widen/);
  });
});

describe('the served /v1/openapi.json', () => {
  let app: TestApp;

  it.beforeAll(({ app: started }) => {
    app = started;
  });

  it('is valid OpenAPI 3.1 and every $ref resolves', async () => {
    const res = await app.call('GET', '/v1/openapi.json', undefined, { token: null });
    expect(res.status).toBe(200);
    await expectValid31(res.body);
    expect(refsOf(res.body).filter(({ ref }) => resolvePointer(res.body, ref) === undefined)).toEqual([]);
  });
});
