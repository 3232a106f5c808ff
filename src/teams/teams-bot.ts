/**
 * The part of the Teams adapter that needs the Teams SDK (teams-ai v1 over botbuilder). It is
 * loaded on first use only (teams-app.ts imports it dynamically): the SDK costs about 60 MB of
 * memory per process, paid only by a replica that receives a Teams activity or sends a Teams notice.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AdaptiveCardActionExecuteResponseType, Application, TeamsAdapter, type AdaptiveCard, type TurnState } from '@microsoft/teams-ai';
import { ActivityTypes, MemoryStorage, TeamsInfo, TurnContext, type ConversationReference } from 'botbuilder';
import { AuthenticationConstants } from 'botframework-connector';
import type { Config } from '../config/env.js';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { errorReply } from '../chat/reply.js';
import { readRawBody } from '../http/body.js';
import { APPROVE_VERB, CANCEL_VERB, CONFIRM_VERB, DENY_VERB, REFRESH_VERB, cardAttachment, renderTeams } from './render.js';
import { replyNotice } from '../notices/reply.notice.js';
import { approvalNotice } from '../notices/approval.notice.js';
import type { ChatIdentity } from '../chat/authorization.js';
import type { ChatReply } from '../chat/reply.js';
import { CodedError } from '../domain/errors.js';
import { approverMris, type TeamsBotDeps } from './teams-app.js';
import { TeamsIdentities, teamsApprover } from './identity.js';

/** A command's answer as an Adaptive Card 1.5. */
const replyCard = (reply: ChatReply) => renderTeams(replyNotice(reply));
const errorCard = (text: string) => replyCard(errorReply(text));

/** Stores where the bot can speak later: personal chats, group chats and channels it has seen. */
export async function rememberConversation(db: Db, clock: Clock, context: TurnContext): Promise<void> {
  const a = context.activity;
  if (!a.conversation?.id || !a.serviceUrl) return;
  const reference = TurnContext.getConversationReference(a);
  const kind = a.conversation.conversationType ?? 'personal';
  await db
    .insertInto('teams_conversations')
    .values({ conversation_id: a.conversation.id, kind, reference: JSON.stringify(reference), aad_object_id: kind === 'personal' ? a.from?.aadObjectId?.toLowerCase() ?? null : null, updated_at: clock.now() })
    .onConflict((oc) => oc.column('conversation_id').doUpdateSet({ reference: JSON.stringify(reference), updated_at: clock.now() }))
    .execute();
}

/** The Bot Framework adapter: validates inbound tokens when credentials are set, and sends proactively. */
export function createBotAdapter(config: Config): TeamsAdapter {
  const { appId, appPassword, tenantId, openIdMetadataUrl, tokenIssuer } = config.teams;
  if (!(appId && appPassword)) return new TeamsAdapter({});
  const auth = { MicrosoftAppId: appId, MicrosoftAppPassword: appPassword, MicrosoftAppTenantId: tenantId, MicrosoftAppType: tenantId ? 'SingleTenant' : 'MultiTenant' };
  // Overriding where signing keys come from (a sovereign cloud, or tests with local keys) means
  // giving the whole set of endpoints; the others keep their public-cloud values.
  const endpoints = openIdMetadataUrl
    ? {
        ToBotFromChannelOpenIdMetadataUrl: openIdMetadataUrl,
        ToBotFromChannelTokenIssuer: tokenIssuer ?? AuthenticationConstants.ToBotFromChannelTokenIssuer,
        ToBotFromEmulatorOpenIdMetadataUrl: AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
        ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
        ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
        OAuthUrl: AuthenticationConstants.OAuthUrl,
        ValidateAuthority: true,
      }
    : {};
  return new TeamsAdapter({ ...auth, ...endpoints });
}

/** The handler of `POST /api/messages`: the teams-ai Application behind botbuilder's adapter. */
export function createTeamsBot(deps: TeamsBotDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { config, db, clock, commands, logger, approvals } = deps;
  const { appId } = config.teams;
  const adapter = createBotAdapter(config);
  const identities = new TeamsIdentities({ db, clock, logger });
  /** The sender of this activity: AAD object id plus the email the roster gives (cached an hour). */
  const whoIs = (context: TurnContext) => identities.identify(context.activity.from, (memberId) => TeamsInfo.getMember(context, memberId));
  adapter.onTurnError = async (context, err) => {
    const id = Math.random().toString(36).slice(2, 10);
    logger.error({ err, errorId: id }, 'Teams turn failed');
    await context.sendActivity({ attachments: [cardAttachment(replyCard(errorReply(`Something went wrong on our side (error ${id}).`)))] }).catch(() => undefined);
  };
  const app = new Application<TurnState>({
    adapter,
    storage: new MemoryStorage(),
    removeRecipientMention: true,
    startTypingTimer: false,
    longRunningMessages: false,
    // The invoke response carries the refreshed card for the person who clicked; everyone else's
    // copy refreshes itself (refresh.userIds) or is updated by the cards job.
    adaptiveCards: { actionExecuteResponseType: AdaptiveCardActionExecuteResponseType.REPLACE_FOR_INTERACTOR },
  });

  app.conversationUpdate('membersAdded', async (context) => {
    await rememberConversation(db, clock, context);
  });
  app.activity(ActivityTypes.InstallationUpdate, async (context) => {
    await rememberConversation(db, clock, context);
  });
  app.activity(ActivityTypes.Message, async (context) => {
    await rememberConversation(db, clock, context);
    const a = context.activity;
    const text = (a.text ?? '').replace(/<at>[^<]*<\/at>/g, '').trim();
    const who = await whoIs(context);
    // The activity id is unique per message: a redelivered message is answered, not applied again.
    const reply = await commands.handle(who, text, { idempotencyKey: `teams:${a.conversation?.id}:${a.id}`, channel: a.conversation?.id });
    const card = { attachments: [cardAttachment(replyCard(reply))] };
    // Teams has no private replies in channels: an error goes to the person's chat with the bot when
    // we know it, and the channel only hears that they were answered privately.
    if ((reply.tone === 'error' || reply.private) && a.conversation?.conversationType !== 'personal' && a.from?.aadObjectId) {
      const personal = await db.selectFrom('teams_conversations').select('reference').where('kind', '=', 'personal').where('aad_object_id', '=', a.from.aadObjectId.toLowerCase()).executeTakeFirst();
      if (personal) {
        await adapter.continueConversationAsync(appId ?? '', personal.reference as Partial<ConversationReference>, async (ctx) => {
          await ctx.sendActivity(card);
        });
        await context.sendActivity({ type: 'message', text: 'I answered you in our private chat.' });
        return;
      }
      // A sign-in link must never be shown to a whole channel.
      if (reply.private) {
        await context.sendActivity({ type: 'message', text: 'I send sign-in links only in our private chat: message me there (open a chat with the bot) and say "console".' });
        return;
      }
    }
    await context.sendActivity(card);
  });

  // Approval cards (Universal Actions). The invoke response carries the card as it now is; a
  // refusal is shown on top of the current state and changes nothing.
  const cardFor = async (requestId: string, notice?: string) => {
    const view = await approvals.get(requestId);
    if (!view) return errorCard(`Unknown approval request ${requestId}.`);
    const agent = await db.selectFrom('agents').select('name').where('id', '=', view.agentId).executeTakeFirst();
    return renderTeams(approvalNotice(view, agent?.name ?? view.agentId, notice ? { banner: notice } : {}), { refreshUserIds: await approverMris(db, requestId) });
  };
  const requestIdOf = (data: unknown) => {
    const id = (data as { requestId?: unknown } | undefined)?.requestId;
    return typeof id === 'string' && /^[0-9a-f-]{36}$/.test(id) ? id : undefined;
  };
  const decideFromCard = (decision: 'approve' | 'deny') => async (context: TurnContext, _state: TurnState, data: Record<string, unknown>) => {
    const id = requestIdOf(data);
    if (!id) return errorCard('That card is not valid.') as unknown as AdaptiveCard;
    const reason = typeof data.reason === 'string' ? data.reason.trim() : '';
    if (decision === 'deny' && reason.length < 3) return (await cardFor(id, 'A denial needs a reason (at least 3 characters). Nothing was recorded.')) as unknown as AdaptiveCard;
    try {
      await approvals.decide(id, teamsApprover(await whoIs(context)), decision, decision === 'deny' ? reason : null);
      return (await cardFor(id)) as unknown as AdaptiveCard;
    } catch (err) {
      if (err instanceof CodedError) return (await cardFor(id, `${err.message}. Nothing was recorded.`)) as unknown as AdaptiveCard;
      throw err;
    }
  };
  app.adaptiveCards.actionExecute(APPROVE_VERB, decideFromCard('approve'));
  app.adaptiveCards.actionExecute(DENY_VERB, decideFromCard('deny'));
  // Two-step commands (revoke, second-person restore): the same confirmations as in Slack.
  const confirmation = (run: (who: ChatIdentity, id: string) => Promise<ChatReply>) => async (context: TurnContext, _state: TurnState, data: Record<string, unknown>) => {
    const id = typeof data.confirmationId === 'string' ? data.confirmationId : '';
    return replyCard(await run(await whoIs(context), id)) as unknown as AdaptiveCard;
  };
  app.adaptiveCards.actionExecute(CONFIRM_VERB, confirmation((who, id) => commands.confirm(who, id)));
  app.adaptiveCards.actionExecute(CANCEL_VERB, confirmation((who, id) => commands.cancel(who, id)));
  app.adaptiveCards.actionExecute(REFRESH_VERB, async (_context, _state, data: Record<string, unknown>) => {
    const id = requestIdOf(data);
    return (id ? await cardFor(id) : errorCard('That card is not valid.')) as unknown as AdaptiveCard;
  });

  const raw = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(await readRawBody(req)) as Record<string, unknown>;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'invalid_input', message: 'expected a Bot Framework activity as JSON' } }));
        return;
      }
      // botbuilder expects Express-style req/res; this is the thin shim it needs. botbuilder answers
      // 500 for some token failures (a bad signature surfaces as a plain error): anything refused
      // before our turn logic ran is an authentication failure, and says 401.
      let turnStarted = false;
      const shimRes = {
        socket: req.socket,
        status(code: number) {
          res.statusCode = !turnStarted && code >= 500 ? 401 : code;
          return shimRes;
        },
        header(name: string, value: unknown) {
          res.setHeader(name, String(value));
          return shimRes;
        },
        send(payload?: unknown) {
          if (payload !== undefined && !res.headersSent && typeof payload !== 'string' && !Buffer.isBuffer(payload)) res.setHeader('content-type', 'application/json');
          res.end(payload === undefined ? undefined : typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload));
          return shimRes;
        },
        end(...args: unknown[]) {
          res.end(...(args as []));
          return shimRes;
        },
      };
      try {
        await adapter.process({ body, headers: req.headers as Record<string, string | string[] | undefined>, method: req.method }, shimRes, (context) => {
          turnStarted = true;
          return app.run(context).then(() => undefined);
        });
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'Teams activity refused');
        if (!res.headersSent) res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'unauthorized', message: 'activity refused' } }));
      }
    })();
  };

  return raw;
}
