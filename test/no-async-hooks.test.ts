import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

// The first AsyncLocalStorage.run (or createHook().enable()) turns Node's async hooks on for the
// whole process, for good: every promise and socket of every request then pays init hooks. One
// notice job used to do it (the lease owner), so the decision endpoint paid for it in the `all`
// role. The lease owner is passed down explicitly now; nothing in src/ or jobs/ may bring them back.
// (With tracing on, OpenTelemetry's context manager, a dependency, still turns them on: the price of
// tracing, not of a notice job.)
const root = fileURLToPath(new URL('..', import.meta.url));
const files = (dir: string): string[] => readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));

test('no AsyncLocalStorage or async_hooks in src/ or jobs/', () => {
  const offenders = [...files('src'), ...files('jobs')].filter((f) => {
    // Comments may name them (otel's context manager is described in one); code may not.
    const code = readFileSync(join(root, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
    return /\bAsyncLocalStorage\b|\bcreateHook\b|['"](node:)?async_hooks['"]/.test(code);
  });
  expect(offenders).toEqual([]);
});
