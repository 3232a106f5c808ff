import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { test as base } from 'vitest';
import type { AppOptions } from '../../src/app.js';
import { cleanRedisPrefix, startTestApp, testConfig, type TestApp } from './app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './database.js';
import { FakeConnector } from './fake-connector.js';
import { FakeSlack } from './fake-slack.js';
import { SIGNING_SECRET } from './slack-requests.js';
import { writePolicy } from './slack-policy.js';
import { WebhookReceiver } from './webhook-receiver.js';

/**
 * The one set-up of a test file that runs the whole app: a fresh database, a queue prefix, the fakes
 * it asks for, the app started on them, and everything taken down again in the right order. Built on
 * Vitest's `test.extend` with file-scoped fixtures: set up once per file, the first time a hook or a
 * test asks for them, and torn down after the file's own `afterAll` hooks, in reverse order of set-up:
 * the app instances, the extra databases, the policy file, the fakes, the queue prefix, the database.
 *
 * ```ts
 * const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
 * let app: TestApp;
 * let slack: FakeSlack;
 * it.beforeAll(async ({ app: started, slack: fake }) => {
 *   app = started;
 *   slack = fake;
 *   await app.call('PUT', '/v1/agents/pay-bot', sampleAgent);
 * });
 * ```
 * A file with more than one instance asks for `startApp` and starts the others with their own
 * environment (a web-only replica, Redis through a proxy, another database...).
 */

/** The Slack bot token the app is given whenever it is wired to the fake Slack. */
export const SLACK_BOT_TOKEN = 'xoxb-test-token-0123456789';

/** Environment for testConfig; a key set to undefined is left out. */
export type TestEnv = Record<string, string | undefined>;

export interface AppTestOptions {
  /** Policy YAML: written to a file of its own (ARMALO_POLICY_FILE), removed after the file. */
  policy?: string;
  /** More environment (wins over what the options below set). */
  env?: TestEnv;
  /**
   * The fake Slack Web API (SLACK_API_URL, SLACK_BOT_TOKEN) and, unless `signed: false`, signed
   * requests from Slack (SLACK_SIGNING_SECRET).
   */
  slack?: boolean | { signed?: boolean };
  /** People the fake Slack directory knows (users.lookupByEmail), email → user id, before the app starts. */
  slackUsers?: Record<string, string>;
  /** The fake Bot Connector, with Teams on and its inbound tokens not checked (TEAMS_DEV_UNAUTHENTICATED=1). */
  teams?: boolean;
  /** The webhook receiver as the event stream's consumer (ARMALO_EVENTS_WEBHOOK_URL and its secret). */
  events?: boolean | { secret?: string };
  /** Options of startApp (relayPollMs, worker, heartbeatMs, clock, ...). */
  appOptions?: AppOptions;
  /**
   * Runs once the fakes are up and before any instance starts (fake directory entries, a Socket Mode
   * server...). What it returns is added to the environment of every instance.
   */
  beforeStart?: (fakes: Fakes) => Promise<TestEnv | void> | TestEnv | void;
}

/** The fakes a file asked for, started. */
export interface Fakes {
  slack: FakeSlack | undefined;
  connector: FakeConnector | undefined;
  receiver: WebhookReceiver | undefined;
  /** The environment that points the app at them. */
  env: TestEnv;
}

/** One more instance: its own environment and options, on the file's database and prefix unless told otherwise. */
export interface InstanceOptions {
  env?: TestEnv;
  appOptions?: AppOptions;
  /** Another URL for the file's database (e.g. through a proxy). */
  databaseUrl?: string;
  /** Another queue prefix (cleaned after the file too). */
  prefix?: string;
  /** A database and queue prefix of its own, created now and removed after the file. */
  isolated?: boolean;
  /** Only this instance's env and options: not the file's policy, fakes, env or appOptions. */
  plain?: boolean;
}

export type StartApp = (options?: InstanceOptions) => Promise<TestApp>;

/** A database and queue prefix of their own, for instances that must not share the file's. */
export type FreshStore = () => Promise<{ database: TestDatabase; prefix: string }>;

export const DEFAULT_EVENTS_SECRET = 'whsec_events_0123456789abcdef';

/** The environment that wires the app to a started fake Slack. */
export function slackEnv(slack: FakeSlack, options: { signed?: boolean } = {}): TestEnv {
  return {
    SLACK_BOT_TOKEN,
    SLACK_API_URL: `${slack.url}/api/`,
    ...(options.signed === false ? {} : { SLACK_SIGNING_SECRET: SIGNING_SECRET }),
  };
}

function defined(env: TestEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Makes a second stop a no-op, so a test (or a file's own afterAll) may stop an instance early. */
function stopOnce(app: TestApp): TestApp {
  const stop = app.stop.bind(app);
  let stopping: Promise<void> | undefined;
  return Object.assign(app, { stop: () => (stopping ??= stop()) });
}

function missing(name: string, option: string): never {
  throw new Error(`the "${name}" fixture needs appTest({ ${option} }) in this file`);
}

/** A `test` (use it as `it` too) whose file-scoped fixtures run the app as `options` say. */
export function appTest(options: AppTestOptions = {}) {
  // Vitest reads a fixture's dependencies from its first parameter, which must be a destructuring
  // pattern: `{}` is how a fixture says it needs none.
  /* eslint-disable no-empty-pattern */
  return base
    .extend('database', { scope: 'file' }, async ({}, { onCleanup }) => {
      const database = await createTestDatabase();
      onCleanup(() => database.drop());
      return database;
    })
    .extend('prefix', { scope: 'file' }, async ({}, { onCleanup }) => {
      const prefix = testPrefix();
      onCleanup(async () => {
        await cleanRedisPrefix(prefix);
      });
      return prefix;
    })
    .extend('fakes', { scope: 'file' }, async ({}, { onCleanup }): Promise<Fakes> => {
      const fakes: Fakes = { slack: undefined, connector: undefined, receiver: undefined, env: {} };
      onCleanup(async () => {
        await Promise.all([fakes.slack?.stop(), fakes.connector?.stop(), fakes.receiver?.stop()]);
      });
      if (options.slack) {
        fakes.slack = new FakeSlack();
        await fakes.slack.start();
        for (const [email, id] of Object.entries(options.slackUsers ?? {})) fakes.slack.users.set(email, id);
        Object.assign(fakes.env, slackEnv(fakes.slack, typeof options.slack === 'object' ? options.slack : {}));
      }
      if (options.teams) {
        fakes.connector = new FakeConnector();
        await fakes.connector.start();
        fakes.env.TEAMS_DEV_UNAUTHENTICATED = '1';
      }
      if (options.events) {
        fakes.receiver = new WebhookReceiver();
        fakes.env.ARMALO_EVENTS_WEBHOOK_URL = await fakes.receiver.start();
        fakes.env.ARMALO_EVENTS_WEBHOOK_SECRET = (typeof options.events === 'object' ? options.events.secret : undefined) ?? DEFAULT_EVENTS_SECRET;
      }
      Object.assign(fakes.env, (await options.beforeStart?.(fakes)) ?? {});
      return fakes;
    })
    .extend('slack', { scope: 'file' }, async ({ fakes }) => fakes.slack ?? missing('slack', 'slack: true'))
    .extend('connector', { scope: 'file' }, async ({ fakes }) => fakes.connector ?? missing('connector', 'teams: true'))
    .extend('receiver', { scope: 'file' }, async ({ fakes }) => fakes.receiver ?? missing('receiver', 'events: true'))
    .extend('policyFile', { scope: 'file' }, async ({}, { onCleanup }) => {
      if (options.policy === undefined) return undefined;
      const file = writePolicy(options.policy);
      onCleanup(() => rmSync(dirname(file), { recursive: true, force: true }));
      return file;
    })
    .extend('freshStore', { scope: 'file' }, async ({}, { onCleanup }): Promise<FreshStore> => {
      const databases: TestDatabase[] = [];
      const prefixes: string[] = [];
      onCleanup(async () => {
        await Promise.all(databases.map((d) => d.drop()));
        await Promise.all(prefixes.map((p) => cleanRedisPrefix(p)));
      });
      return async () => {
        const database = await createTestDatabase();
        databases.push(database);
        const prefix = testPrefix();
        prefixes.push(prefix);
        return { database, prefix };
      };
    })
    .extend('startApp', { scope: 'file' }, async ({ database, prefix, fakes, policyFile, freshStore }, { onCleanup }): Promise<StartApp> => {
      const started: TestApp[] = [];
      const otherPrefixes: string[] = [];
      onCleanup(async () => {
        for (const app of started.reverse()) await app.stop();
        await Promise.all(otherPrefixes.map((p) => cleanRedisPrefix(p)));
      });
      return async (instance: InstanceOptions = {}) => {
        let url = instance.databaseUrl ?? database.url;
        let queuePrefix = instance.prefix ?? prefix;
        if (instance.isolated) {
          const own = await freshStore();
          url = own.database.url;
          queuePrefix = own.prefix;
        } else if (queuePrefix !== prefix) otherPrefixes.push(queuePrefix);
        const fileEnv = instance.plain ? {} : { ...(policyFile ? { ARMALO_POLICY_FILE: policyFile } : {}), ...fakes.env, ...options.env };
        const env = defined({ ...fileEnv, ...instance.env });
        const appOptions = { ...(instance.plain ? {} : options.appOptions), ...instance.appOptions };
        const app = stopOnce(await startTestApp(testConfig(url, queuePrefix, env), appOptions));
        started.push(app);
        return app;
      };
    })
    .extend('app', { scope: 'file' }, async ({ startApp }) => startApp());
  /* eslint-enable no-empty-pattern */
}
