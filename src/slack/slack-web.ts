import { WebClient, ErrorCode as SlackErrorCode, LogLevel } from '@slack/web-api';

/**
 * The Web API client for jobs. Retries are ours, not the client's: a 429 becomes a delayed job
 * (other channels keep flowing) and 5xx goes through the queue's bounded backoff.
 */
export function createSlackWebClient(token: string, apiUrl: string | undefined): WebClient {
  return new WebClient(token, {
    ...(apiUrl ? { slackApiUrl: apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/` } : {}),
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: 10_000,
    logLevel: LogLevel.ERROR,
  });
}

export type SlackFailure =
  | { kind: 'rate_limited'; retryAfterSeconds: number }
  /** Slack is having trouble (HTTP 5xx, or one of its own transient answers): try again shortly. */
  | { kind: 'unavailable'; message: string }
  | { kind: 'transient'; message: string }
  | { kind: 'permanent'; message: string };

/** Sorts a Web API failure into what the job should do about it. */
export function classifySlackError(err: unknown): SlackFailure {
  const e = err as { code?: string; retryAfter?: number; data?: { error?: string }; message?: string; statusCode?: number };
  if (e.code === SlackErrorCode.RateLimitedError) return { kind: 'rate_limited', retryAfterSeconds: Math.max(1, e.retryAfter ?? 1) };
  if (e.code === SlackErrorCode.PlatformError) {
    const code = e.data?.error ?? 'unknown_error';
    // Slack's own transient answers arrive as platform errors too.
    if (['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited'].includes(code)) return { kind: 'unavailable', message: code };
    return { kind: 'permanent', message: `Slack refused: ${code}` };
  }
  if (e.code === SlackErrorCode.HTTPError && typeof e.statusCode === 'number' && e.statusCode >= 500) return { kind: 'unavailable', message: `HTTP ${e.statusCode}` };
  return { kind: 'transient', message: e.message ?? String(err) };
}
