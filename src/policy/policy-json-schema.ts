import { policyJsonSchema } from './policy.schema.js';

/** Where the published JSON Schema lives in the repository (relative to its root). */
export const POLICY_SCHEMA_FILE = 'schemas/policy.schema.json';

/**
 * The exact text of `schemas/policy.schema.json`: the generator writes it and a test compares it, so the
 * checked-in schema cannot drift from the zod schema.
 */
export function renderPolicySchemaFile(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}
