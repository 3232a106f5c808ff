import { UnrecoverableError } from 'bullmq';
import type { TeamsAdapter } from '@microsoft/teams-ai';
import type { Activity, ConversationReference, TurnContext } from 'botbuilder';
import type { Db } from '../db/database.js';
import type { Notice } from '../notices/model.js';
import { NotReachable, RetryLater, type ChatPlatform, type MessageRef, type PostOptions, type PostTarget } from '../notices/platform.js';
import { pacedPost, type PostGate } from '../notices/post-gate.js';
import { approverMris, conversationReference } from './teams-app.js';
import { cardAttachment, renderTeams, teamsLine } from './render.js';

/** Without a Retry-After, how long to wait after a throttled or failed Bot Connector call. */
const DEFAULT_RETRY_MS = 2_000;
/**
 * The Bot Framework client's HTTP pipeline (`@azure/core-rest-pipeline`) retries a 429, a 5xx and a
 * dropped connection by itself, up to three times, while the job waits. For our proactive sends the
 * notice job owns retries: the policy is taken out of each send's pipeline (see `inConversation`).
 */
const PIPELINE_RETRY_POLICY = 'defaultRetryPolicy';

/**
 * Teams as a ChatPlatform: notices rendered into Adaptive Cards (`render.ts`) and sent proactively
 * through the Bot Framework adapter with the conversation references stored when the bot was added
 * to a team or spoken to (`teams_conversations`). A conversation the bot has no reference for is
 * NotReachable (nothing to retry until someone adds the bot). 429, 412 and 5xx become RetryLater
 * (per Retry-After, with jitter so many conversations do not all come back at once); another 4xx is
 * a refusal that no retry can change.
 *
 * Posts into a conversation Teams has throttled take turns (`PostGate`, shared by every worker of
 * every replica): the refused message gets the next turn, one a second, and a message arriving
 * while turns are still to come there takes the turn after the last, so a burst reaches the
 * conversation in order and at a pace Teams accepts instead of all retrying at once.
 */
export class TeamsPlatform implements ChatPlatform {
  readonly name = 'teams' as const;

  constructor(
    private readonly deps: {
      db: Db;
      /** Created on first use (the Teams SDK loads then): see lazyBotAdapter. */
      adapter: () => Promise<TeamsAdapter>;
      appId: string;
      /** Turns for posting into conversations Teams has throttled, shared by the replicas (without one: no pacing). */
      gate?: PostGate;
    },
  ) {}

  async post(channel: string, notice: Notice, options?: PostOptions): Promise<MessageRef> {
    return pacedPost(this.deps.gate, 'Teams', channel, options?.key, async () => {
      const reference = await this.reference(channel);
      const activity = await this.activity(notice);
      const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity(activity));
      return { channel, id: String(sent?.id) };
    });
  }

  async update(ref: MessageRef, notice: Notice): Promise<void> {
    const reference = await this.reference(ref.channel);
    const activity = await this.activity(notice);
    await this.inConversation(reference, (ctx) => ctx.updateActivity({ ...activity, id: ref.id }));
  }

  /** In a channel: a reply in the message's thread (`<channel>;messageid=<root>`). A personal chat has no threads. */
  async replyInThread(root: MessageRef, notice: Notice, options?: PostOptions): Promise<MessageRef> {
    // A thread's replies take their channel's turns.
    return pacedPost(this.deps.gate, 'Teams', root.channel, options?.key, async () => {
      const reference = await this.reference(root.channel);
      const inChannel = (reference.conversation as { conversationType?: string } | undefined)?.conversationType === 'channel';
      const target = inChannel ? ({ ...reference, conversation: { ...(reference.conversation as object), id: `${root.channel};messageid=${root.id}` } } as Partial<ConversationReference>) : reference;
      const activity = await this.activity(notice);
      const sent = await this.inConversation(target, (ctx) => ctx.sendActivity(activity));
      return { channel: root.channel, id: String(sent?.id) };
    });
  }

  /** How long the message `key` waits for its turn in a throttled conversation (0: it may go now). */
  async turnWait(to: PostTarget, key: string): Promise<number> {
    return this.deps.gate ? this.deps.gate.waitAt(to, key) : 0;
  }

  /** The person's personal chat with the bot, known once they installed it or spoke to it. */
  async openDm(userId: string): Promise<string | undefined> {
    const row = await this.deps.db
      .selectFrom('teams_conversations')
      .select('conversation_id')
      .where('kind', '=', 'personal')
      .where('aad_object_id', '=', userId.toLowerCase())
      .orderBy('updated_at', 'desc')
      .executeTakeFirst();
    return row?.conversation_id;
  }

  private async reference(conversationId: string): Promise<Partial<ConversationReference>> {
    const reference = await conversationReference(this.deps.db, conversationId);
    // The bot must have been added to that team (or spoken to) for Teams to let it post there.
    if (!reference) throw new NotReachable(`the bot has no conversation reference for ${conversationId}`);
    return reference;
  }

  /**
   * A one-line notice (a step in an incident's thread, a score move) is a plain message, as people
   * write in a thread; anything with sections or buttons is an Adaptive Card. Approval cards refresh
   * themselves for their approvers (refresh.userIds, Universal Actions).
   */
  private async activity(notice: Notice): Promise<Partial<Activity>> {
    if (!notice.blocks.length && !notice.actions?.length && !notice.banner?.length) return { type: 'message', text: teamsLine(notice), textFormat: 'markdown' };
    const requestId = notice.kind === 'approval' ? notice.actions?.find((a) => a.kind === 'approve')?.requestId : undefined;
    const refreshUserIds = requestId ? await approverMris(this.deps.db, requestId) : undefined;
    return { type: 'message', attachments: [cardAttachment(renderTeams(notice, refreshUserIds?.length ? { refreshUserIds } : {}))] };
  }

  private async inConversation<T>(reference: Partial<ConversationReference>, work: (ctx: TurnContext) => Promise<T>): Promise<T> {
    let out: T | undefined;
    try {
      const adapter = await this.deps.adapter();
      await adapter.continueConversationAsync(this.deps.appId, reference, async (ctx) => {
        // A new connector client per proactive turn: without its own retry, a 429 reaches us at once.
        const connector = ctx.turnState.get(ctx.adapter.ConnectorClientKey) as { client?: { pipeline?: { removePolicy(o: { name: string }): unknown } } } | undefined;
        connector?.client?.pipeline?.removePolicy({ name: PIPELINE_RETRY_POLICY });
        out = await work(ctx);
      });
    } catch (err) {
      throw classify(err);
    }
    return out as T;
  }
}

function classify(err: unknown): Error {
  const e = err as { statusCode?: number; response?: { headers?: { get?(name: string): string | null | undefined } }; message?: string };
  const status = e.statusCode;
  if (status === 429 || status === 412 || (status !== undefined && status >= 500)) {
    const header = Number(e.response?.headers?.get?.('retry-after'));
    const base = Number.isFinite(header) && header > 0 ? header * 1000 : DEFAULT_RETRY_MS;
    // A 429 is a refusal before anything was posted; after a 412 or a 5xx that is not known.
    return new RetryLater(base + Math.floor(Math.random() * 1000), `Teams throttled or unavailable (${status})`, status === 429);
  }
  if (status && status >= 400 && status < 500) return new UnrecoverableError(`Teams refused (${status}): ${e.message ?? ''}`);
  return new Error(`Teams call failed: ${e.message ?? String(err)}`);
}
