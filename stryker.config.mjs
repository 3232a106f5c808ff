// Mutation testing of the pure core (issue 10, "Evidence that tests bite"). Run with `npm run mutate`;
// docs/testing.md explains how to read the result and lists the survivors judged equivalent.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  // Only the pure unit tests: a mutant run must not need Postgres or Redis.
  vitest: { configFile: 'vitest.unit.config.ts', related: true },
  mutate: ['src/domain/**/*.ts', 'src/chat/command-parser.ts', 'src/chat/authorization.ts'],
  coverageAnalysis: 'perTest',
  // The machine is shared: two cores at most, one is the polite default.
  concurrency: 1,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  timeoutMS: 10_000,
  // Static mutants (module-level constants and patterns such as USAGE, TRUST_TIERS, SCOPE_PATTERN) cannot
  // be traced to single tests, so each one reruns every unit test: Stryker estimated 6% of the mutants would
  // take 68% of the time here. They are skipped by default; `npm run mutate -- --ignoreStatic false` runs them.
  ignoreStatic: true,
  thresholds: { high: 90, low: 80, break: null },
};
