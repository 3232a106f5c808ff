import { defineConfig } from 'vitest/config';

/**
 * Only the pure unit tests: no Postgres, no Redis, no child processes. Stryker (`npm run mutate`) runs this
 * config once per mutant, so everything here must be fast and deterministic. The main config
 * (vitest.config.ts) still runs these files too.
 */
const UNIT_TESTS = [
  'test/domain.test.ts',
  'test/command-parser.test.ts',
  'test/duration.test.ts',
  'test/approval-route.test.ts',
  'test/trust-score.test.ts',
  'test/unit/**/*.test.ts',
];

export default defineConfig({
  test: {
    include: UNIT_TESTS,
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 10_000,
  },
});
