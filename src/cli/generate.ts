import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOpenApiFile } from '../api/openapi.js';
import { POLICY_SCHEMA_FILE, renderPolicySchemaFile } from '../policy/policy-json-schema.js';

/** `npm run generate`: rewrites the checked-in documents generated from the zod schemas. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OPENAPI_FILE = 'docs/openapi.json';

writeFileSync(path.join(root, OPENAPI_FILE), renderOpenApiFile());
writeFileSync(path.join(root, POLICY_SCHEMA_FILE), renderPolicySchemaFile());
console.log(`wrote ${OPENAPI_FILE} and ${POLICY_SCHEMA_FILE}`);
