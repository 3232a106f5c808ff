import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOpenApiFile } from '../api/openapi.js';
import { COMMAND_DOCS } from '../chat/command-docs.js';
import { POLICY_SCHEMA_FILE, renderPolicySchemaFile } from '../policy/policy-json-schema.js';

/**
 * `npm run generate`: rewrites the checked-in documents generated from the code: the OpenAPI document
 * and the policy JSON Schema from the zod schemas, and the command lists (README, Slack and Teams
 * manifests, the Teams setup guide) from the /armalo grammar.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OPENAPI_FILE = 'docs/openapi.json';

writeFileSync(path.join(root, OPENAPI_FILE), renderOpenApiFile());
writeFileSync(path.join(root, POLICY_SCHEMA_FILE), renderPolicySchemaFile());
const changed: string[] = [];
for (const doc of COMMAND_DOCS) {
  const file = path.join(root, doc.file);
  const current = readFileSync(file, 'utf8');
  const next = doc.render(current);
  if (next !== current) {
    writeFileSync(file, next);
    changed.push(doc.file);
  }
}
console.log(`wrote ${OPENAPI_FILE} and ${POLICY_SCHEMA_FILE}; command lists: ${changed.length ? `updated ${changed.join(', ')}` : 'up to date'}`);
