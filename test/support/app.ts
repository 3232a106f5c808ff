import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config/env.js';
import { startApp, type App, type AppOptions } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { REDIS_URL } from './database.js';

export const TOKEN = 'tok_platform_0123456789abcdef';
export const OTHER_TOKEN = 'tok_automation_0123456789abcdef';

/** Log lines the app wrote, kept so tests can assert on them (and on what they must not contain). */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    cb();
  }
  text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }
}

export function testConfig(databaseUrl: string, prefix: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    PORT: '0',
    HOST: '127.0.0.1',
    ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN}`,
    ARMALO_QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'info',
    ...env,
  });
}

export interface TestApp extends App {
  url: string;
  logs: LogCapture;
  /** Calls the REST API with the platform token (or `token: null` for none). */
  call(method: string, path: string, body?: unknown, options?: { token?: string | null; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function startTestApp(config: Config, options: AppOptions = {}): Promise<TestApp> {
  const logs = new LogCapture();
  const app = await startApp(config, { logger: createLogger({ level: 'info', destination: logs }), ...options });
  const url = `http://127.0.0.1:${app.port()}`;
  return Object.assign(app, {
    url,
    logs,
    async call(method: string, path: string, body?: unknown, opts: { token?: string | null; headers?: Record<string, string> } = {}) {
      const token = opts.token === undefined ? TOKEN : opts.token;
      const res = await fetch(url + path, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON (metrics): keep the text.
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
  }) as TestApp;
}

/** Removes every Redis key under a test (or bench) prefix; returns how many were deleted. */
export async function cleanRedisPrefix(prefix: string, redisUrl = REDIS_URL): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export const sampleAgent = {
  name: 'Underwriting bot',
  owner: 'ana@example.com',
  riskTier: 'high',
  grants: [
    { scope: 'payments:transfer', constraints: { maxAmount: 10000 } },
    { scope: 'payments:refund' },
    { scope: 'mail:send', keepInContainment: true },
    { scope: 'crm:write' },
  ],
};

/** Polls until `fn` returns true, or fails after `timeoutMs`. */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
