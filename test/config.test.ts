import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../src/config/env.js';
import { startApp, StartupError } from '../src/app.js';
import { createLogger } from '../src/observability/logger.js';
import { PolicyError } from '../src/policy/load-policy.js';
import { LogCapture, testConfig } from './support/app.js';
import { createTestDatabase, REDIS_URL, type TestDatabase } from './support/database.js';
import { appTest } from './support/fixture.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** The least environment that loads; each case below breaks one thing in it. */
const BASE = {
  DATABASE_URL: 'postgres://armalo:db-password-5ecret@127.0.0.1:5432/armalo',
  REDIS_URL: 'redis://127.0.0.1:6379',
} as const;

/** Secrets the cases put into the environment; no error message may contain any of them. */
const SECRETS = {
  dbPassword: 'db-password-5ecret',
  redisPassword: 'redis-pa55word-zz',
  shortToken: 'tiny5ecret',
  namelessToken: 'tok_nameless_0123456789abcdef',
  tokenA: 'tok_first_0123456789abcdef',
  tokenB: 'tok_second_0123456789abcdef',
  webhookSecret: 'shorthook',
  scopedToken: 'tok_scoped_0123456789abcdef',
  devToken: 'change-me-dev-token-0123456789',
  shortProdToken: 'tok_22_chars_012345678',
  shortProdSecret: 'secret-of-31-characters-0123456',
};

/** Production with every secret strong enough: each production case below weakens one. */
const PROD = {
  ...BASE,
  NODE_ENV: 'production',
  ARMALO_API_TOKENS: 'platform:tok_production_0123456789abcdef:platform',
} as const;

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected loadConfig to refuse ${JSON.stringify(Object.keys(env))}`);
}

interface BadEnvCase {
  name: string;
  env: Record<string, string | undefined>;
  /** The variable the error must name. */
  variable: string;
  /** A further fragment of the problem line. */
  says: string;
}

const badEnvCases: BadEnvCase[] = [
  { name: 'missing DATABASE_URL', env: { ...BASE, DATABASE_URL: undefined }, variable: 'DATABASE_URL', says: 'DATABASE_URL: is required' },
  { name: 'DATABASE_URL that is not a URL', env: { ...BASE, DATABASE_URL: 'localhost:5432' }, variable: 'DATABASE_URL', says: 'expected a URL (postgres: or postgresql:)' },
  { name: 'DATABASE_URL with the wrong scheme (and a password)', env: { ...BASE, DATABASE_URL: `mysql://armalo:${SECRETS.dbPassword}@db/armalo` }, variable: 'DATABASE_URL', says: 'postgres:' },
  { name: 'missing REDIS_URL', env: { ...BASE, REDIS_URL: undefined }, variable: 'REDIS_URL', says: 'REDIS_URL: is required' },
  { name: 'REDIS_URL with the wrong scheme (and a password)', env: { ...BASE, REDIS_URL: `http://:${SECRETS.redisPassword}@127.0.0.1:6379` }, variable: 'REDIS_URL', says: 'expected a URL (redis: or rediss:)' },
  { name: 'PORT=abc', env: { ...BASE, PORT: 'abc' }, variable: 'PORT', says: 'PORT:' },
  { name: 'PORT=70000', env: { ...BASE, PORT: '70000' }, variable: 'PORT', says: 'PORT:' },
  { name: 'PORT=-1', env: { ...BASE, PORT: '-1' }, variable: 'PORT', says: 'PORT:' },
  { name: 'PORT=80.5', env: { ...BASE, PORT: '80.5' }, variable: 'PORT', says: 'PORT:' },
  { name: 'ARMALO_ROLE=boss', env: { ...BASE, ARMALO_ROLE: 'boss' }, variable: 'ARMALO_ROLE', says: 'ARMALO_ROLE:' },
  { name: 'NODE_ENV=staging', env: { ...BASE, NODE_ENV: 'staging' }, variable: 'NODE_ENV', says: 'NODE_ENV:' },
  { name: 'LOG_LEVEL=loud', env: { ...BASE, LOG_LEVEL: 'loud' }, variable: 'LOG_LEVEL', says: 'LOG_LEVEL:' },
  {
    name: 'ARMALO_API_TOKENS entry without a name',
    env: { ...BASE, ARMALO_API_TOKENS: `:${SECRETS.namelessToken}` },
    variable: 'ARMALO_API_TOKENS',
    says: 'each entry must be name:token',
  },
  {
    name: 'ARMALO_API_TOKENS entry that is only a token',
    env: { ...BASE, ARMALO_API_TOKENS: SECRETS.namelessToken },
    variable: 'ARMALO_API_TOKENS',
    says: 'each entry must be name:token',
  },
  {
    name: 'ARMALO_API_TOKENS entry with a short token',
    env: { ...BASE, ARMALO_API_TOKENS: `platform:${SECRETS.tokenA},ci:${SECRETS.shortToken}` },
    variable: 'ARMALO_API_TOKENS',
    says: 'at least 16 characters',
  },
  {
    name: 'ARMALO_API_TOKENS with a duplicate name',
    env: { ...BASE, ARMALO_API_TOKENS: `ci:${SECRETS.tokenA},ci:${SECRETS.tokenB}` },
    variable: 'ARMALO_API_TOKENS',
    says: 'token name "ci" is used twice',
  },
  {
    name: 'ARMALO_EVENTS_WEBHOOK_URL without its secret',
    env: { ...BASE, ARMALO_EVENTS_WEBHOOK_URL: 'https://siem.example.com/armalo' },
    variable: 'ARMALO_EVENTS_WEBHOOK_SECRET',
    says: 'required when ARMALO_EVENTS_WEBHOOK_URL is set',
  },
  {
    name: 'ARMALO_EVENTS_WEBHOOK_URL that is not http(s)',
    env: { ...BASE, ARMALO_EVENTS_WEBHOOK_URL: 'ftp://siem.example.com/armalo', ARMALO_EVENTS_WEBHOOK_SECRET: 'a-long-enough-webhook-secret' },
    variable: 'ARMALO_EVENTS_WEBHOOK_URL',
    says: 'expected a URL (http: or https:)',
  },
  {
    name: 'ARMALO_EVENTS_WEBHOOK_SECRET too short',
    env: { ...BASE, ARMALO_EVENTS_WEBHOOK_URL: 'https://siem.example.com/armalo', ARMALO_EVENTS_WEBHOOK_SECRET: SECRETS.webhookSecret },
    variable: 'ARMALO_EVENTS_WEBHOOK_SECRET',
    says: 'at least 16 characters',
  },
  {
    name: 'TEAMS_DEV_UNAUTHENTICATED=1 with NODE_ENV=production',
    env: { ...BASE, NODE_ENV: 'production', TEAMS_DEV_UNAUTHENTICATED: '1' },
    variable: 'TEAMS_DEV_UNAUTHENTICATED',
    says: 'refused when NODE_ENV=production',
  },
  { name: 'TEAMS_DEV_UNAUTHENTICATED=yes', env: { ...BASE, TEAMS_DEV_UNAUTHENTICATED: 'yes' }, variable: 'TEAMS_DEV_UNAUTHENTICATED', says: 'TEAMS_DEV_UNAUTHENTICATED:' },
  { name: 'SLACK_API_URL that is not a URL', env: { ...BASE, SLACK_API_URL: 'slack.example.com' }, variable: 'SLACK_API_URL', says: 'expected a URL' },
  // Token scopes (DESIGN §5): name:token[:scope], and a token has no ":" so there is one reading.
  {
    name: 'ARMALO_API_TOKENS entry with an unknown scope',
    env: { ...BASE, ARMALO_API_TOKENS: `platform:${SECRETS.tokenA}:platform,ci:${SECRETS.scopedToken}:superuser` },
    variable: 'ARMALO_API_TOKENS',
    says: 'ARMALO_API_TOKENS (entry 2): unknown scope: use admin, platform or agent=<agentId>',
  },
  {
    name: 'ARMALO_API_TOKENS entry with an agent scope naming no valid agent id',
    env: { ...BASE, ARMALO_API_TOKENS: `bot:${SECRETS.scopedToken}:agent=` },
    variable: 'ARMALO_API_TOKENS',
    says: 'unknown scope',
  },
  {
    name: 'ARMALO_API_TOKENS entry whose token contains ":" (two readings)',
    env: { ...BASE, ARMALO_API_TOKENS: `bot:${SECRETS.scopedToken}:platform:extra` },
    variable: 'ARMALO_API_TOKENS',
    says: 'a token contains no ":"',
  },
  // Production refuses weak settings (issue 10 item 18), naming the variable, never the value.
  {
    name: 'production: the development token from the README and docker-compose.yml',
    env: { ...PROD, ARMALO_API_TOKENS: `platform:tok_production_0123456789abcdef,dev:${SECRETS.devToken}` },
    variable: 'ARMALO_API_TOKENS',
    says: 'ARMALO_API_TOKENS (entry 2): is the public development token from the README and docker-compose.yml: refused when NODE_ENV=production',
  },
  {
    name: 'production: an API token shorter than 24 characters',
    env: { ...PROD, ARMALO_API_TOKENS: `ci:${SECRETS.shortProdToken}` },
    variable: 'ARMALO_API_TOKENS',
    says: 'a token shorter than 24 characters is refused when NODE_ENV=production',
  },
  {
    name: 'production: ARMALO_WEBHOOK_SECRET shorter than 32 characters (even 1 character)',
    env: { ...PROD, ARMALO_WEBHOOK_SECRET: 'x' },
    variable: 'ARMALO_WEBHOOK_SECRET',
    says: 'a secret shorter than 32 characters is refused when NODE_ENV=production',
  },
  {
    name: 'production: ARMALO_EVENTS_WEBHOOK_SECRET shorter than 32 characters',
    env: { ...PROD, ARMALO_EVENTS_WEBHOOK_URL: 'https://siem.example.com/armalo', ARMALO_EVENTS_WEBHOOK_SECRET: SECRETS.shortProdSecret },
    variable: 'ARMALO_EVENTS_WEBHOOK_SECRET',
    says: 'a secret shorter than 32 characters is refused when NODE_ENV=production',
  },
  {
    name: 'production: ARMALO_LINK_SECRET shorter than 32 characters',
    env: { ...PROD, ARMALO_PUBLIC_URL: 'https://armalo.example.com', ARMALO_LINK_SECRET: SECRETS.shortProdSecret },
    variable: 'ARMALO_LINK_SECRET',
    says: 'ARMALO_LINK_SECRET:',
  },
  { name: 'ARMALO_INSECURE_DEV_DEFAULTS=yes', env: { ...BASE, ARMALO_INSECURE_DEV_DEFAULTS: 'yes' }, variable: 'ARMALO_INSECURE_DEV_DEFAULTS', says: 'ARMALO_INSECURE_DEV_DEFAULTS:' },
];

describe('loadConfig refuses a bad environment, naming the variable', () => {
  it.each(badEnvCases)('$name', ({ env, variable, says }) => {
    const err = configError(env);
    expect(err.problems.some((p) => p.startsWith(`${variable}: `) || p.startsWith(`${variable} (entry `)), err.message).toBe(true);
    expect(err.message).toContain(says);
    expect(err.message).toMatch(/^invalid configuration:/);
    for (const secret of Object.values(SECRETS)) expect(err.message).not.toContain(secret);
  });

  it('lists every bad variable at once', () => {
    const err = configError({ REDIS_URL: 'http://x', PORT: 'abc', ARMALO_ROLE: 'boss' });
    expect(err.problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'PORT', 'ARMALO_ROLE']));
  });

  it('never echoes the value of a bad variable', () => {
    const secretish = 'zz-value-that-must-not-appear-zz';
    const err = configError({ ...BASE, PORT: secretish, ARMALO_ROLE: secretish, LOG_LEVEL: secretish, ARMALO_API_TOKENS: `x:${secretish} y` });
    expect(err.problems.length).toBeGreaterThanOrEqual(3);
    expect(err.message).not.toContain(secretish);
  });
});

describe('a loaded config', () => {
  it('is frozen, all the way down', () => {
    const config = loadConfig({ ...BASE, ARMALO_API_TOKENS: `platform:${SECRETS.tokenA}` });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.apiTokens)).toBe(true);
    expect(Object.isFrozen(config.apiTokens[0])).toBe(true);
    expect(Object.isFrozen(config.slack)).toBe(true);
    expect(Object.isFrozen(config.teams)).toBe(true);
    // ES modules run in strict mode: writing to a frozen object throws.
    const writable = config as unknown as { port: number; apiTokens: { token: string }[]; teams: { devUnauthenticated: boolean } };
    expect(() => {
      writable.port = 1;
    }).toThrow(TypeError);
    expect(() => {
      writable.apiTokens[0]!.token = 'replaced';
    }).toThrow(TypeError);
    expect(() => writable.apiTokens.push({ token: 'extra' })).toThrow(TypeError);
    expect(() => {
      writable.teams.devUnauthenticated = true;
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
    expect(config.apiTokens).toEqual([{ name: 'platform', token: SECRETS.tokenA, scope: { kind: 'admin' } }]);
  });

  it('has the documented defaults', () => {
    const config: Config = loadConfig({ ...BASE });
    expect(config).toMatchObject({
      nodeEnv: 'development',
      role: 'all',
      port: 3000,
      host: '0.0.0.0',
      logLevel: 'info',
      apiTokens: [],
      policyFile: undefined,
      queuePrefix: 'armalo',
      inboundWebhookSecret: undefined,
      eventsWebhook: undefined,
      viewStaleAfterMs: 3000,
      insecureDevDefaults: false,
      teams: { devUnauthenticated: false },
    });
  });

  it('parses named tokens, roles, ports and flags; blank optional values count as unset', () => {
    const config = loadConfig({
      ...BASE,
      NODE_ENV: 'test',
      PORT: '0',
      ARMALO_ROLE: 'worker',
      ARMALO_API_TOKENS: ` platform:${SECRETS.tokenA} , ci.bot-1:${SECRETS.tokenB} ,`,
      ARMALO_POLICY_FILE: '   ',
      ARMALO_EVENTS_WEBHOOK_URL: 'https://siem.example.com/armalo',
      ARMALO_EVENTS_WEBHOOK_SECRET: 'a-long-enough-webhook-secret',
      TEAMS_DEV_UNAUTHENTICATED: '1',
    });
    expect(config.port).toBe(0);
    expect(config.role).toBe('worker');
    expect(config.apiTokens).toEqual([
      { name: 'platform', token: SECRETS.tokenA, scope: { kind: 'admin' } },
      { name: 'ci.bot-1', token: SECRETS.tokenB, scope: { kind: 'admin' } },
    ]);
    expect(config.policyFile).toBeUndefined();
    expect(config.eventsWebhook).toEqual({ url: 'https://siem.example.com/armalo', secret: 'a-long-enough-webhook-secret' });
    expect(config.teams.devUnauthenticated).toBe(true);
  });
});

describe('token scopes and production settings', () => {
  it('reads name:token:scope; admin when the scope is left out', () => {
    const config = loadConfig({
      ...BASE,
      ARMALO_API_TOKENS: `root:${SECRETS.tokenA},ops:${SECRETS.tokenB}:admin,svc:${SECRETS.scopedToken}:platform,bot:${SECRETS.namelessToken}:agent=underwriting-bot`,
    });
    expect(config.apiTokens.map((t) => [t.name, t.scope])).toEqual([
      ['root', { kind: 'admin' }],
      ['ops', { kind: 'admin' }],
      ['svc', { kind: 'platform' }],
      ['bot', { kind: 'agent', agentId: 'underwriting-bot' }],
    ]);
  });

  it('production accepts strong settings', () => {
    const config = loadConfig({
      ...PROD,
      ARMALO_WEBHOOK_SECRET: 'w'.repeat(32),
      ARMALO_EVENTS_WEBHOOK_URL: 'https://siem.example.com/armalo',
      ARMALO_EVENTS_WEBHOOK_SECRET: 'e'.repeat(32),
      ARMALO_PUBLIC_URL: 'https://armalo.example.com',
      ARMALO_LINK_SECRET: 'l'.repeat(32),
    });
    expect(config.nodeEnv).toBe('production');
    expect(config.insecureDevDefaults).toBe(false);
  });

  it('outside production the development token and short secrets still load (laptops, tests)', () => {
    const config = loadConfig({ ...BASE, NODE_ENV: 'development', ARMALO_API_TOKENS: `dev:${SECRETS.devToken}`, ARMALO_WEBHOOK_SECRET: 'x' });
    expect(config.apiTokens[0]!.token).toBe(SECRETS.devToken);
  });

  it('ARMALO_INSECURE_DEV_DEFAULTS=1 lets production start on the documented defaults (the compose quick start)', () => {
    const config = loadConfig({ ...PROD, ARMALO_INSECURE_DEV_DEFAULTS: '1', ARMALO_API_TOKENS: `dev:${SECRETS.devToken},ci:${SECRETS.shortProdToken}`, ARMALO_WEBHOOK_SECRET: 'x' });
    expect(config.insecureDevDefaults).toBe(true);
    expect(config.apiTokens.map((t) => t.name)).toEqual(['dev', 'ci']);
  });

  it('the documented development token is the one in the README and docker-compose.yml', () => {
    for (const file of ['README.md', 'docker-compose.yml']) {
      expect(readFileSync(join(repoRoot, file), 'utf8'), file).toContain(SECRETS.devToken);
    }
  });
});

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when something accepts a TCP connection on the port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// The fixture gives the migrated database and the queue prefix; each test starts (or fails to start) the app itself.
const withStore = appTest();

describe('startApp refuses to run on what it cannot trust', () => {
  let unmigrated: TestDatabase;
  let migrated: TestDatabase;
  let dir: string;
  let prefix: string;

  withStore.beforeAll(async ({ database, prefix: fixturePrefix }) => {
    migrated = database;
    prefix = fixturePrefix;
    unmigrated = await createTestDatabase({ migrate: false });
    dir = mkdtempSync(join(tmpdir(), 'armalo-config-test-'));
  });

  afterAll(async () => {
    await unmigrated?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('an unmigrated database: StartupError saying to run npm run migrate, and nothing listening', async () => {
    const port = await freePort();
    const logs = new LogCapture();
    const config = testConfig(unmigrated.url, prefix, { PORT: String(port) });
    const started = startApp(config, { logger: createLogger({ level: 'info', destination: logs }) });
    await expect(started).rejects.toBeInstanceOf(StartupError);
    await expect(started).rejects.toThrow(/not migrated.*npm run migrate/);
    expect(await isListening(port)).toBe(false);
    expect(logs.text()).not.toContain(unmigrated.url);
  });

  it('an invalid policy file: PolicyError naming the file and the path of the bad value, and nothing listening', async () => {
    const file = join(dir, 'bad-policy.yaml');
    writeFileSync(
      file,
      [
        'roles:',
        '  oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }',
        'routing:',
        '  - approvers: [oncall]',
        '  - approvers: [oncall]',
        '    quorum: 0',
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const config = testConfig(migrated.url, prefix, { PORT: String(port), ARMALO_POLICY_FILE: file });
    const started = startApp(config, { logger: createLogger({ level: 'silent' }) });
    await expect(started).rejects.toBeInstanceOf(PolicyError);
    const err = (await started.catch((e: unknown) => e)) as PolicyError;
    expect(err.source).toBe(file);
    expect(err.message).toContain(`${file}: routing[1].quorum: expected a positive integer`);
    expect(await isListening(port)).toBe(false);
  });

  it('a Redis that does not answer: StartupError saying so, and nothing listening', async () => {
    const deadRedis = await freePort();
    const port = await freePort();
    const started = startApp(testConfig(migrated.url, prefix, { PORT: String(port), REDIS_URL: `redis://127.0.0.1:${deadRedis}` }), {
      logger: createLogger({ level: 'silent' }),
    });
    await expect(started).rejects.toThrow(/cannot reach Redis/);
    expect(await isListening(port)).toBe(false);
  });

  withStore('ARMALO_INSECURE_DEV_DEFAULTS=1 in production: starts on the development token, and warns loudly at start', async ({ startApp: startInstance }) => {
    const app = await startInstance({ plain: true, env: { NODE_ENV: 'production', ARMALO_INSECURE_DEV_DEFAULTS: '1', ARMALO_API_TOKENS: `dev:${SECRETS.devToken}` } });
    try {
      const warning = app.logs.lines.find((l) => String(l.msg).startsWith('INSECURE: ARMALO_INSECURE_DEV_DEFAULTS=1'));
      expect(warning, app.logs.text()).toBeDefined();
      expect(warning!.level).toBe('warn');
      expect(app.logs.text()).not.toContain(SECRETS.devToken);
      expect((await app.call('GET', '/v1/audit/verify', undefined, { token: SECRETS.devToken })).status).toBe(200);
    } finally {
      await app.stop();
    }
  });

  withStore('without the flag nothing warns about it', async ({ startApp: startInstance }) => {
    const app = await startInstance({ plain: true });
    try {
      expect(app.logs.text()).not.toContain('ARMALO_INSECURE_DEV_DEFAULTS');
    } finally {
      await app.stop();
    }
  });

  it('a policy file that does not exist: PolicyError naming the path, and nothing listening', async () => {
    const file = join(dir, 'missing.yaml');
    const port = await freePort();
    const started = startApp(testConfig(migrated.url, prefix, { PORT: String(port), ARMALO_POLICY_FILE: file }), {
      logger: createLogger({ level: 'silent' }),
    });
    await expect(started).rejects.toBeInstanceOf(PolicyError);
    await expect(started).rejects.toThrow(`${file}: cannot read the file: no such file`);
    expect(await isListening(port)).toBe(false);
  });
});

describe('the real entry point', () => {
  function runMain(env: Record<string, string>) {
    return spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: repoRoot,
      // Only what is given here: no DATABASE_URL leaks in from the test runner's environment.
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env },
      encoding: 'utf8',
      // tsx compiles the whole app first: tens of seconds on a loaded 2-core CI machine.
      timeout: 50_000,
    });
  }

  it('exits 1 and names DATABASE_URL on stderr when it is missing, without echoing secrets', () => {
    const result = runMain({ REDIS_URL, PORT: '0', ARMALO_API_TOKENS: `ci:${SECRETS.shortToken}` });
    expect(result.error).toBeUndefined();
    expect(result.signal).toBeNull();
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain('armalo chat-ops cannot start');
    expect(result.stderr).toContain('DATABASE_URL: is required');
    expect(result.stderr).toContain('ARMALO_API_TOKENS (entry 1):');
    expect(result.stderr).not.toContain(SECRETS.shortToken);
    // A clear message, not a crash: no stack trace.
    expect(result.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
