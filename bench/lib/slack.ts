import { createHmac } from 'node:crypto';

/** Where our app takes Slack's requests (SLACK_EVENTS_PATH in src/slack/slack-app.ts). */
export const SLACK_EVENTS_PATH = '/slack/events';

/**
 * Headers for a request signed the way Slack signs them: `v0=` + HMAC-SHA256(secret,
 * `v0:<timestamp>:<raw body>`) in x-slack-signature, the Unix timestamp in x-slack-request-timestamp.
 */
export function slackHeaders(secret: string, rawBody: string, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': signature,
  };
}

let trigger = 0;

/** A `/armalo <text>` slash command as Slack sends it: form-encoded fields, a fresh trigger id each time. */
export function slashCommandBody(fields: { userId: string; text: string; responseUrl: string; channelId?: string }): string {
  return new URLSearchParams({
    token: 'deprecated-verification-token',
    team_id: 'T0BENCH',
    team_domain: 'bench',
    channel_id: fields.channelId ?? 'C0BENCH',
    channel_name: 'ops',
    user_id: fields.userId,
    user_name: fields.userId.toLowerCase(),
    command: '/armalo',
    text: fields.text,
    api_app_id: 'A0BENCH',
    is_enterprise_install: 'false',
    response_url: fields.responseUrl,
    // The app uses the trigger id as the idempotency key of a state change: never reuse one.
    trigger_id: `${Date.now()}.${++trigger}.bench`,
  }).toString();
}

/**
 * What the acknowledgement of a command must be: a 200 whose JSON body is an ephemeral message
 * with `expected` in its plain-text fallback. Returns undefined when it is, else what is wrong.
 */
export function checkAck(status: number, body: string, expected: string, mustNot?: string): string | undefined {
  if (status !== 200) return `HTTP ${status}: ${body.slice(0, 300)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `not JSON: ${body.slice(0, 300)}`;
  }
  const o = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  if (o.response_type !== 'ephemeral') return `response_type is ${JSON.stringify(o.response_type)}, not "ephemeral": ${body.slice(0, 300)}`;
  const text = typeof o.text === 'string' ? o.text : '';
  if (!text.includes(expected) || (mustNot !== undefined && text.includes(mustNot))) {
    return `text is ${JSON.stringify(text)}, expected it to contain ${JSON.stringify(expected)}${mustNot ? ` and not ${JSON.stringify(mustNot)}` : ''}`;
  }
  return undefined;
}
