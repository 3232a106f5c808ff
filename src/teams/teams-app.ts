import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TeamsAdapter } from '@microsoft/teams-ai';
import type { ConversationReference } from 'botbuilder';
import type { Config } from '../config/env.js';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { ChatCommands } from '../chat/chat-commands.js';
import type { Route } from '../http/router.js';
import type { Logger } from '../observability/logger.js';
import type { ApprovalService } from '../approvals/approvals.service.js';

/**
 * Teams user ids (29:…) of the request's approvers who have a personal chat with the bot: listed by
 * Teams id, or by an email the Teams roster gave for them (chat_identities, see identity.ts).
 */
export async function approverMris(db: Db, requestId: string): Promise<string[]> {
  const row = await db.selectFrom('approval_requests').select('route').where('id', '=', requestId).executeTakeFirst();
  if (!row) return [];
  const people = row.route.requirements.flatMap((r) => r.people).map((k) => row.route.people[k]);
  const emails = [...new Set(people.flatMap((p) => p?.emails ?? []).map((e) => e.toLowerCase()))];
  const byEmail = emails.length
    ? (await db.selectFrom('chat_identities').select('user_id').where('platform', '=', 'teams').where('email', 'in', emails).where('user_id', 'is not', null).execute()).map((r) => r.user_id!)
    : [];
  const teamsIds = [...new Set([...people.flatMap((p) => p?.teams ?? []).map((t) => t.toLowerCase()), ...byEmail])];
  if (!teamsIds.length) return [];
  const refs = await db.selectFrom('teams_conversations').select('reference').where('kind', '=', 'personal').where('aad_object_id', 'in', teamsIds).execute();
  return refs.map((r) => (r.reference as { user?: { id?: string } }).user?.id).filter((x): x is string => !!x);
}

export const TEAMS_MESSAGES_PATH = '/api/messages';

export interface TeamsHandle {
  route: Route;
  /** The bot's app id ('' in development mode without authentication). */
  appId: string;
}

export interface TeamsBotDeps {
  config: Config;
  db: Db;
  clock: Clock;
  commands: ChatCommands;
  logger: Logger;
  approvals: ApprovalService;
}

export async function conversationReference(db: Db, conversationId: string): Promise<Partial<ConversationReference> | undefined> {
  const row = await db.selectFrom('teams_conversations').select('reference').where('conversation_id', '=', conversationId).executeTakeFirst();
  return row?.reference as Partial<ConversationReference> | undefined;
}

/**
 * The Bot Framework adapter for proactive messages, created on first use: importing the Teams SDK
 * costs about 60 MB per process, so a replica that never sends a Teams notice never pays it.
 */
export function lazyBotAdapter(config: Config): () => Promise<TeamsAdapter> {
  let adapter: Promise<TeamsAdapter> | undefined;
  return () => {
    adapter ??= import('./teams-bot.js').then((m) => m.createBotAdapter(config));
    // A failed import is tried again next time rather than remembered.
    adapter.catch(() => {
      adapter = undefined;
    });
    return adapter;
  };
}

/** Teams is on when credentials are set, or explicitly in unauthenticated development mode. */
export const teamsEnabled = (config: Config) => !!(config.teams.appId && config.teams.appPassword) || config.teams.devUnauthenticated;

/**
 * The Teams adapter (teams-ai v1 over botbuilder), behind our own seam: the rest of the code sees
 * ChatCommands and the neutral reply model, never a Teams type, so moving to teams v2 touches this
 * folder only. With TEAMS_APP_ID and TEAMS_APP_PASSWORD every inbound activity's Bot Framework token
 * is validated by botbuilder; without them the endpoint is off unless TEAMS_DEV_UNAUTHENTICATED=1.
 */
export function createTeamsAdapter(deps: TeamsBotDeps): TeamsHandle | undefined {
  const { config, logger } = deps;
  const { appId, appPassword } = config.teams;
  if (!teamsEnabled(config)) {
    logger.info('Teams is disabled: set TEAMS_APP_ID and TEAMS_APP_PASSWORD (or TEAMS_DEV_UNAUTHENTICATED=1 for local development)');
    return undefined;
  }
  if (!(appId && appPassword)) {
    logger.warn('TEAMS_DEV_UNAUTHENTICATED=1: /api/messages accepts activities WITHOUT Bot Framework authentication. Local development and tests only.');
  }
  // The SDK loads with the first activity (about a second), not at start: see lazyBotAdapter.
  let bot: Promise<(req: IncomingMessage, res: ServerResponse) => void> | undefined;
  const raw = (req: IncomingMessage, res: ServerResponse) => {
    bot ??= import('./teams-bot.js').then((m) => m.createTeamsBot(deps));
    bot.then(
      (handle) => handle(req, res),
      (err: unknown) => {
        bot = undefined;
        logger.error({ err }, 'the Teams SDK could not be loaded');
        if (!res.headersSent) res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'unavailable', message: 'Teams is not available right now' } }));
      },
    );
  };

  return { route: { method: 'POST', path: TEAMS_MESSAGES_PATH, auth: false, raw }, appId: appId ?? '' };
}
