import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as Sdk from '../sdk/src/index.js';

const run = promisify(execFile);

/** The package as it is published: `npm run build -w @armalo/agent-sdk` → sdk/dist. */
describe('agent SDK build', () => {
  it('bundles dist/index.js (the shared domain inside, nothing from the service at run time) and a self-contained index.d.ts the example type-checks against', async () => {
    const { stdout } = await run(process.execPath, ['sdk/build.mjs'], { timeout: 120_000 });
    expect(stdout).toContain('examples type-check');
    const js = readFileSync('sdk/dist/index.js', 'utf8');
    // Only Node built-ins are imported: zod, pg and the service's files are not needed by an agent.
    const imports = [...js.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports.every((name) => name?.startsWith('node:'))).toBe(true);
    expect(js).toContain('function routeDecision');
    for (const file of ['index.d.ts', 'client.d.ts', 'types.d.ts']) {
      expect(existsSync(`sdk/dist/${file}`)).toBe(true);
      expect(readFileSync(`sdk/dist/${file}`, 'utf8')).not.toMatch(/from '\.\.\//);
    }
    const sdk = (await import(pathToFileURL('sdk/dist/index.js').href)) as typeof Sdk;
    const client = sdk.createArmaloClient({ url: 'http://127.0.0.1:9', token: 'tok_build_check_0123456789', agentId: 'a' });
    expect(client.check('payments:transfer')).toMatchObject({ decision: 'deny', reasonCodes: ['view_stale'] });
    client.close();
  }, 120_000);
});
