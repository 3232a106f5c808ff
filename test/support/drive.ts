import { expect } from 'vitest';
import { signPayload } from '../../src/webhooks/signature.js';
import { waitFor, type TestApp } from './app.js';
import { teamsMessage, type ConnectorCall, type FakeConnector } from './fake-connector.js';
import type { FakeSlack } from './fake-slack.js';
import { approvalClickBody, blockActionBody, postSigned, slashCommandBody } from './slack-requests.js';

/**
 * How tests drive the running app as its users and neighbours do: Slack commands and clicks (signed),
 * Teams messages through the fake Bot Connector, signed inbound webhooks, decisions over REST. Each
 * file keeps only a one-line wrapper with the signature its tests call.
 */

let seq = 0;
/** A response_url id no other request of this process uses. */
export const nextResponseId = (kind: string): string => `${kind}-${++seq}`;

/** What a Slack message or answer shows: its blocks (or the whole body), as one string to search. */
export const textOf = (body: unknown): string => JSON.stringify((body as { blocks?: unknown } | undefined)?.blocks ?? body);

export interface SlashOptions {
  /** The channel the command is typed in (Slack's default in slashCommandBody otherwise). */
  channel?: string;
  triggerId?: string;
  /** Sent as a Slack retry (x-slack-retry-num). */
  retryNum?: number;
  /** Any HTTP status is returned as is (by default anything but 200 fails the test). */
  anyStatus?: boolean;
}

/** `/armalo <text>` typed by `user`, signed as Slack signs it; the HTTP answer is the private acknowledgement. */
export async function slashCommand(app: TestApp, slack: FakeSlack, user: string, text: string, options: SlashOptions = {}) {
  const responseId = nextResponseId('cmd');
  const body = slashCommandBody({
    user_id: user,
    text,
    response_url: slack.responseUrl(responseId),
    ...(options.channel ? { channel_id: options.channel } : {}),
    ...(options.triggerId ? { trigger_id: options.triggerId } : {}),
  });
  const res = await postSigned(app.url, body, options.retryNum === undefined ? {} : { retryNum: options.retryNum });
  if (!options.anyStatus) expect(res.status).toBe(200);
  return { ...res, responseId };
}

/** Waits for the answer Slack's response_url received for `id`, and returns its body. */
export async function responseTo(slack: FakeSlack, id: string, what = `the answer to ${id}`): Promise<any> {
  await waitFor(() => slack.responses.some((r) => r.id === id), 5000, what);
  return slack.responses.find((r) => r.id === id)!.body;
}

/** A button click (block_actions) by `user`; returns the answer posted to its response_url. */
export async function clickButton(app: TestApp, slack: FakeSlack, user: string, actionId: string, value: string): Promise<any> {
  const id = nextResponseId('click');
  const res = await postSigned(app.url, blockActionBody({ user_id: user, action_id: actionId, value, response_url: slack.responseUrl(id) }));
  expect(res.status).toBe(200);
  return responseTo(slack, id, `the answer to click ${id}`);
}

/** An Approve (or Deny) click on an approval card in the clicker's DM; returns the answer posted to its response_url. */
export async function approvalClick(app: TestApp, slack: FakeSlack, user: string, requestId: string, actionId?: 'armalo_approve' | 'armalo_deny'): Promise<any> {
  const id = nextResponseId('click');
  const res = await postSigned(app.url, approvalClickBody({ user_id: user, request_id: requestId, response_url: slack.responseUrl(id), ...(actionId ? { action_id: actionId } : {}) }));
  expect(res.status).toBe(200);
  return responseTo(slack, id);
}

/** A Teams message from `aadObjectId` in its personal chat; waits for the bot's next reply there and returns it. */
export async function teamsSay(app: TestApp, connector: FakeConnector, text: string, aadObjectId: string): Promise<ConnectorCall> {
  const activity = teamsMessage(connector.url, { text, aadObjectId });
  const before = connector.sent(activity.conversation.id).length;
  const res = await postActivity(app, activity);
  expect(res.status).toBeLessThan(300);
  await waitFor(() => connector.sent(activity.conversation.id).length > before, 5000, 'the Teams reply');
  return connector.sent(activity.conversation.id).at(-1)!;
}

let invokes = 0;

/**
 * A click on an Adaptive Card button (Universal Actions: an `adaptiveCard/action` invoke) by `aad` in
 * their personal chat, on the card message `act-card`; returns the HTTP answer, whose body is the card
 * the bot answers with.
 */
export async function cardAction(app: TestApp, connector: FakeConnector, aad: string, verb: string, data: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const res = await postActivity(app, {
    type: 'invoke',
    name: 'adaptiveCard/action',
    id: `inv-${++invokes}`,
    // Teams sends the id of the card message the button is on.
    replyToId: 'act-card',
    serviceUrl: connector.url,
    channelId: 'msteams',
    from: { id: `29:${aad}`, aadObjectId: aad },
    conversation: { id: `a:personal-${aad}`, conversationType: 'personal', tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot' },
    value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
    channelData: { tenant: { id: 'tenant-1' } },
  });
  return { status: res.status, text: await res.text() };
}

/** Posts any activity to the bot's endpoint, as the Bot Connector does. */
export function postActivity(app: TestApp, activity: unknown): Promise<Response> {
  return fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
}

/** An inbound event on /webhooks/armalo, signed with `secret` (at time `t`, or now; `raw` sent instead of the event's JSON). */
export async function signedWebhook(app: TestApp, secret: string, event: unknown, options: { t?: number; raw?: string } = {}): Promise<{ status: number; body: any }> {
  const body = options.raw ?? JSON.stringify(event);
  const t = options.t ?? Math.floor(Date.now() / 1000);
  const res = await fetch(`${app.url}/webhooks/armalo`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-armalo-signature': signPayload(secret, body, t) }, body });
  return { status: res.status, body: (await res.json()) as any };
}

/** What POST /v1/decisions answers. */
export interface DecisionAnswer {
  decision: string;
  reasons: string[];
  reasonCodes: string[];
  agentStatus: string | null;
  viewVersion: string;
  approvalRequestId?: string;
  [key: string]: unknown;
}

/** POST /v1/decisions with the platform token, whatever it answers. */
export function postDecision(app: TestApp, body: Record<string, unknown>): Promise<{ status: number; body: DecisionAnswer }> {
  return app.call('POST', '/v1/decisions', body);
}

/** The decision for `action` by `agentId` (with `context` when given), answered 200. */
export async function decisionOf(app: TestApp, agentId: string, action: string, context?: Record<string, unknown>): Promise<DecisionAnswer> {
  const res = await postDecision(app, { agentId, action, ...(context ? { context } : {}) });
  expect(res.status).toBe(200);
  return res.body;
}
