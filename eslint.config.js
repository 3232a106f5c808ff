// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Chat platform SDKs and the platform folders: never imported by src/domain or src/notices. */
const PLATFORM_IMPORTS = ['@slack/*', '@microsoft/*', 'botbuilder', 'botbuilder*', 'botframework-*', '*/slack/*', '*/teams/*', '**/slack/**', '**/teams/**'];

export default tseslint.config(
  { ignores: ['dist/**', 'sdk/dist/**', 'node_modules/**', 'coverage/**', 'reports/**', '.stryker-tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    // The domain core knows nothing of transports, storage, queues or chat platforms.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['pg', 'kysely', 'bullmq', 'ioredis', 'node:http', 'pino', '*/db/*', '*/http/*', '*/queue/*'], message: 'src/domain does no I/O: storage, queues and transports belong to the use cases around it (docs/architecture.md).' },
          { group: PLATFORM_IMPORTS, message: 'src/domain knows no chat platform (docs/architecture.md).' },
        ],
      }],
    },
  },
  {
    // Notices are platform-neutral data: each platform's folder renders and delivers them.
    files: ['src/notices/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: PLATFORM_IMPORTS, message: 'src/notices is platform-neutral: Slack and Teams code lives in src/slack and src/teams, behind ChatPlatform (docs/architecture.md).' }],
      }],
    },
  },
  {
    files: ['src/cli/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Tests read JSON answers loosely; the assertions are the type check there.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
