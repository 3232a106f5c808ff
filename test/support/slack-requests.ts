import { createHmac } from 'node:crypto';

export const SIGNING_SECRET = 'slack_signing_secret_for_tests_0123';

export interface SignedOptions {
  secret?: string;
  timestamp?: number;
  omitSignature?: boolean;
  omitTimestamp?: boolean;
  retryNum?: number;
  /** Events API requests are JSON; commands and interactions are form-encoded. */
  json?: boolean;
}

/** Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export function signSlackRequest(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/** Posts a body to /slack/events signed the way Slack signs requests (v0 HMAC-SHA256). */
export async function postSigned(baseUrl: string, body: string, options: SignedOptions = {}): Promise<{ status: number; body: any; ms: number }> {
  const ts = options.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = signSlackRequest(options.secret ?? SIGNING_SECRET, ts, body);
  const headers: Record<string, string> = { 'content-type': options.json ? 'application/json' : 'application/x-www-form-urlencoded' };
  if (!options.omitTimestamp) headers['x-slack-request-timestamp'] = String(ts);
  if (!options.omitSignature) headers['x-slack-signature'] = signature;
  if (options.retryNum !== undefined) {
    headers['x-slack-retry-num'] = String(options.retryNum);
    headers['x-slack-retry-reason'] = 'http_timeout';
  }
  const started = performance.now();
  const res = await fetch(`${baseUrl}/slack/events`, { method: 'POST', headers, body });
  const text = await res.text();
  const ms = performance.now() - started;
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: res.status, body: parsed, ms };
}

let trigger = 0;

/** A slash command as Slack sends it: form-encoded fields. */
export function slashCommandBody(fields: { user_id: string; text: string; trigger_id?: string; response_url: string; channel_id?: string }): string {
  return new URLSearchParams({
    token: 'deprecated-verification-token',
    team_id: 'T0TEAM',
    team_domain: 'example',
    channel_id: fields.channel_id ?? 'C0RANDOM',
    channel_name: 'ops',
    user_id: fields.user_id,
    user_name: fields.user_id.toLowerCase(),
    command: '/armalo',
    text: fields.text,
    api_app_id: 'A0APP',
    is_enterprise_install: 'false',
    response_url: fields.response_url,
    trigger_id: fields.trigger_id ?? `${Date.now()}.${++trigger}.abcdef`,
  }).toString();
}

/** An Approve (or Deny) click on an approval card in the clicker's DM, as Slack sends it. */
export function approvalClickBody(fields: { user_id: string; request_id: string; response_url: string; action_id?: 'armalo_approve' | 'armalo_deny' }): string {
  const payload = {
    type: 'block_actions',
    user: { id: fields.user_id, username: fields.user_id.toLowerCase(), team_id: 'T0TEAM' },
    team: { id: 'T0TEAM', domain: 'example' },
    api_app_id: 'A0APP',
    token: 'x',
    trigger_id: `${Date.now()}.${++trigger}.trig`,
    response_url: fields.response_url,
    container: { type: 'message', channel_id: fields.user_id, message_ts: '1' },
    channel: { id: fields.user_id },
    actions: [{ type: 'button', action_id: fields.action_id ?? 'armalo_approve', block_id: `approval:${fields.request_id}`, value: fields.request_id, action_ts: '1' }],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** A button click (block_actions) as Slack sends it: form-encoded `payload` JSON. */
export function blockActionBody(fields: { user_id: string; action_id: string; value: string; response_url: string }): string {
  const payload = {
    type: 'block_actions',
    user: { id: fields.user_id, username: fields.user_id.toLowerCase(), team_id: 'T0TEAM' },
    api_app_id: 'A0APP',
    token: 'deprecated-verification-token',
    container: { type: 'message', message_ts: '1800000000.000001', channel_id: 'C0INCIDENTS', is_ephemeral: false },
    trigger_id: `${Date.now()}.${++trigger}.abcdef`,
    team: { id: 'T0TEAM', domain: 'example' },
    channel: { id: 'C0INCIDENTS', name: 'incidents' },
    response_url: fields.response_url,
    actions: [{ type: 'button', action_id: fields.action_id, block_id: `confirm:${fields.value}`, value: fields.value, action_ts: String(Date.now() / 1000) }],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}
