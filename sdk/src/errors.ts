/**
 * Every failure the SDK reports is an `ArmaloError`: `status` is the HTTP status (0 when no answer
 * came back), `code` the server's error code (`unauthorized`, `forbidden`, `invalid_input`,
 * `not_found`, `conflict`, `view_stale`, ...) or one of the SDK's own: `network_error`,
 * `bad_response`, `timeout`, `client_closed`.
 */
export class ArmaloError extends Error {
  override readonly name = 'ArmaloError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The server's `error.details`, when it sent any (e.g. which field was invalid). */
    readonly details?: unknown,
    /** The server's `error.requestId`: quote it when asking the operators. */
    readonly requestId?: string,
  ) {
    super(message);
  }

  /** 401 or 403: the token is wrong or may not do this; retrying will not help. */
  get isAuthError(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

const CODE_BY_STATUS: Record<number, string> = { 400: 'invalid_input', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 503: 'unavailable' };

/** Builds the error for a non-2xx answer from its JSON error body (`{error: {code, message, details?, requestId}}`). */
export async function errorFromResponse(res: Response, what: string): Promise<ArmaloError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // The body could not be read: the status alone still says enough.
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof error === 'object' && error !== null) {
    const e = error as { code?: unknown; message?: unknown; details?: unknown; requestId?: unknown };
    return new ArmaloError(
      res.status,
      typeof e.code === 'string' ? e.code : (CODE_BY_STATUS[res.status] ?? 'http_error'),
      `${what}: ${typeof e.message === 'string' ? e.message : `HTTP ${res.status}`}`,
      e.details,
      typeof e.requestId === 'string' ? e.requestId : undefined,
    );
  }
  return new ArmaloError(res.status, CODE_BY_STATUS[res.status] ?? 'http_error', `${what}: HTTP ${res.status}`);
}
