import { pino, type Logger } from 'pino';
import { tracing } from './tracing.js';

export type { Logger };

/**
 * Structured JSON logs. Secrets are redacted by path wherever they could appear
 * (headers, config objects, bodies); we also never log raw configuration.
 */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'apiTokens',
  '*.apiTokens',
  'databaseUrl',
  'redisUrl',
  '*.databaseUrl',
  '*.redisUrl',
  'signingSecret',
  '*.signingSecret',
  'botToken',
  '*.botToken',
  'appPassword',
  '*.appPassword',
  'headers["x-armalo-signature"]',
];

export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.name ?? 'armalo-chatops', pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // With tracing on, every line written inside a span carries its trace_id and span_id, so a
      // log line leads to its trace and back. Without tracing, no mixin: nothing is added per line.
      ...(tracing ? { mixin: () => tracing?.logFields() ?? {} } : {}),
    },
    // pino's own types want its DestinationStream; any writable works.
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}

/** Removes credentials from a connection URL before it is shown to anyone. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '[redacted]';
    return url.toString();
  } catch {
    return '[unparseable url]';
  }
}

type LogLevel = 'info' | 'warn' | 'error';

/**
 * Logs a repeated condition (Redis or Postgres away, a flood of bad messages) at most once per
 * window and key; the next line for that key says how many were suppressed in between. An outage
 * produces a few lines a minute, not one per reconnect attempt.
 */
export interface LimitedLog {
  (level: LogLevel, key: string, fields: Record<string, unknown>, msg: string): void;
  /** Forgets a key (the condition ended), so its next occurrence is logged at once. */
  reset(key: string): void;
}

/** Keys are few (one per call site and queue); the cap only guards against a caller keying by input. */
const MAX_LIMITED_KEYS = 1000;

export function createLimitedLog(logger: Logger, options: { everyMs?: number; now?: () => number } = {}): LimitedLog {
  const everyMs = options.everyMs ?? 60_000;
  const now = options.now ?? Date.now;
  const seen = new Map<string, { at: number; suppressed: number }>();
  const log = ((level, key, fields, msg) => {
    const t = now();
    const entry = seen.get(key);
    if (entry && t - entry.at < everyMs) {
      entry.suppressed += 1;
      return;
    }
    if (!entry && seen.size >= MAX_LIMITED_KEYS) {
      const oldest = seen.keys().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    const suppressed = entry?.suppressed ?? 0;
    seen.delete(key);
    seen.set(key, { at: t, suppressed: 0 });
    logger[level](suppressed ? { ...fields, suppressed } : fields, suppressed ? `${msg} (${suppressed} more like this since the last line)` : msg);
  }) as LimitedLog;
  log.reset = (key) => {
    seen.delete(key);
  };
  return log;
}
