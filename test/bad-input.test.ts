import { request } from 'node:http';
import { describe, expect } from 'vitest';
import { OTHER_TOKEN, sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { type TestDatabase } from './support/database.js';

/**
 * Bad input anywhere in the REST API gets a clear 4xx JSON error ({error: {code, message, requestId}},
 * the message naming what was wrong) and changes nothing. Every case is sent with node:http, not fetch,
 * so paths reach the server exactly as written (fetch would normalise `..` and refuse odd headers).
 */

let app: TestApp;
let database: TestDatabase;

/** The agent every case may aim at; it must look exactly the same after the whole table. */
const AGENT = 'steady-bot';
const WRONG_TOKEN = 'tok_wrong_0123456789abcdef_not_configured';

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: any;
}

interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** Written as is. */
  body?: string;
  /** Write the body in pieces without Content-Length (Transfer-Encoding: chunked). */
  chunked?: boolean;
}

/** One HTTP request with node:http: the path and headers go out untouched. Status 0 = connection failed. */
function send(req: RawRequest): Promise<Sent> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined && !req.chunked) headers['content-length'] = String(Buffer.byteLength(req.body));
    const r = request({ host: '127.0.0.1', port: app.port(), method: req.method, path: req.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: the assertions below say so.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
      res.on('error', (err) => resolve({ status: 0, headers: {}, text: `response error: ${err.message}`, body: undefined }));
    });
    r.on('error', (err) => resolve({ status: 0, headers: {}, text: `request error: ${err.message}`, body: undefined }));
    if (req.body !== undefined && req.chunked) {
      const piece = 8 * 1024;
      for (let i = 0; i < req.body.length; i += piece) r.write(req.body.slice(i, i + piece));
    } else if (req.body !== undefined) {
      r.write(req.body);
    }
    r.end();
  });
}

interface Case {
  name: string;
  method: string;
  path: string;
  /** JSON-encoded and sent with Content-Type: application/json (unless `raw` or `headers` say otherwise). */
  json?: unknown;
  /** A body sent byte for byte. */
  raw?: string;
  chunked?: boolean;
  /** Authorization header; defaults to `Bearer <TOKEN>`; null sends none. */
  authorization?: string | null;
  headers?: Record<string, string>;
  status: number;
  code: string;
  /** Fragment the error message must contain (it names the field or what was wrong). */
  message: string;
  /** When set, `error.details` must hold a problem at this field path. */
  field?: string;
}

const bearer = `Bearer ${TOKEN}`;
const agentPath = `/v1/agents/${AGENT}`;
const actionsPath = `${agentPath}/actions`;
const goodAgent = sampleAgent;
const grant = (extra: Record<string, unknown>) => ({ ...goodAgent, grants: [{ scope: 'payments:transfer', ...extra }] });
const without = (key: keyof typeof goodAgent) => Object.fromEntries(Object.entries(goodAgent).filter(([k]) => k !== key));
const nested = (depth: number) => `{"name":${'['.repeat(depth)}${']'.repeat(depth)},"owner":"a","riskTier":"low","grants":[]}`;

const cases: Case[] = [
  // ---- authentication ------------------------------------------------------------------------
  { name: 'missing Authorization', method: 'GET', path: '/v1/audit', authorization: null, status: 401, code: 'unauthorized', message: 'missing Authorization: Bearer <token>' },
  { name: 'missing Authorization on a write', method: 'PUT', path: agentPath, json: goodAgent, authorization: null, status: 401, code: 'unauthorized', message: 'missing Authorization' },
  { name: 'wrong token', method: 'GET', path: '/v1/audit', authorization: `Bearer ${WRONG_TOKEN}`, status: 401, code: 'unauthorized', message: 'bearer token is not valid' },
  { name: 'wrong token on a write', method: 'PUT', path: agentPath, json: { ...goodAgent, name: 'Hijacked' }, authorization: `Bearer ${WRONG_TOKEN}`, status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: Basic', method: 'GET', path: '/v1/audit', authorization: 'Basic cGxhdGZvcm06c2VjcmV0', status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: the bare token', method: 'GET', path: '/v1/audit', authorization: TOKEN, status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: Bearer without a token', method: 'GET', path: '/v1/audit', authorization: 'Bearer', status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: Bearer glued to the token', method: 'GET', path: '/v1/audit', authorization: `Bearer${TOKEN}`, status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: valid token then junk', method: 'GET', path: '/v1/audit', authorization: `Bearer ${TOKEN} junk`, status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: valid token with junk appended', method: 'GET', path: '/v1/audit', authorization: `Bearer ${TOKEN}junk`, status: 401, code: 'unauthorized', message: 'not valid' },
  { name: 'Authorization: two tokens', method: 'GET', path: '/v1/audit', authorization: `Bearer ${TOKEN}, Bearer ${OTHER_TOKEN}`, status: 401, code: 'unauthorized', message: 'not valid' },

  // ---- request bodies ------------------------------------------------------------------------
  { name: 'body that is not JSON', method: 'PUT', path: agentPath, raw: '{"name": "x",', status: 400, code: 'invalid_input', message: 'request body is not valid JSON' },
  { name: 'body with a trailing comma', method: 'POST', path: '/v1/decisions', raw: '{"agentId":"a","action":"b",}', status: 400, code: 'invalid_input', message: 'not valid JSON' },
  { name: 'Content-Type text/plain', method: 'PUT', path: agentPath, raw: JSON.stringify(goodAgent), headers: { 'content-type': 'text/plain' }, status: 415, code: 'invalid_input', message: 'Content-Type: application/json' },
  { name: 'Content-Type form-urlencoded', method: 'POST', path: '/v1/decisions', raw: 'agentId=a&action=b', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'invalid_input', message: 'Content-Type: application/json' },
  { name: 'no Content-Type at all', method: 'POST', path: actionsPath, raw: '{"action":"contain","reason":"x"}', headers: { 'content-type': '' }, status: 415, code: 'invalid_input', message: 'Content-Type: application/json' },
  { name: 'empty body', method: 'PUT', path: agentPath, raw: '', status: 400, code: 'invalid_input', message: 'request body is empty' },
  { name: 'whitespace body', method: 'POST', path: '/v1/decisions', raw: ' \n ', status: 400, code: 'invalid_input', message: 'request body is empty' },
  { name: 'body is a JSON array', method: 'PUT', path: agentPath, json: [goodAgent], status: 400, code: 'invalid_input', message: 'expected object' },
  { name: 'body is a JSON string', method: 'POST', path: actionsPath, json: 'contain', status: 400, code: 'invalid_input', message: 'expected object' },
  { name: 'body is JSON null', method: 'POST', path: '/v1/decisions', json: null, status: 400, code: 'invalid_input', message: 'expected object' },
  { name: 'body is a JSON number', method: 'PUT', path: agentPath, json: 42, status: 400, code: 'invalid_input', message: 'expected object' },
  { name: 'body over 64 KiB', method: 'PUT', path: agentPath, json: { ...goodAgent, name: 'x'.repeat(70_000) }, status: 413, code: 'invalid_input', message: 'larger than 65536 bytes' },
  { name: 'body over 64 KiB, chunked (no Content-Length)', method: 'PUT', path: agentPath, raw: JSON.stringify({ ...goodAgent, name: 'x'.repeat(70_000) }), chunked: true, status: 413, code: 'invalid_input', message: 'larger than 65536 bytes' },
  { name: 'deeply nested JSON (1000 levels)', method: 'PUT', path: agentPath, raw: nested(1000), status: 400, code: 'invalid_input', message: 'nested more than 64 levels' },
  { name: 'deeply nested JSON in a decision context', method: 'POST', path: '/v1/decisions', raw: `{"agentId":"${AGENT}","action":"crm:write","context":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`, status: 400, code: 'invalid_input', message: 'nested more than 64 levels' },
  { name: 'NUL character in a string', method: 'PUT', path: agentPath, json: { ...goodAgent, name: 'Under\u0000writing' }, status: 400, code: 'invalid_input', message: 'NUL character' },
  { name: 'NUL character in a key', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'crm:write', context: { 'a\u0000b': 1 } }, status: 400, code: 'invalid_input', message: 'NUL character' },
  { name: 'NUL character in a reason', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'bad\u0000reason' }, status: 400, code: 'invalid_input', message: 'NUL character' },
  // JSON may spell a lone UTF-16 surrogate; Postgres text and jsonb cannot hold one.
  { name: 'lone surrogate (\\ud800) in a name', method: 'PUT', path: agentPath, raw: JSON.stringify(goodAgent).replace('"Underwriting bot"', '"Under\\ud800writing"'), status: 400, code: 'invalid_input', message: 'surrogate' },
  { name: 'lone surrogate (\\udc00) in an owner', method: 'PUT', path: agentPath, raw: JSON.stringify(goodAgent).replace('"ana@example.com"', '"ana\\udc00@example.com"'), status: 400, code: 'invalid_input', message: 'surrogate' },
  { name: 'lone surrogate (\\ud800) in a reason', method: 'POST', path: actionsPath, raw: '{"action":"contain","reason":"bad \\ud800 reason"}', status: 400, code: 'invalid_input', message: 'surrogate' },
  { name: 'a __proto__ key in the body', method: 'PUT', path: agentPath, raw: `{"__proto__":{"riskTier":"low"},${JSON.stringify(goodAgent).slice(1)}`, status: 400, code: 'invalid_input', message: 'unknown field: __proto__' },

  // ---- PUT /v1/agents/{id}: the id ----------------------------------------------------------
  { name: 'agent id too long (129 chars)', method: 'PUT', path: `/v1/agents/${'a'.repeat(129)}`, json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id', field: 'agent id' },
  { name: 'agent id with a space', method: 'PUT', path: '/v1/agents/steady%20bot', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'agent id with unicode', method: 'PUT', path: '/v1/agents/b%C3%B6t', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  // `..` is resolved away by URL parsing (/v1/agents/.. is /v1/), which is no endpoint.
  { name: 'agent id ..', method: 'PUT', path: '/v1/agents/..', json: goodAgent, status: 404, code: 'not_found', message: 'no such endpoint' },
  { name: 'agent id %2E%2E', method: 'PUT', path: '/v1/agents/%2E%2E', json: goodAgent, status: 404, code: 'not_found', message: 'no such endpoint' },
  { name: 'agent id ..%2F..%2Fetc', method: 'PUT', path: '/v1/agents/..%2F..%2Fetc', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'agent id with a percent-encoded slash', method: 'PUT', path: '/v1/agents/steady%2Fbot', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'agent id with a leading dash', method: 'PUT', path: '/v1/agents/-steady-bot', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'agent id with a leading dot', method: 'PUT', path: '/v1/agents/.hidden', json: goodAgent, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'agent id with broken percent-encoding', method: 'PUT', path: '/v1/agents/bot%E0%A4%A', json: goodAgent, status: 404, code: 'not_found', message: 'no such endpoint' },
  { name: 'agent id with an encoded NUL', method: 'GET', path: '/v1/agents/bot%00', status: 400, code: 'invalid_input', message: 'invalid agent id' },

  // ---- PUT /v1/agents/{id}: the body --------------------------------------------------------
  { name: 'missing name', method: 'PUT', path: agentPath, json: without('name'), status: 400, code: 'invalid_input', message: 'name:', field: 'name' },
  { name: 'missing owner', method: 'PUT', path: agentPath, json: without('owner'), status: 400, code: 'invalid_input', message: 'owner:', field: 'owner' },
  { name: 'missing riskTier', method: 'PUT', path: agentPath, json: without('riskTier'), status: 400, code: 'invalid_input', message: 'riskTier:', field: 'riskTier' },
  { name: 'missing grants', method: 'PUT', path: agentPath, json: without('grants'), status: 400, code: 'invalid_input', message: 'grants:', field: 'grants' },
  { name: 'name is a number', method: 'PUT', path: agentPath, json: { ...goodAgent, name: 42 }, status: 400, code: 'invalid_input', message: 'name:', field: 'name' },
  { name: 'name is only spaces', method: 'PUT', path: agentPath, json: { ...goodAgent, name: '   ' }, status: 400, code: 'invalid_input', message: 'name:', field: 'name' },
  { name: 'riskTier not in the list', method: 'PUT', path: agentPath, json: { ...goodAgent, riskTier: 'extreme' }, status: 400, code: 'invalid_input', message: 'riskTier:', field: 'riskTier' },
  { name: 'riskTier in the wrong case', method: 'PUT', path: agentPath, json: { ...goodAgent, riskTier: 'High' }, status: 400, code: 'invalid_input', message: 'riskTier:', field: 'riskTier' },
  { name: 'grants is an object', method: 'PUT', path: agentPath, json: { ...goodAgent, grants: { scope: 'crm:write' } }, status: 400, code: 'invalid_input', message: 'grants:', field: 'grants' },
  { name: 'grants is null', method: 'PUT', path: agentPath, json: { ...goodAgent, grants: null }, status: 400, code: 'invalid_input', message: 'grants:', field: 'grants' },
  { name: 'a grant is a string', method: 'PUT', path: agentPath, json: { ...goodAgent, grants: ['crm:write'] }, status: 400, code: 'invalid_input', message: 'grants[0]:', field: 'grants[0]' },
  { name: 'keepInContainment is a string', method: 'PUT', path: agentPath, json: grant({ keepInContainment: 'yes' }), status: 400, code: 'invalid_input', message: 'grants[0].keepInContainment:', field: 'grants[0].keepInContainment' },
  { name: 'unknown top-level field', method: 'PUT', path: agentPath, json: { ...goodAgent, colour: 'blue' }, status: 400, code: 'invalid_input', message: 'unknown field: colour' },
  { name: 'typo keepInContainement', method: 'PUT', path: agentPath, json: grant({ keepInContainement: true }), status: 400, code: 'invalid_input', message: 'grants[0]: unknown field: keepInContainement', field: 'grants[0]' },
  { name: 'scope in uppercase', method: 'PUT', path: agentPath, json: grant({ scope: 'Payments:Transfer' }), status: 400, code: 'invalid_input', message: 'grants[0].scope: expected a scope', field: 'grants[0].scope' },
  { name: 'scope with a space', method: 'PUT', path: agentPath, json: grant({ scope: 'payments: transfer' }), status: 400, code: 'invalid_input', message: 'grants[0].scope: expected a scope' },
  { name: 'empty scope', method: 'PUT', path: agentPath, json: grant({ scope: '' }), status: 400, code: 'invalid_input', message: 'grants[0].scope: expected a scope' },
  { name: 'scope with an empty segment', method: 'PUT', path: agentPath, json: grant({ scope: 'payments::transfer' }), status: 400, code: 'invalid_input', message: 'grants[0].scope: expected a scope' },
  { name: 'scope is a number', method: 'PUT', path: agentPath, json: grant({ scope: 7 }), status: 400, code: 'invalid_input', message: 'grants[0].scope:' },
  { name: 'duplicate scopes', method: 'PUT', path: agentPath, json: { ...goodAgent, grants: [{ scope: 'crm:write' }, { scope: 'crm:write', keepInContainment: true }] }, status: 400, code: 'invalid_input', message: 'grants[1].scope: scope crm:write is listed twice', field: 'grants[1].scope' },
  { name: 'unknown constraint key', method: 'PUT', path: agentPath, json: grant({ constraints: { maxAmmount: 5 } }), status: 400, code: 'invalid_input', message: 'grants[0].constraints: unknown field: maxAmmount', field: 'grants[0].constraints' },
  { name: 'negative maxAmount', method: 'PUT', path: agentPath, json: grant({ constraints: { maxAmount: -1 } }), status: 400, code: 'invalid_input', message: 'grants[0].constraints.maxAmount:', field: 'grants[0].constraints.maxAmount' },
  { name: 'maxAmount as a string', method: 'PUT', path: agentPath, json: grant({ constraints: { maxAmount: '10000' } }), status: 400, code: 'invalid_input', message: 'grants[0].constraints.maxAmount:', field: 'grants[0].constraints.maxAmount' },
  { name: 'maxAmount of 1e400 (Infinity)', method: 'PUT', path: agentPath, raw: JSON.stringify(grant({ constraints: { maxAmount: 1 } })).replace('"maxAmount":1', '"maxAmount":1e400'), status: 400, code: 'invalid_input', message: 'grants[0].constraints.maxAmount:' },
  { name: 'constraints is an array', method: 'PUT', path: agentPath, json: grant({ constraints: [] }), status: 400, code: 'invalid_input', message: 'grants[0].constraints:' },
  { name: 'currency in lowercase', method: 'PUT', path: agentPath, json: grant({ constraints: { currencies: ['usd'] } }), status: 400, code: 'invalid_input', message: 'grants[0].constraints.currencies[0]: expected an ISO 4217 code' },
  { name: 'expiresAt not a date', method: 'PUT', path: agentPath, json: grant({ expiresAt: 'tomorrow' }), status: 400, code: 'invalid_input', message: 'grants[0].expiresAt:', field: 'grants[0].expiresAt' },
  { name: 'expiresAt without an offset', method: 'PUT', path: agentPath, json: grant({ expiresAt: '2030-01-01T00:00:00' }), status: 400, code: 'invalid_input', message: 'grants[0].expiresAt:' },
  { name: 'expiresAt on February 30', method: 'PUT', path: agentPath, json: grant({ expiresAt: '2030-02-30T00:00:00Z' }), status: 400, code: 'invalid_input', message: 'grants[0].expiresAt:' },
  { name: 'expiresAt as epoch seconds', method: 'PUT', path: agentPath, json: grant({ expiresAt: 1_900_000_000 }), status: 400, code: 'invalid_input', message: 'grants[0].expiresAt:' },
  { name: 'name of 10k characters', method: 'PUT', path: agentPath, json: { ...goodAgent, name: 'n'.repeat(10_000) }, status: 400, code: 'invalid_input', message: 'name:', field: 'name' },
  { name: 'owner of 10k characters', method: 'PUT', path: agentPath, json: { ...goodAgent, owner: 'o'.repeat(10_000) }, status: 400, code: 'invalid_input', message: 'owner:', field: 'owner' },
  { name: 'scope of 10k characters', method: 'PUT', path: agentPath, json: grant({ scope: `a:${'b'.repeat(10_000)}` }), status: 400, code: 'invalid_input', message: 'grants[0].scope:' },
  { name: '1000 grants', method: 'PUT', path: agentPath, json: { ...goodAgent, grants: Array.from({ length: 1000 }, (_, i) => ({ scope: `s${i}:x` })) }, status: 400, code: 'invalid_input', message: 'grants:', field: 'grants' },

  // ---- POST /v1/agents/{id}/actions ---------------------------------------------------------
  { name: 'unknown action', method: 'POST', path: actionsPath, json: { action: 'pause', reason: 'x' }, status: 400, code: 'invalid_input', message: 'action:', field: 'action' },
  { name: 'action in uppercase', method: 'POST', path: actionsPath, json: { action: 'CONTAIN', reason: 'x' }, status: 400, code: 'invalid_input', message: 'action:' },
  { name: 'narrow without scopes', method: 'POST', path: actionsPath, json: { action: 'narrow', reason: 'x' }, status: 400, code: 'invalid_input', message: 'scopes: narrow needs the scopes to suspend', field: 'scopes' },
  { name: 'narrow with an empty scope list', method: 'POST', path: actionsPath, json: { action: 'narrow', scopes: [], reason: 'x' }, status: 400, code: 'invalid_input', message: 'scopes:', field: 'scopes' },
  { name: 'narrow with a bad scope', method: 'POST', path: actionsPath, json: { action: 'narrow', scopes: ['Payments:*'], reason: 'x' }, status: 400, code: 'invalid_input', message: 'scopes[0]: expected a scope', field: 'scopes[0]' },
  { name: 'narrow with scopes as a string', method: 'POST', path: actionsPath, json: { action: 'narrow', scopes: 'payments:*', reason: 'x' }, status: 400, code: 'invalid_input', message: 'scopes:' },
  { name: 'narrow matching no grant', method: 'POST', path: actionsPath, json: { action: 'narrow', scopes: ['hr:*'], reason: 'x' }, status: 400, code: 'invalid_input', message: 'matches none' },
  { name: 'contain with scopes', method: 'POST', path: actionsPath, json: { action: 'contain', scopes: ['payments:*'], reason: 'x' }, status: 400, code: 'invalid_input', message: 'scopes: contain takes no scopes', field: 'scopes' },
  { name: 'ttl on revoke', method: 'POST', path: actionsPath, json: { action: 'revoke', reason: 'x', ttl: '2h' }, status: 400, code: 'invalid_input', message: 'ttl: ttl applies to narrow and contain only', field: 'ttl' },
  { name: 'ttl on restore', method: 'POST', path: actionsPath, json: { action: 'restore', reason: 'x', ttl: '2h' }, status: 400, code: 'invalid_input', message: 'ttl: ttl applies to narrow and contain only' },
  { name: 'ttl -5m', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: '-5m' }, status: 400, code: 'invalid_input', message: 'ttl: expected a duration', field: 'ttl' },
  { name: 'ttl abc', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: 'abc' }, status: 400, code: 'invalid_input', message: 'ttl: expected a duration' },
  { name: 'ttl 0s', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: '0s' }, status: 400, code: 'invalid_input', message: 'ttl: expected a duration' },
  { name: 'ttl 99999d', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: '99999d' }, status: 400, code: 'invalid_input', message: 'ttl: expected a duration' },
  { name: 'ttl 31d (over the 30d cap)', method: 'POST', path: actionsPath, json: { action: 'narrow', scopes: ['crm:*'], reason: 'x', ttl: '31d' }, status: 400, code: 'invalid_input', message: 'ttl: expected a duration' },
  { name: 'ttl 0 seconds', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: 0 }, status: 400, code: 'invalid_input', message: 'ttl:' },
  { name: 'ttl 1.5 seconds', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: 1.5 }, status: 400, code: 'invalid_input', message: 'ttl:' },
  { name: 'ttl as an object', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', ttl: { h: 2 } }, status: 400, code: 'invalid_input', message: 'ttl:' },
  { name: 'missing reason', method: 'POST', path: actionsPath, json: { action: 'contain' }, status: 400, code: 'invalid_input', message: 'reason:', field: 'reason' },
  { name: 'empty reason', method: 'POST', path: actionsPath, json: { action: 'contain', reason: '' }, status: 400, code: 'invalid_input', message: 'reason:', field: 'reason' },
  { name: 'reason of spaces', method: 'POST', path: actionsPath, json: { action: 'contain', reason: '  \t ' }, status: 400, code: 'invalid_input', message: 'reason:' },
  { name: 'reason of 10k characters', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'r'.repeat(10_000) }, status: 400, code: 'invalid_input', message: 'reason:' },
  { name: 'dryRun as a string', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', dryRun: 'true' }, status: 400, code: 'invalid_input', message: 'dryRun:', field: 'dryRun' },
  { name: 'unknown field on an action', method: 'POST', path: actionsPath, json: { action: 'contain', reason: 'x', force: true }, status: 400, code: 'invalid_input', message: 'unknown field: force' },
  { name: 'restore of an active agent', method: 'POST', path: actionsPath, json: { action: 'restore', reason: 'x' }, status: 409, code: 'conflict', message: 'nothing to restore' },
  { name: 'action on an unknown agent', method: 'POST', path: '/v1/agents/ghost-bot/actions', json: { action: 'contain', reason: 'x' }, status: 404, code: 'not_found', message: 'unknown agent ghost-bot' },
  { name: 'dry-run action on an unknown agent', method: 'POST', path: '/v1/agents/ghost-bot/actions', json: { action: 'contain', reason: 'x', dryRun: true }, status: 404, code: 'not_found', message: 'unknown agent ghost-bot' },
  { name: 'action with a bad agent id', method: 'POST', path: '/v1/agents/-x/actions', json: { action: 'contain', reason: 'x' }, status: 400, code: 'invalid_input', message: 'invalid agent id' },
  { name: 'GET an unknown agent', method: 'GET', path: '/v1/agents/ghost-bot', status: 404, code: 'not_found', message: 'unknown agent ghost-bot' },

  // ---- POST /v1/decisions -------------------------------------------------------------------
  { name: 'decision without agentId', method: 'POST', path: '/v1/decisions', json: { action: 'crm:write' }, status: 400, code: 'invalid_input', message: 'agentId:', field: 'agentId' },
  { name: 'decision with an empty agentId', method: 'POST', path: '/v1/decisions', json: { agentId: '', action: 'crm:write' }, status: 400, code: 'invalid_input', message: 'agentId:' },
  { name: 'decision with agentId as a number', method: 'POST', path: '/v1/decisions', json: { agentId: 7, action: 'crm:write' }, status: 400, code: 'invalid_input', message: 'agentId:' },
  { name: 'decision without action', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT }, status: 400, code: 'invalid_input', message: 'action:', field: 'action' },
  { name: 'decision for a wildcard action', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'payments:*' }, status: 400, code: 'invalid_input', message: 'action: expected a concrete scope', field: 'action' },
  { name: 'decision for an uppercase action', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'CRM:WRITE' }, status: 400, code: 'invalid_input', message: 'action:' },
  { name: 'decision context is a string', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'crm:write', context: 'amount=5' }, status: 400, code: 'invalid_input', message: 'context:', field: 'context' },
  { name: 'decision context is an array', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'crm:write', context: [1] }, status: 400, code: 'invalid_input', message: 'context:' },
  { name: 'decision context is null', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'crm:write', context: null }, status: 400, code: 'invalid_input', message: 'context:' },
  { name: 'context.amount as a string', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'payments:transfer', context: { amount: '100' } }, status: 400, code: 'invalid_input', message: 'context.amount: expected a non-negative number', field: 'context.amount' },
  { name: 'context.amount negative', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'payments:transfer', context: { amount: -5 } }, status: 400, code: 'invalid_input', message: 'context.amount: expected a non-negative number' },
  { name: 'context.amount 1e400 (Infinity)', method: 'POST', path: '/v1/decisions', raw: `{"agentId":"${AGENT}","action":"payments:transfer","context":{"amount":1e400}}`, status: 400, code: 'invalid_input', message: 'context.amount: expected a non-negative number' },
  { name: 'context.currency as a number', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'payments:transfer', context: { amount: 1, currency: 840 } }, status: 400, code: 'invalid_input', message: 'context.currency: expected a string' },
  { name: 'unknown top-level field on a decision', method: 'POST', path: '/v1/decisions', json: { agentId: AGENT, action: 'crm:write', amount: 5 }, status: 400, code: 'invalid_input', message: 'unknown field: amount' },

  // ---- GET /v1/audit ------------------------------------------------------------------------
  { name: 'audit limit=0', method: 'GET', path: '/v1/audit?limit=0', status: 400, code: 'invalid_input', message: 'limit:', field: 'limit' },
  { name: 'audit limit=abc', method: 'GET', path: '/v1/audit?limit=abc', status: 400, code: 'invalid_input', message: 'limit:' },
  { name: 'audit limit=10000', method: 'GET', path: '/v1/audit?limit=10000', status: 400, code: 'invalid_input', message: 'limit:' },
  { name: 'audit limit=1.5', method: 'GET', path: '/v1/audit?limit=1.5', status: 400, code: 'invalid_input', message: 'limit:' },
  { name: 'audit limit empty', method: 'GET', path: '/v1/audit?limit=', status: 400, code: 'invalid_input', message: 'limit:' },
  { name: 'audit unknown query parameter', method: 'GET', path: '/v1/audit?agent=steady-bot', status: 400, code: 'invalid_input', message: 'unknown field: agent' },
  { name: 'audit before=-1', method: 'GET', path: '/v1/audit?before=-1', status: 400, code: 'invalid_input', message: 'before: expected an entry sequence number', field: 'before' },
  { name: 'audit before=0', method: 'GET', path: '/v1/audit?before=0', status: 400, code: 'invalid_input', message: 'before:' },
  { name: 'audit before beyond bigint', method: 'GET', path: `/v1/audit?before=${'9'.repeat(30)}`, status: 400, code: 'invalid_input', message: 'before:' },
  { name: 'audit agentId not an id', method: 'GET', path: '/v1/audit?agentId=a%20b', status: 400, code: 'invalid_input', message: 'agentId:' },

  // ---- methods and paths --------------------------------------------------------------------
  { name: 'DELETE an agent with an unknown query key (400)', method: 'DELETE', path: `${agentPath}?force=1`, status: 400, code: 'invalid_input', message: 'force' },
  { name: 'DELETE /v1/decisions (405)', method: 'DELETE', path: '/v1/decisions', status: 405, code: 'invalid_input', message: 'DELETE is not allowed here; use POST' },
  { name: 'GET /v1/decisions (405)', method: 'GET', path: '/v1/decisions', status: 405, code: 'invalid_input', message: 'GET is not allowed here; use POST' },
  { name: 'PATCH /v1/audit (405)', method: 'PATCH', path: '/v1/audit', json: {}, status: 405, code: 'invalid_input', message: 'PATCH is not allowed here; use GET' },
  { name: 'POST /healthz (405)', method: 'POST', path: '/healthz', json: {}, status: 405, code: 'invalid_input', message: 'POST is not allowed here' },
  { name: 'unknown path', method: 'GET', path: '/v1/nothing-here', status: 404, code: 'not_found', message: 'no such endpoint: GET /v1/nothing-here' },
  { name: 'unknown path under an agent', method: 'GET', path: `${agentPath}/secrets`, status: 404, code: 'not_found', message: 'no such endpoint' },
  { name: 'unknown version', method: 'GET', path: '/v2/audit', status: 404, code: 'not_found', message: 'no such endpoint' },
  // A request-target WHATWG URL parsing rejects (a "host" of `[`).
  { name: 'unparseable request target //[', method: 'GET', path: '//[', status: 400, code: 'invalid_input', message: 'path' },
];

async function snapshot() {
  const audit = await app.call('GET', '/v1/audit?limit=500');
  const agent = await app.call('GET', agentPath);
  const verify = await app.call('GET', '/v1/audit/verify');
  expect(audit.status).toBe(200);
  expect(agent.status).toBe(200);
  return { entries: audit.body.entries as unknown[], agent: agent.body as unknown, head: verify.body.head as unknown };
}

let before: Awaited<ReturnType<typeof snapshot>>;

const it = appTest();
it.beforeAll(async ({ app: started, database: databaseFixture }) => {
  database = databaseFixture;
  app = started;
  const registered = await app.call('PUT', agentPath, sampleAgent);
  expect(registered.status).toBe(201);
  before = await snapshot();
  expect(before.entries).toHaveLength(1);
});

describe('bad input gets a clear 4xx JSON error and changes nothing', () => {
  it('the table has unique case names', () => {
    const names = cases.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(cases)('$name → $status', async (c) => {
    const headers: Record<string, string> = { ...(c.authorization === null ? {} : { authorization: c.authorization ?? bearer }) };
    let body: string | undefined;
    if (c.raw !== undefined) body = c.raw;
    else if ('json' in c) body = JSON.stringify(c.json);
    if (body !== undefined) headers['content-type'] = 'application/json';
    for (const [k, v] of Object.entries(c.headers ?? {})) {
      if (v === '') delete headers[k];
      else headers[k] = v;
    }
    const res = await send({ method: c.method, path: c.path, headers, body, chunked: c.chunked });

    const context = `${c.method} ${c.path.slice(0, 80)} → ${res.status} ${res.text.slice(0, 300)}`;
    expect(res.status, context).toBe(c.status);
    expect(res.status, context).toBeGreaterThanOrEqual(400);
    expect(res.status, context).toBeLessThan(500);
    expect(String(res.headers['content-type']), context).toMatch(/^application\/json/);
    expect(res.body, context).toMatchObject({
      error: { code: c.code, message: expect.any(String), requestId: expect.any(String) },
    });
    expect(res.body.error.requestId).toBe(res.headers['x-request-id']);
    expect(res.body.error.message, context).toContain(c.message);
    // Internals never leak into an answer.
    expect(res.text, context).not.toMatch(/node_modules|ZodError|"stack"|\s+at \S+ \(/);
    if (c.status === 401) expect(res.headers['www-authenticate']).toBe('Bearer realm="armalo"');
    if (c.field !== undefined) {
      expect(res.body.error.details, context).toEqual(expect.arrayContaining([expect.objectContaining({ path: c.field, message: expect.any(String) })]));
    }
  });

  it('changed nothing: the audit log, its head and the agent are exactly as before the table', async () => {
    const after = await snapshot();
    expect(after.entries).toEqual(before.entries);
    expect(after.head).toEqual(before.head);
    expect(after.agent).toEqual(before.agent);
    expect((await app.call('GET', '/v1/agents/ghost-bot')).status).toBe(404);
    const verified = await app.call('GET', '/v1/audit/verify');
    expect(verified.body).toMatchObject({ ok: true, entries: 1 });
  });

  it('logged no request failures and no secrets', () => {
    const failures = app.logs.lines.filter((l) => l.msg === 'request failed');
    expect(failures.map((l) => JSON.stringify(l).slice(0, 500))).toEqual([]);
    const text = app.logs.text();
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [TOKEN, OTHER_TOKEN, WRONG_TOKEN, database.url]) expect(text).not.toContain(secret);
  });
});

describe('input the HTTP parser refuses before the app sees it', () => {
  it('a request line with raw non-ASCII bytes gets a 400 from the Node HTTP parser, not a hang or a 500', async () => {
    const res = await send({ method: 'GET', path: '/v1/agents/b\u00f3t', headers: { authorization: bearer } });
    expect(res.status).toBe(400);
    expect(app.logs.lines.filter((l) => l.msg === 'request failed' && JSON.stringify(l).includes('b\u00f3t'))).toEqual([]);
  });
});

describe('glob matching cannot be turned against the decision path', () => {
  it('answers a decision on a many-wildcard grant promptly', async () => {
    // A valid grant scope with seven wildcards and a valid 119-character action: a backtracking glob
    // matcher needs seconds for this (and minutes for a few more wildcards), blocking every request.
    const scope = `${Array(7).fill('*').join(':')}:x`;
    const put = await app.call('PUT', '/v1/agents/glob-heavy-bot', { ...sampleAgent, grants: [{ scope }] });
    expect(put.status).toBe(201);
    await waitFor(() => app.view?.get('glob-heavy-bot') !== undefined, 5000, 'the permission view to learn the agent');
    const action = Array(60).fill('a').join(':');
    const started = performance.now();
    const res = await app.call('POST', '/v1/decisions', { agentId: 'glob-heavy-bot', action });
    const ms = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ decision: 'deny', reasonCodes: ['no_grant'] });
    expect(ms).toBeLessThan(250);
  });
});
