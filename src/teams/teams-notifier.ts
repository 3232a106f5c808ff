import { UnrecoverableError } from 'bullmq';
import { sql } from 'kysely';
import type { TeamsAdapter } from '@microsoft/teams-ai';
import type { ConversationReference, TurnContext } from 'botbuilder';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { BreakGlassNotice, DecommissionNotice, IncidentUpdate } from '../agents/agents.service.js';
import type { PolicyInvalidNotice } from '../policy/policy-watcher.js';
import { isPerson, policyPeople } from '../domain/approval-route.js';
import { loadIncidentView } from '../incidents/incident-view.js';
import type { Policy } from '../policy/policy.schema.js';
import { approverMris, conversationReference } from './teams-app.js';
import type { ApprovalService } from '../approvals/approvals.service.js';
import { teamsApprovalCard } from './approval.card.js';
import type { TrustNotice } from '../trust/trust.service.js';
import type { PacketService } from '../packets/packets.service.js';
import { packetLink } from '../packets/packet-links.js';
import { cardAttachment, replyCard } from './reply.card.js';
import { incidentCard, teamsStepLine } from './incident.card.js';
import { escapeMarkdown as md } from './escape.js';

/** The Bot Connector answered 429 (or 412/502/504): retry after this long, per Retry-After. */
export class TeamsThrottled extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`Teams throttled: retry after ${retryAfterSeconds} s`);
    this.name = 'TeamsThrottled';
  }
}

function classify(err: unknown): Error {
  const e = err as { statusCode?: number; response?: { headers?: { get?(name: string): string | undefined } }; message?: string };
  const status = e.statusCode;
  if (status === 429 || status === 412 || status === 502 || status === 504) {
    const header = Number(e.response?.headers?.get?.('retry-after'));
    // Jitter spreads retries of many conversations so they do not all come back at once.
    const base = Number.isFinite(header) && header > 0 ? header : 2;
    return new TeamsThrottled(base + Math.random());
  }
  if (status && status >= 400 && status < 500) return new UnrecoverableError(`Teams refused (${status}): ${e.message ?? ''}`);
  return new Error(`Teams call failed: ${e.message ?? String(err)}`);
}

export type TeamsOutcome = 'posted' | 'no_channel' | 'no_reference' | 'gone';

/**
 * Proactive Teams messages through stored conversation references. Like the Slack notifier, every
 * message is remembered under a key right after the connector accepts it, so a retried job updates
 * instead of posting twice, and jobs for one incident take turns.
 */
export class TeamsNotifier {
  constructor(
    private readonly deps: {
      db: Db;
      clock: Clock;
      policy: Policy;
      /** Created on first use (the Teams SDK loads then): see lazyBotAdapter. */
      adapter: () => Promise<TeamsAdapter>;
      appId: string;
      approvals: ApprovalService;
      packets?: PacketService;
      links?: { publicUrl: string; secret: string };
    },
  ) {}

  private async ref(key: string) {
    return this.deps.db.selectFrom('chat_messages').select(['channel', 'ts']).where('key', '=', key).executeTakeFirst();
  }

  private async remember(key: string, channel: string, id: string) {
    await this.deps.db.insertInto('chat_messages').values({ key, platform: 'teams', channel, ts: id, created_at: this.deps.clock.now() }).onConflict((oc) => oc.column('key').doNothing()).execute();
  }

  private async inConversation<T>(reference: Partial<ConversationReference>, work: (ctx: TurnContext) => Promise<T>): Promise<T> {
    let out: T | undefined;
    try {
      const adapter = await this.deps.adapter();
      await adapter.continueConversationAsync(this.deps.appId, reference, async (ctx) => {
        out = await work(ctx);
      });
    } catch (err) {
      throw classify(err);
    }
    return out as T;
  }

  async incidentUpdate(update: IncidentUpdate): Promise<TeamsOutcome> {
    const channel = this.deps.policy.channels.incidents?.teams;
    if (!channel) return 'no_channel';
    const reference = await conversationReference(this.deps.db, channel);
    // The bot must have been added to that team for Teams to let it post there.
    if (!reference) return 'no_reference';
    return this.deps.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`teams-incident:${update.incidentId}`}))`.execute(trx);
      const view = await loadIncidentView(this.deps.db, update.incidentId, this.deps.clock.now());
      if (!view) return 'gone';
      const card = incidentCard(view);
      const rootKey = `teams:incident:${view.id}`;
      let root = await this.ref(rootKey);
      if (!root) {
        const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ attachments: [cardAttachment(card)] }));
        await this.remember(rootKey, channel, String(sent?.id));
        root = { channel, ts: String(sent?.id) };
      }
      const step = view.steps.find((s) => s.actionId === update.actionId);
      const lineKey = update.event === 'expired' ? `teams:expiry:${update.actionId}` : `teams:action:${update.actionId}`;
      if (step && (update.event === 'expired' || step.actionId !== view.openedByActionId) && !(await this.ref(lineKey))) {
        const text = update.event === 'expired' ? `The ${step.kind} by ${md(step.actor)} reached its ttl and was lifted.` : teamsStepLine(step);
        // A reply in the notice's thread: the channel conversation with ;messageid=<root>.
        const threadRef = { ...reference, conversation: { ...(reference.conversation as object), id: `${channel};messageid=${root.ts}` } } as Partial<ConversationReference>;
        const sent = await this.inConversation(threadRef, (ctx) => ctx.sendActivity({ type: 'message', text }));
        await this.remember(lineKey, channel, String(sent?.id));
      }
      await this.inConversation(reference, (ctx) => ctx.updateActivity({ type: 'message', id: root!.ts, attachments: [cardAttachment(card)] }));
      return 'posted';
    });
  }

  /**
   * Approval cards in Teams: one in each Teams approver's personal chat with the bot (their
   * conversation reference is stored once they have talked to or installed the bot), then every
   * Teams copy updated to the current state. Decisions made in Slack land here too.
   */
  async approvalCards(requestId: string): Promise<TeamsOutcome> {
    const { db } = this.deps;
    return db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`teams-approval:${requestId}`}))`.execute(trx);
      const view = await this.deps.approvals.get(requestId);
      const row = await db.selectFrom('approval_requests').select('route').where('id', '=', requestId).executeTakeFirst();
      if (!view || !row) return 'gone';
      const agent = await db.selectFrom('agents').select('name').where('id', '=', view.agentId).executeTakeFirst();
      const card = teamsApprovalCard(view, agent?.name ?? view.agentId, { approverMris: await approverMris(db, requestId) });
      if (view.status === 'pending') {
        const teamsIds = [...new Set(row.route.requirements.flatMap((r) => r.people).flatMap((k) => row.route.people[k]?.teams ?? []))];
        const chats = teamsIds.length
          ? await db.selectFrom('teams_conversations').select(['conversation_id', 'reference', 'aad_object_id']).where('kind', '=', 'personal').where('aad_object_id', 'in', teamsIds).execute()
          : [];
        for (const chat of chats) {
          const key = `teams:approval:${requestId}:${chat.aad_object_id}`;
          if (await this.ref(key)) continue;
          const sent = await this.inConversation(chat.reference as Partial<ConversationReference>, (ctx) => ctx.sendActivity({ attachments: [cardAttachment(card)] }));
          await this.remember(key, chat.conversation_id, String(sent?.id));
        }
      }
      const copies = await db.selectFrom('chat_messages').select(['channel', 'ts']).where('key', 'like', `teams:approval:${requestId}:%`).execute();
      for (const copy of copies) {
        const reference = await conversationReference(db, copy.channel);
        if (reference) await this.inConversation(reference, (ctx) => ctx.updateActivity({ type: 'message', id: copy.ts, attachments: [cardAttachment(card)] }));
      }
      return 'posted';
    });
  }

  /** Score and tier notices, violations and stale evidence for subscribed Teams channels and `channels.scores.teams`. */
  async trustNotice(n: TrustNotice): Promise<TeamsOutcome> {
    if (n.kind === 'score') {
      const moved = n.previousScore === null ? 0 : Math.abs(n.score - n.previousScore);
      if (n.tier === n.previousTier && moved <= this.deps.policy.trust.scoreMoveOver) return 'no_channel';
    }
    const subs = await this.deps.db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'teams').where('agent_pattern', 'in', [n.agentId, '*']).execute();
    const channels = new Set(subs.filter((s) => s.kinds.includes('scores')).map((s) => s.channel));
    const scores = this.deps.policy.channels.scores?.teams;
    if (scores) channels.add(scores);
    if (channels.size === 0) return 'no_channel';
    // Message text is Markdown in Teams: user-supplied parts (ids, pact, description, URL) are escaped.
    const text =
      n.kind === 'score'
        ? `${md(n.agentId)}: score ${n.previousScore ?? 'none'} → ${n.score}, tier ${n.tier !== n.previousTier ? `${n.previousTier ?? 'none'} → ${n.tier}` : n.tier}`
        : n.kind === 'stale'
          ? `${md(n.agentId)}: evidence is stale, the newest evaluation is ${n.ageDays} days old (${n.newestEvidence})`
          : `${md(n.agentId)} violated pact ${md(n.pactId)} (${md(n.severity)})${n.description ? `: ${md(n.description)}` : ''}${n.evidenceUrl ? ` · evidence: ${md(n.evidenceUrl)}` : ''}`;
    let posted = false;
    for (const channel of channels) {
      const key = `teams:trust:${n.key}:${channel}`;
      if (await this.ref(key)) continue;
      const reference = await conversationReference(this.deps.db, channel);
      if (!reference) continue;
      const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ type: 'message', text }));
      await this.remember(key, channel, String(sent?.id));
      posted = true;
    }
    return posted ? 'posted' : 'no_reference';
  }

  /** A break-glass restore: a message in the Teams incidents channel and to the other restorers' personal chats (each once). */
  async breakGlassNotice(n: BreakGlassNotice): Promise<TeamsOutcome> {
    const { policy, db } = this.deps;
    const text = `BREAK-GLASS restore of ${md(n.agentId)} by ${md(n.actor)}, with no second person: ${md(n.reason)}`;
    let posted = false;
    const channel = policy.channels.incidents?.teams;
    const reference = channel ? await conversationReference(db, channel) : undefined;
    if (channel && reference) {
      const key = `teams:breakglass:${n.actionId}:${channel}`;
      if (!(await this.ref(key))) {
        const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ type: 'message', text }));
        await this.remember(key, channel, String(sent?.id));
      }
      posted = true;
    }
    const teamsIds = policyPeople(policy)
      .filter((p) => p.roles.some((r) => policy.permissions.restore.roles.includes(r)) && !isPerson(p, { text: n.actor }))
      .flatMap((p) => p.teams);
    const chats = teamsIds.length
      ? await db.selectFrom('teams_conversations').select(['conversation_id', 'reference', 'aad_object_id']).where('kind', '=', 'personal').where('aad_object_id', 'in', teamsIds).execute()
      : [];
    for (const chat of chats) {
      const key = `teams:breakglass-dm:${n.actionId}:${chat.aad_object_id}`;
      if (!(await this.ref(key))) {
        const sent = await this.inConversation(chat.reference as Partial<ConversationReference>, (ctx) => ctx.sendActivity({ type: 'message', text: `${text}. You hold a restore role, so you would have been asked to confirm it.` }));
        await this.remember(key, chat.conversation_id, String(sent?.id));
      }
      posted = true;
    }
    return posted ? 'posted' : channel ? 'no_reference' : 'no_channel';
  }

  /** The policy file changed but is invalid: a message in the Teams incidents channel, once per file content. */
  async policyInvalidNotice(n: PolicyInvalidNotice): Promise<TeamsOutcome> {
    const channel = this.deps.policy.channels.incidents?.teams;
    if (!channel) return 'no_channel';
    const key = `teams:policy-invalid:${n.contentHash}`;
    if (await this.ref(key)) return 'posted';
    const reference = await conversationReference(this.deps.db, channel);
    if (!reference) return 'no_reference';
    const shown = n.problems.slice(0, 10).map((p) => `- ${md(p)}`);
    if (n.problems.length > shown.length) shown.push(`- …and ${n.problems.length - shown.length} more (see the log)`);
    const text = `The policy file ${md(n.file)} changed but is **invalid**; nothing changed, the previous policy (${n.runningHash.slice(0, 12)}) stays in force. Fix it (npm run policy:check -- FILE):\n\n${shown.join('\n')}`;
    const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ type: 'message', text }));
    await this.remember(key, channel, String(sent?.id));
    return 'posted';
  }

  /** An agent was decommissioned: a message in the Teams incidents channel (once). */
  async decommissionNotice(n: DecommissionNotice): Promise<TeamsOutcome> {
    const channel = this.deps.policy.channels.incidents?.teams;
    if (!channel) return 'no_channel';
    const key = `teams:decommissioned:${n.agentId}:${channel}`;
    if (await this.ref(key)) return 'posted';
    const reference = await conversationReference(this.deps.db, channel);
    if (!reference) return 'no_reference';
    const text = `${md(n.agentId)} was decommissioned by ${md(n.actor)}: ${md(n.reason)}. Its grants are removed and every decision for it is denied (agent_decommissioned); its history stays.`;
    const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ type: 'message', text }));
    await this.remember(key, channel, String(sent?.id));
    return 'posted';
  }

  /** A restore waiting for a second person: a card with Confirm in the Teams incident thread. */
  async confirmationRequest(confirmationId: string): Promise<TeamsOutcome> {
    const channel = this.deps.policy.channels.incidents?.teams;
    if (!channel) return 'no_channel';
    const reference = await conversationReference(this.deps.db, channel);
    if (!reference) return 'no_reference';
    const row = await this.deps.db.selectFrom('confirmations').selectAll().where('id', '=', confirmationId).executeTakeFirst();
    // Decided (or cancelled because its incident ended) before we got to it: nothing to ask.
    if (!row || row.decided_at) return 'gone';
    const key = `teams:confirmation:${row.id}`;
    if (await this.ref(key)) return 'posted';
    // The thread of the incident it was asked about (bound when asked), not whichever is open now.
    const incident = row.incident_id ? { id: row.incident_id } : await this.deps.db.selectFrom('incidents').select('id').where('agent_id', '=', row.agent_id).where('status', '=', 'open').executeTakeFirst();
    const root = incident ? await this.ref(`teams:incident:${incident.id}`) : undefined;
    const target = root ? ({ ...reference, conversation: { ...(reference.conversation as object), id: `${channel};messageid=${root.ts}` } } as Partial<ConversationReference>) : reference;
    const card = replyCard({
      tone: 'info',
      title: `${row.requested_by} asks to restore ${row.agent_id}: ${String(row.payload.reason ?? '')}`,
      lines: [row.requested_platform === 'api' ? 'An API token is not a person: anyone with the restore role may confirm.' : 'A second person with the restore role must confirm.'],
      confirm: { id: row.id, label: `Confirm restore of ${row.agent_id}`, danger: false, expiresAt: row.expires_at.toISOString() },
    });
    const sent = await this.inConversation(target, (ctx) => ctx.sendActivity({ attachments: [cardAttachment(card)] }));
    await this.remember(key, channel, String(sent?.id));
    return 'posted';
  }

  /** A built trust packet asked for in Teams: a summary card with a signed, expiring PDF link. */
  async packetDelivery(packetId: string): Promise<TeamsOutcome> {
    const { packets, links } = this.deps;
    if (!packets) return 'no_channel';
    const target = await packets.deliveryTarget(packetId);
    const packet = await packets.content(packetId);
    if (!target || target.platform !== 'teams' || !packet) return 'gone';
    const key = `teams:packet:${packetId}`;
    if (await this.ref(key)) return 'posted';
    const reference = await conversationReference(this.deps.db, target.channel);
    if (!reference) return 'no_reference';
    const s = packet.summary;
    const body: Record<string, unknown>[] = [
      { type: 'TextBlock', text: `Trust packet: ${md(packet.agent.name)} (${md(packet.agent.id)})${packet.audience ? ` for ${md(packet.audience)}` : ''}`, weight: 'Bolder', size: 'Medium', wrap: true },
      { type: 'TextBlock', text: md(s.verdict), wrap: true, isSubtle: true },
      {
        type: 'FactSet',
        facts: [
          { title: 'Score', value: s.score === null ? 'none' : `${s.score} (${s.tier}), trend ${s.trend}` },
          { title: 'Evidence', value: `${s.evidence}${packet.evidence.staleCount ? `, ${packet.evidence.staleCount} stale evidence item(s)` : ''}` },
          { title: 'Pacts', value: packet.pacts.items.map((p) => `${md(p.title)} (${p.lastResult ?? 'unverified'})`).join('; ') || 'none' },
          { title: 'Status', value: packet.agent.status },
          { title: 'Audit', value: packet.auditIntegrity.verified ? `verified at entry ${packet.auditIntegrity.headSeq}` : 'BROKEN' },
        ],
      },
    ];
    if (!links) body.push({ type: 'TextBlock', text: `The PDF: GET /v1/trust-packets/${packetId}?format=pdf with an API token (download links need ARMALO_PUBLIC_URL and ARMALO_LINK_SECRET).`, wrap: true, isSubtle: true });
    const card = {
      type: 'AdaptiveCard',
      $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
      version: '1.5',
      body,
      ...(links ? { actions: [{ type: 'Action.OpenUrl', title: 'Download the full packet (PDF, link valid 24 h)', url: packetLink(links.publicUrl, links.secret, packetId, this.deps.clock.now()) }] } : {}),
    };
    const sent = await this.inConversation(reference, (ctx) => ctx.sendActivity({ attachments: [cardAttachment(card)] }));
    await this.remember(key, target.channel, String(sent?.id));
    return 'posted';
  }
}
