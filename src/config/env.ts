import { z } from 'zod';

/**
 * What an API token may do (DESIGN §5): `admin` every endpoint; `platform` decisions, approval
 * requests and reading agents and scores; `agent` the same as platform for one agent only.
 */
export type TokenScope = { readonly kind: 'admin' } | { readonly kind: 'platform' } | { readonly kind: 'agent'; readonly agentId: string };

/** The token documented in the README and docker-compose.yml: public, so refused in production. */
export const DEV_API_TOKEN = 'change-me-dev-token-0123456789';
/** Shortest API token, and shortest webhook or link secret, accepted when NODE_ENV=production. */
export const MIN_PRODUCTION_TOKEN_LENGTH = 24;
export const MIN_PRODUCTION_SECRET_LENGTH = 32;

const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;
// The same shape as agent ids in the REST API (agentIdSchema).
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ENTRY_SHAPE = 'each entry must be name:token or name:token:scope (a token contains no ":", "," or spaces)';

/**
 * A named API token: `name:token[:scope]`. The name becomes the actor in the audit log. A token
 * contains no `:`, so every entry has one reading. Messages never echo the entry: it is a secret.
 */
const apiTokenSchema = z.string().transform((entry, ctx): ApiToken => {
  const parts = entry.split(':');
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (parts.length < 2 || parts.length > 3) return fail(ENTRY_SHAPE);
  const [name, token, scopeText] = parts as [string, string, string | undefined];
  if (!TOKEN_NAME.test(name)) return fail(`${ENTRY_SHAPE}; the name has 1-64 letters, digits, ".", "_" or "-"`);
  if (!/^\S+$/.test(token)) return fail(ENTRY_SHAPE);
  if (token.length < 16) return fail('each entry must be name:token with a token of at least 16 characters');
  let scope: TokenScope;
  if (scopeText === undefined || scopeText === 'admin') scope = { kind: 'admin' };
  else if (scopeText === 'platform') scope = { kind: 'platform' };
  else if (scopeText.startsWith('agent=') && AGENT_ID.test(scopeText.slice(6))) scope = { kind: 'agent', agentId: scopeText.slice(6) };
  else return fail('unknown scope: use admin, platform or agent=<agentId> (or leave it out for admin)');
  return { name, token, scope };
});

const urlSchema = (protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `expected a URL (${protocols.join(' or ')})`);

const flag = z
  .enum(['0', '1', 'true', 'false', ''])
  .optional()
  .transform((v) => v === '1' || v === 'true');

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

export const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    ARMALO_ROLE: z.enum(['web', 'worker', 'all']).default('all'),
    DATABASE_URL: urlSchema(['postgres:', 'postgresql:']),
    REDIS_URL: urlSchema(['redis:', 'rediss:']),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().default('0.0.0.0'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ARMALO_API_TOKENS: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .pipe(z.array(apiTokenSchema)),
    ARMALO_POLICY_FILE: optionalText,
    ARMALO_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/).default('armalo'),
    ARMALO_WEBHOOK_SECRET: optionalText,
    ARMALO_EVENTS_WEBHOOK_URL: optionalText.pipe(urlSchema(['http:', 'https:']).optional()),
    ARMALO_EVENTS_WEBHOOK_SECRET: optionalText,
    /** How long a process may go without confirming its permission view before it fails closed. */
    /** Hosts approval callbacks may go to (comma-separated); unset allows any host. */
    ARMALO_CALLBACK_HOSTS: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^(\*\.)?[a-z0-9.-]+(:\d+)?$/, 'each entry must be a host name such as hooks.example.com or *.example.com'))),
    /** Public base URL of this service (for links in chat, e.g. trust packet downloads in Teams). */
    ARMALO_PUBLIC_URL: optionalText.pipe(urlSchema(['http:', 'https:']).optional()),
    /** Signs expiring download links. At least 32 characters. */
    ARMALO_LINK_SECRET: optionalText.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
    /** Accept the public development defaults in production (laptop quick start only; loud warning). */
    ARMALO_INSECURE_DEV_DEFAULTS: flag,
    ARMALO_VIEW_STALE_AFTER_MS: z.coerce.number().int().min(500).max(60_000).default(3000),
    ARMALO_TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
    SLACK_SIGNING_SECRET: optionalText,
    SLACK_BOT_TOKEN: optionalText,
    SLACK_APP_TOKEN: optionalText,
    SLACK_API_URL: optionalText.pipe(urlSchema(['http:', 'https:']).optional()),
    TEAMS_APP_ID: optionalText,
    TEAMS_APP_PASSWORD: optionalText,
    TEAMS_TENANT_ID: optionalText,
    TEAMS_DEV_UNAUTHENTICATED: flag,
    /** Where inbound Bot Framework tokens' signing keys are published (sovereign clouds, tests). */
    TEAMS_OPENID_METADATA_URL: optionalText.pipe(urlSchema(['http:', 'https:']).optional()),
    TEAMS_TOKEN_ISSUER: optionalText,
  })
  .superRefine((env, ctx) => {
    if (env.ARMALO_EVENTS_WEBHOOK_URL && !env.ARMALO_EVENTS_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['ARMALO_EVENTS_WEBHOOK_SECRET'],
        message: 'required when ARMALO_EVENTS_WEBHOOK_URL is set (outbound events are always signed)',
      });
    }
    if (env.ARMALO_EVENTS_WEBHOOK_SECRET && env.ARMALO_EVENTS_WEBHOOK_SECRET.length < 16) {
      ctx.addIssue({ code: 'custom', path: ['ARMALO_EVENTS_WEBHOOK_SECRET'], message: 'must be at least 16 characters' });
    }
    if (env.TEAMS_DEV_UNAUTHENTICATED && env.NODE_ENV === 'production') {
      ctx.addIssue({
        code: 'custom',
        path: ['TEAMS_DEV_UNAUTHENTICATED'],
        message: 'refused when NODE_ENV=production: it disables Bot Framework authentication',
      });
    }
    const names = env.ARMALO_API_TOKENS.map((t) => t.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['ARMALO_API_TOKENS'], message: `token name "${dup}" is used twice` });
    // Production refuses what anyone could guess or brute-force, unless the operator says loudly
    // that this is a laptop (docker-compose.yml's quick start). Messages name the variable, never the value.
    if (env.NODE_ENV === 'production' && !env.ARMALO_INSECURE_DEV_DEFAULTS) {
      const hint = 'refused when NODE_ENV=production (ARMALO_INSECURE_DEV_DEFAULTS=1 allows it on a laptop)';
      env.ARMALO_API_TOKENS.forEach((t, i) => {
        if (t.token === DEV_API_TOKEN) {
          ctx.addIssue({ code: 'custom', path: ['ARMALO_API_TOKENS', i], message: `is the public development token from the README and docker-compose.yml: ${hint}` });
        } else if (t.token.length < MIN_PRODUCTION_TOKEN_LENGTH) {
          ctx.addIssue({ code: 'custom', path: ['ARMALO_API_TOKENS', i], message: `a token shorter than ${MIN_PRODUCTION_TOKEN_LENGTH} characters is ${hint}` });
        }
      });
      for (const name of ['ARMALO_WEBHOOK_SECRET', 'ARMALO_EVENTS_WEBHOOK_SECRET', 'ARMALO_LINK_SECRET'] as const) {
        const secret = env[name];
        if (secret !== undefined && secret.length < MIN_PRODUCTION_SECRET_LENGTH) {
          ctx.addIssue({ code: 'custom', path: [name], message: `a secret shorter than ${MIN_PRODUCTION_SECRET_LENGTH} characters is ${hint}` });
        }
      }
    }
  });

export interface ApiToken {
  readonly name: string;
  readonly token: string;
  readonly scope: TokenScope;
}

export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly role: 'web' | 'worker' | 'all';
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  readonly host: string;
  readonly logLevel: string;
  readonly apiTokens: readonly ApiToken[];
  readonly policyFile: string | undefined;
  readonly queuePrefix: string;
  readonly inboundWebhookSecret: string | undefined;
  readonly eventsWebhook: { readonly url: string; readonly secret: string } | undefined;
  readonly viewStaleAfterMs: number;
  /** Proxies in front of the service that append to X-Forwarded-For (the console sign-in limiter keys on the client behind them). */
  readonly trustedProxyHops: number;
  /** ARMALO_INSECURE_DEV_DEFAULTS=1: production accepted the public development defaults (warned at every start). */
  readonly insecureDevDefaults: boolean;
  readonly links: { readonly publicUrl: string; readonly secret: string } | undefined;
  /** ARMALO_PUBLIC_URL without a trailing slash: this service's own origin (MCP refuses other origins). */
  readonly publicUrl?: string | undefined;
  /** Allowed approval callback hosts; empty allows any. */
  readonly callbackHosts: readonly string[];
  readonly slack: {
    readonly signingSecret?: string | undefined;
    readonly botToken?: string | undefined;
    readonly appToken?: string | undefined;
    readonly apiUrl?: string | undefined;
  };
  readonly teams: {
    readonly appId?: string | undefined;
    readonly appPassword?: string | undefined;
    readonly tenantId?: string | undefined;
    readonly devUnauthenticated: boolean;
    readonly openIdMetadataUrl?: string | undefined;
    readonly tokenIssuer?: string | undefined;
  };
}

/** Raised when the environment is invalid; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Parses the environment once at start. Never echoes values: they may be secrets. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment');
        const missing = issue.code === 'invalid_type' && source[name] === undefined;
        // For lists (ARMALO_API_TOKENS) say which entry, by position: never echo the value.
        const entry = typeof issue.path[1] === 'number' ? ` (entry ${issue.path[1] + 1})` : '';
        return `${name}${entry}: ${missing ? 'is required' : issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  return deepFreeze<Config>({
    nodeEnv: e.NODE_ENV,
    role: e.ARMALO_ROLE,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    apiTokens: e.ARMALO_API_TOKENS,
    policyFile: e.ARMALO_POLICY_FILE,
    queuePrefix: e.ARMALO_QUEUE_PREFIX,
    inboundWebhookSecret: e.ARMALO_WEBHOOK_SECRET,
    eventsWebhook:
      e.ARMALO_EVENTS_WEBHOOK_URL && e.ARMALO_EVENTS_WEBHOOK_SECRET
        ? { url: e.ARMALO_EVENTS_WEBHOOK_URL, secret: e.ARMALO_EVENTS_WEBHOOK_SECRET }
        : undefined,
    viewStaleAfterMs: e.ARMALO_VIEW_STALE_AFTER_MS,
    trustedProxyHops: e.ARMALO_TRUSTED_PROXY_HOPS,
    insecureDevDefaults: e.ARMALO_INSECURE_DEV_DEFAULTS,
    callbackHosts: e.ARMALO_CALLBACK_HOSTS,
    publicUrl: e.ARMALO_PUBLIC_URL?.replace(/\/$/, ''),
    links: e.ARMALO_PUBLIC_URL && e.ARMALO_LINK_SECRET ? { publicUrl: e.ARMALO_PUBLIC_URL.replace(/\/$/, ''), secret: e.ARMALO_LINK_SECRET } : undefined,
    slack: {
      signingSecret: e.SLACK_SIGNING_SECRET,
      botToken: e.SLACK_BOT_TOKEN,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL,
    },
    teams: {
      appId: e.TEAMS_APP_ID,
      appPassword: e.TEAMS_APP_PASSWORD,
      tenantId: e.TEAMS_TENANT_ID,
      devUnauthenticated: e.TEAMS_DEV_UNAUTHENTICATED,
      openIdMetadataUrl: e.TEAMS_OPENID_METADATA_URL,
      tokenIssuer: e.TEAMS_TOKEN_ISSUER,
    },
  });
}
