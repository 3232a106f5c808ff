import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): the real app as child processes under injected faults
 * (test/faults/*.fault.ts). Not part of `npm test`: it runs for minutes; CI runs it as its own step.
 * One file at a time: each scenario starts several app processes, and they share two cores.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 300_000,
    server: { deps: { inline: ['kysely'] } },
  },
});
