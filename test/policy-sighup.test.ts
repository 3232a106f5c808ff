import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect } from 'vitest';
import { TOKEN, waitFor } from './support/app.js';
import { REDIS_URL, type TestDatabase } from './support/database.js';
import { appTest } from './support/fixture.js';
import { removePolicy, writePolicy } from './support/slack-policy.js';

// The real entry point (`src/main.ts`, what `npm start` runs) re-reads its policy file on SIGHUP.
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  contain: [security-oncall]
`;
const repoRoot = new URL('..', import.meta.url).pathname;

let database: TestDatabase;
let prefix: string;
let child: ChildProcess | undefined;
const lines: Record<string, unknown>[] = [];

// The database and queue prefix come from the fixture; the test runs the app itself, as a child process.
const it = appTest();
it.beforeAll(({ database: fixtureDatabase, prefix: fixturePrefix }) => {
  database = fixtureDatabase;
  prefix = fixturePrefix;
}, 60_000);

let policyFile: string | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
  }
  if (policyFile) removePolicy(policyFile);
});

const logged = (pattern: RegExp) => lines.find((l) => pattern.test(String(l.msg ?? '')));

describe('SIGHUP', () => {
  it('re-reads the policy file: a valid change is applied, an invalid one changes nothing', async () => {
    const file = writePolicy(POLICY);
    policyFile = file;
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        DATABASE_URL: database.url,
        REDIS_URL,
        PORT: '0',
        HOST: '127.0.0.1',
        ARMALO_API_TOKENS: `platform:${TOKEN}`,
        ARMALO_QUEUE_PREFIX: prefix,
        ARMALO_POLICY_FILE: file,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a log line.
        }
      }
    });
    await waitFor(() => logged(/armalo chat-ops started/) !== undefined, 50_000, 'the service to start');
    const base = `http://127.0.0.1:${String(logged(/armalo chat-ops started/)!.port)}`;
    const hash = async () => ((await (await fetch(`${base}/readyz`)).json()) as { policyHash: string }).policyHash;
    const before = await hash();
    expect(before).toMatch(/^[0-9a-f]{64}$/);

    // A valid change: after SIGHUP the service runs the new policy (the directory watch may get there first;
    // the SIGHUP line shows the signal was handled either way).
    writeFileSync(file, POLICY.replace('permissions:', 'permissions:\n  narrow: [security-oncall]'));
    child.kill('SIGHUP');
    await waitFor(() => logged(/policy re-read on SIGHUP: (applied|unchanged)/) !== undefined, 20_000, 'the SIGHUP re-read');
    await waitFor(async () => (await hash()) !== before, 10_000, 'the new policy hash');
    const changed = await hash();

    // An invalid file: the SIGHUP re-read rejects it and the running policy stays.
    writeFileSync(file, POLICY.replace('contain: [security-oncall]', 'contain: [no-such-role]'));
    child.kill('SIGHUP');
    await waitFor(() => logged(/policy re-read on SIGHUP: rejected/) !== undefined, 20_000, 'the rejected SIGHUP re-read');
    expect(await hash()).toBe(changed);
    expect(child.exitCode).toBeNull();

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child!.once('exit', r));
    expect(code).toBe(0);
  }, 90_000);
});
