import { pino, type Logger } from 'pino';

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
