import { randomBytes } from 'node:crypto';
import { App, HTTPReceiver, LogLevel, type AllMiddlewareArgs, type BlockAction, type Logger as BoltLogger, type SlackActionMiddlewareArgs } from '@slack/bolt';
import type { Config } from '../config/env.js';
import type { ChatCommands } from '../chat/chat-commands.js';
import { errorReply, type ChatReply } from '../chat/reply.js';
import type { Logger } from '../observability/logger.js';
import type { Route } from '../http/router.js';
import { APPROVE_ACTION, CANCEL_ACTION, CONFIRM_ACTION, DENY_ACTION, DENY_MODAL, MORE_ACTION, denyModal, renderSlack } from './render.js';
import { replyNotice } from '../notices/reply.notice.js';
import { approvalCount } from '../notices/approval.notice.js';
import type { SlackDirectory } from './slack-directory.js';
import type { ApprovalService, Approver } from '../approvals/approvals.service.js';
import { CodedError } from '../domain/errors.js';
import type { Db } from '../db/database.js';
import { claimSlackRequest, guardSlackRequests, REPLAYED_COMMAND_TEXT, slackBodyKey } from './slack-request-guard.js';

/** A command's answer in Block Kit, with the plain-text fallback Slack shows in notifications. */
const renderReply = (reply: ChatReply) => renderSlack(replyNotice(reply));

export const SLACK_EVENTS_PATH = '/slack/events';
export const SLASH_COMMAND = '/armalo';

export interface SlackAdapter {
  mode: 'http' | 'socket';
  /** Mounted on our HTTP server in HTTP mode. */
  route?: Route;
  app: App;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Bolt logs through our structured logger (which redacts secrets). */
function boltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  return {
    debug: (...msg) => logger.debug({ component: 'bolt' }, msg.map(String).join(' ')),
    info: (...msg) => logger.info({ component: 'bolt' }, msg.map(String).join(' ')),
    warn: (...msg) => logger.warn({ component: 'bolt' }, msg.map(String).join(' ')),
    error: (...msg) => logger.error({ component: 'bolt' }, msg.map(String).join(' ')),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

/**
 * The Slack adapter: turns signed slash commands and button clicks into ChatCommands calls and
 * renders the replies as Block Kit. Answers go in the acknowledgement itself: the use cases take
 * milliseconds, and everything slow (channel notices) is a job fed by the outbox.
 */
export function createSlackAdapter(deps: {
  config: Config;
  commands: ChatCommands;
  directory: SlackDirectory;
  logger: Logger;
  approvals: ApprovalService;
  /** Where seen request ids are kept (a replayed request is acknowledged and changes nothing). */
  db: Db;
  /** Asks a worker to publish a person's App Home (slow work belongs in a job). */
  requestHome?: (userId: string) => Promise<void>;
}): SlackAdapter | undefined {
  const { config, commands, directory, logger, approvals } = deps;
  const { signingSecret, botToken, appToken, apiUrl } = config.slack;
  if (!botToken || (!signingSecret && !appToken)) {
    logger.info('Slack is disabled: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)');
    return undefined;
  }
  const clientOptions = apiUrl ? { slackApiUrl: apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/` } : {};
  // `authorize` instead of `token`: Bolt would otherwise call auth.test while constructing.
  const authorize = async () => ({ botToken });
  const socket = !!appToken;
  let receiver: HTTPReceiver | undefined;
  const app = socket
    ? // installerOptions.clientOptions reaches the Socket Mode client's own Web API calls
      // (apps.connections.open), so SLACK_API_URL applies there too.
      new App({ socketMode: true, appToken, authorize, clientOptions, installerOptions: { clientOptions }, logger: boltLogger(logger) })
    : new App({
        receiver: (receiver = new HTTPReceiver({
          signingSecret: signingSecret!,
          endpoints: SLACK_EVENTS_PATH,
          processBeforeResponse: false,
          logger: boltLogger(logger),
        })),
        authorize,
        clientOptions,
      });

  // Socket Mode has no signed HTTP request to guard, but Slack delivers an envelope again when its
  // acknowledgement was late or lost. The same key as in HTTP mode (trigger id, event id) is
  // claimed before any listener runs; a delivery already seen is acknowledged and goes no further.
  if (socket) {
    const pruneState = { lastPrune: 0 };
    let claimFailureLogged = 0;
    app.use(async ({ body, next, ...rest }) => {
      const key = slackBodyKey(body);
      if (key) {
        let fresh = true;
        try {
          fresh = await claimSlackRequest(deps.db, key, Date.now(), pruneState);
        } catch (err) {
          // Postgres is away: the listeners cannot change anything either, so let them answer.
          if (Date.now() - claimFailureLogged > 60_000) {
            claimFailureLogged = Date.now();
            logger.warn({ err: (err as Error).message }, 'cannot record a Slack delivery id; redeliveries are not detected until Postgres is back');
          }
        }
        if (!fresh) {
          const ack = (rest as { ack?: (answer?: unknown) => Promise<void> }).ack;
          const isCommand = typeof (body as { command?: unknown }).command === 'string';
          if (ack) await ack(isCommand ? { response_type: 'ephemeral', text: REPLAYED_COMMAND_TEXT } : undefined);
          logger.info({ key }, 'Slack delivered a request again over Socket Mode; acknowledged, not applied again');
          return;
        }
      }
      await next();
    });
  }

  const failed = (err: unknown, where: string) => {
    // Unknown errors get an id that is logged; the user sees the id, never the internals.
    const id = randomBytes(4).toString('hex');
    logger.error({ err, errorId: id, where }, 'Slack handler failed');
    return renderReply(errorReply(`Something went wrong on our side (error ${id}). Nothing may have changed; check /armalo status.`));
  };

  app.command(SLASH_COMMAND, async ({ command, ack }) => {
    try {
      const who = await directory.identify(command.user_id);
      // The trigger id is unique per invocation: a redelivered command is answered, not applied again.
      const reply = await commands.handle(who, command.text ?? '', {
        idempotencyKey: `slack:${command.team_id}:${command.trigger_id}`,
        channel: command.channel_id,
      });
      await ack({ response_type: 'ephemeral', ...renderReply(reply) });
    } catch (err) {
      await ack({ response_type: 'ephemeral', ...failed(err, 'command') });
    }
  });

  // Buttons: acknowledge first, then answer through response_url. A refusal goes to the clicker
  // only; a success replaces the message, so the buttons are gone for everyone.
  const button = (run: (who: Awaited<ReturnType<SlackDirectory['identify']>>, value: string) => Promise<ChatReply>) =>
    async ({ ack, body, action, respond }: SlackActionMiddlewareArgs<BlockAction> & AllMiddlewareArgs) => {
      await ack();
      const value = 'value' in action && typeof action.value === 'string' ? action.value : '';
      let reply: ChatReply;
      try {
        reply = await run(await directory.identify(body.user.id), value);
      } catch (err) {
        await respond({ response_type: 'ephemeral', replace_original: false, ...failed(err, 'button') });
        return;
      }
      await respond(reply.tone === 'error' ? { response_type: 'ephemeral', replace_original: false, ...renderReply(reply) } : { replace_original: true, ...renderReply(reply) });
    };
  app.action<BlockAction>(CONFIRM_ACTION, button((who, value) => commands.confirm(who, value)));
  app.action<BlockAction>(CANCEL_ACTION, button((who, value) => commands.cancel(who, value)));
  // A listing's "more" button: the next page goes to the clicker only, below the pages already shown.
  app.action<BlockAction>(MORE_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const value = 'value' in action && typeof action.value === 'string' ? action.value : '';
    try {
      const reply = await commands.more(await directory.identify(body.user.id), value);
      await respond({ response_type: 'ephemeral', replace_original: false, ...renderReply(reply) });
    } catch (err) {
      await respond({ response_type: 'ephemeral', replace_original: false, ...failed(err, 'more') });
    }
  });

  // Approval cards. Refusals (not on the route, own request, already decided) go to the clicker only;
  // the cards themselves are updated by a job after every decision.
  const approver = async (userId: string): Promise<Approver> => {
    const who = await directory.identify(userId);
    return { actor: `slack:${userId}`, platform: 'slack', slack: userId, emails: who.emails };
  };
  const refusal = (err: unknown) => {
    if (!(err instanceof CodedError)) throw err;
    return renderReply(errorReply(`${err.message}. Nothing was recorded.`));
  };

  app.action<BlockAction>(APPROVE_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const id = 'value' in action && typeof action.value === 'string' ? action.value : '';
    try {
      const { view } = await approvals.decide(id, await approver(body.user.id), 'approve', null);
      const count = approvalCount(view);
      const text = view.status === 'approved' ? `Approved: the request is now approved.` : `Your approval is recorded (${count} of ${view.route.quorum}).`;
      await respond({ response_type: 'ephemeral', replace_original: false, text });
    } catch (err) {
      try {
        await respond({ response_type: 'ephemeral', replace_original: false, ...refusal(err) });
      } catch (unexpected) {
        await respond({ response_type: 'ephemeral', replace_original: false, ...failed(unexpected, 'approve') });
      }
    }
  });

  app.action<BlockAction>(DENY_ACTION, async ({ ack, body, action, respond, client }) => {
    await ack();
    const id = 'value' in action && typeof action.value === 'string' ? action.value : '';
    try {
      const view = await approvals.checkDecider(id, await approver(body.user.id));
      await client.views.open({ trigger_id: body.trigger_id, view: denyModal(id, view.agentId, view.action) });
    } catch (err) {
      try {
        await respond({ response_type: 'ephemeral', replace_original: false, ...refusal(err) });
      } catch (unexpected) {
        await respond({ response_type: 'ephemeral', replace_original: false, ...failed(unexpected, 'deny') });
      }
    }
  });

  app.view(DENY_MODAL, async ({ ack, view, body }) => {
    const reason = view.state.values.reason?.reason_input?.value?.trim() ?? '';
    if (reason.length < 3) {
      await ack({ response_action: 'errors', errors: { reason: 'Give a reason (at least 3 characters): everyone on the request will see it.' } });
      return;
    }
    try {
      await approvals.decide(view.private_metadata, await approver(body.user.id), 'deny', reason);
      await ack();
    } catch (err) {
      const message = err instanceof CodedError ? err.message : `something went wrong on our side (${failed(err, 'deny-modal').text})`;
      await ack({ response_action: 'errors', errors: { reason: message.slice(0, 150) } });
    }
  });

  // App Home: refreshed when opened (here) and after every decision (by the cards job).
  app.event('app_home_opened', async ({ event }) => {
    if (event.tab !== 'home') return;
    try {
      await deps.requestHome?.(event.user);
    } catch (err) {
      failed(err, 'app-home');
    }
  });

  app.error(async (err) => {
    failed(err, 'bolt');
  });

  return {
    mode: socket ? 'socket' : 'http',
    app,
    // Signature, clock skew (both ways) and replays are checked before Bolt sees the request.
    ...(receiver
      ? { route: { method: 'POST' as const, path: SLACK_EVENTS_PATH, auth: false, raw: guardSlackRequests(receiver.requestListener, { signingSecret: signingSecret!, db: deps.db, logger }) } }
      : {}),
    start: async () => {
      if (socket) await app.start();
    },
    stop: async () => {
      if (socket) await app.stop();
    },
  };
}
