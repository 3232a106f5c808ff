import { UnrecoverableError } from 'bullmq';
import { sql } from 'kysely';
import type { WebClient } from '@slack/web-api';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { BreakGlassNotice, DecommissionNotice, IncidentUpdate } from '../agents/agents.service.js';
import { isPerson, policyPeople } from '../domain/approval-route.js';
import { loadIncidentView } from '../incidents/incident-view.js';
import type { Policy } from '../policy/policy.schema.js';
import { classifySlackError } from './slack-web.js';
import { expiryLine, incidentRoot, slackActor, stepLine } from './incident.blocks.js';
import { CANCEL_ACTION, CONFIRM_ACTION, type Block } from './reply.blocks.js';
import { escapeMrkdwn } from './escape.js';
import type { ApprovalService } from '../approvals/approvals.service.js';
import { approvalCard } from './approval.blocks.js';
import { homeView } from './home.blocks.js';
import type { PacketService } from '../packets/packets.service.js';
import type { TrustPacket } from '../packets/packet.js';
import type { TrustNotice } from '../trust/trust.service.js';
import type { PolicyInvalidNotice } from '../policy/policy-watcher.js';

/** Slack answered 429: the job should wait this long without counting an attempt. */
export class SlackRateLimited extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`Slack rate limit: retry after ${retryAfterSeconds} s`);
    this.name = 'SlackRateLimited';
  }
}

export type NoticeOutcome = 'posted' | 'no_channel' | 'gone';

/**
 * Posts and updates incident notices. Every message we post is recorded under a key
 * (`slack:incident:<id>`, `slack:action:<id>`, …) right after Slack accepts it, so a retried
 * job updates what exists instead of posting again. Jobs for one incident take turns
 * (an advisory lock), so two quick actions never race to post the same root.
 */
export class SlackNotifier {
  constructor(
    private readonly deps: {
      db: Db;
      client: WebClient;
      policy: Policy;
      clock: Clock;
      approvals: ApprovalService;
      packets?: PacketService;
      renderPdf?: (packet: TrustPacket) => Promise<Buffer>;
      renderChart?: (packet: TrustPacket) => Promise<Buffer>;
    },
  ) {}

  private get channel(): string | undefined {
    return this.deps.policy.channels.incidents?.slack;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const failure = classifySlackError(err);
      if (failure.kind === 'rate_limited') throw new SlackRateLimited(failure.retryAfterSeconds);
      if (failure.kind === 'permanent') throw new UnrecoverableError(failure.message);
      throw new Error(`Slack call failed: ${failure.message}`);
    }
  }

  private async ref(key: string): Promise<{ channel: string; ts: string } | undefined> {
    return this.deps.db.selectFrom('chat_messages').select(['channel', 'ts']).where('key', '=', key).executeTakeFirst();
  }

  private async remember(key: string, channel: string, ts: string): Promise<void> {
    await this.deps.db
      .insertInto('chat_messages')
      .values({ key, platform: 'slack', channel, ts, created_at: this.deps.clock.now() })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
  }

  private async post(key: string, channel: string, message: { text: string; blocks: Block[]; thread_ts?: string }): Promise<{ channel: string; ts: string }> {
    const existing = await this.ref(key);
    if (existing) return existing;
    const res = await this.call(() => this.deps.client.chat.postMessage({ channel, ...message, unfurl_links: false }));
    const ts = String(res.ts);
    await this.remember(key, channel, ts);
    return { channel, ts };
  }

  /** Serializes work on one incident (or request) across workers. */
  private async exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const lockKey = key.includes(':') ? key : `incident:${key}`;
    return this.deps.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${lockKey}))`.execute(trx);
      return work();
    });
  }

  async incidentUpdate(update: IncidentUpdate): Promise<NoticeOutcome> {
    return this.exclusive(update.incidentId, async () => {
      const view = await loadIncidentView(this.deps.db, update.incidentId, this.deps.clock.now());
      if (!view) return 'gone';
      // The policy's incidents channel, and every channel subscribed to this agent's incidents: each
      // gets its own notice and thread (keys for extra channels carry the channel id).
      const subs = await this.deps.db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'slack').where('agent_pattern', 'in', [view.agent.id, '*']).execute();
      const targets: { channel: string; suffix: string }[] = [];
      if (this.channel) targets.push({ channel: this.channel, suffix: '' });
      for (const sub of subs) {
        if (sub.kinds.includes('incidents') && sub.channel !== this.channel && !targets.some((t) => t.channel === sub.channel)) targets.push({ channel: sub.channel, suffix: `:${sub.channel}` });
      }
      if (targets.length === 0) return 'no_channel';
      const step = view.steps.find((s) => s.actionId === update.actionId);
      for (const { channel, suffix } of targets) {
        const root = await this.post(`slack:incident:${view.id}${suffix}`, channel, incidentRoot(view));
        if (step && update.event === 'expired') {
          await this.post(`slack:expiry:${step.actionId}${suffix}`, root.channel, { text: expiryLine(step), blocks: [{ type: 'section', text: { type: 'mrkdwn', text: expiryLine(step) } }], thread_ts: root.ts });
        } else if (step && step.actionId !== view.openedByActionId) {
          await this.post(`slack:action:${step.actionId}${suffix}`, root.channel, { text: stepLine(step), blocks: [{ type: 'section', text: { type: 'mrkdwn', text: stepLine(step) } }], thread_ts: root.ts });
        }
        // The root always shows the current state.
        await this.call(() => this.deps.client.chat.update({ channel: root.channel, ts: root.ts, ...incidentRoot(view) }));
      }
      return 'posted';
    });
  }


  /**
   * A break-glass restore: a loud notice in the incidents channel (and channels subscribed to this
   * agent's incidents), and a direct message to every other member of the restore roles, so that the
   * people who would have been asked to confirm learn of it at once. Each post is remembered by key.
   */
  async breakGlassNotice(n: BreakGlassNotice): Promise<NoticeOutcome> {
    const { policy, db } = this.deps;
    const text = `:rotating_light: *BREAK-GLASS restore* of \`${escapeMrkdwn(n.agentId)}\` by ${slackActor(n.actor)}, with no second person: ${escapeMrkdwn(n.reason)}${n.incidentId ? ` (incident \`${n.incidentId.slice(0, 8)}\`)` : ''}.`;
    const subs = await db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'slack').where('agent_pattern', 'in', [n.agentId, '*']).execute();
    const channels = new Set(subs.filter((s) => s.kinds.includes('incidents')).map((s) => s.channel));
    if (this.channel) channels.add(this.channel);
    for (const channel of channels) {
      await this.post(`slack:breakglass:${n.actionId}:${channel}`, channel, { text: `<!here> ${text}`, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `<!here> ${text}` } }] });
    }
    const restorers = policyPeople(policy).filter((p) => p.roles.some((r) => policy.permissions.restore.roles.includes(r)) && !isPerson(p, { text: n.actor }));
    const users = await this.slackUsersOf(
      restorers.map((p) => p.key),
      Object.fromEntries(restorers.map((p) => [p.key, { slack: p.slack, emails: p.emails }])),
    );
    const dm = `${text} You hold a restore role, so you would have been asked to confirm it.`;
    let direct = 0;
    for (const uid of new Set([...users.values()].flat())) {
      await this.post(`slack:breakglass-dm:${n.actionId}:${uid}`, uid, { text: dm, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: dm } }] });
      direct++;
    }
    return channels.size + direct > 0 ? 'posted' : 'no_channel';
  }

  /**
   * An agent was decommissioned: one notice in the incidents channel and in every channel subscribed
   * to this agent's incidents. Posted once per channel (remembered by key), so a retry posts nothing twice.
   */
  async decommissionNotice(n: DecommissionNotice): Promise<NoticeOutcome> {
    const subs = await this.deps.db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'slack').where('agent_pattern', 'in', [n.agentId, '*']).execute();
    const channels = new Set(subs.filter((s) => s.kinds.includes('incidents')).map((s) => s.channel));
    if (this.channel) channels.add(this.channel);
    if (channels.size === 0) return 'no_channel';
    const text = `:wastebasket: \`${escapeMrkdwn(n.agentId)}\` was *decommissioned* by ${escapeMrkdwn(n.actor)}: ${escapeMrkdwn(n.reason)}. Its grants are removed and every decision for it is denied (\`agent_decommissioned\`); its history stays.`;
    for (const channel of channels) {
      await this.post(`slack:decommissioned:${n.agentId}:${channel}`, channel, { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
    }
    return 'posted';
  }

  /**
   * A policy file that changed but does not validate: said once per file content in the incidents
   * channel (keyed by the content's hash, so retries and other replicas do not post again).
   */
  async policyInvalidNotice(n: PolicyInvalidNotice): Promise<NoticeOutcome> {
    const channel = this.channel;
    if (!channel) return 'no_channel';
    const shown = n.problems.slice(0, 10).map((p) => `• ${escapeMrkdwn(p)}`);
    if (n.problems.length > shown.length) shown.push(`• …and ${n.problems.length - shown.length} more (see the log)`);
    const text = `:warning: The policy file \`${escapeMrkdwn(n.file)}\` changed but is *invalid*; nothing changed, the previous policy (\`${n.runningHash.slice(0, 12)}\`) stays in force. Fix it (\`npm run policy:check -- FILE\`):\n${shown.join('\n')}`;
    await this.post(`slack:policy-invalid:${n.contentHash}`, channel, { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 2900) } }] });
    return 'posted';
  }

  /** A restore waiting for a second person: a button in the incident's thread. */
  async confirmationRequest(confirmationId: string): Promise<NoticeOutcome> {
    const channel = this.channel;
    if (!channel) return 'no_channel';
    const row = await this.deps.db.selectFrom('confirmations').selectAll().where('id', '=', confirmationId).executeTakeFirst();
    // Decided (or cancelled because its incident ended) before we got to it: nothing to ask.
    if (!row || row.decided_at) return 'gone';
    // The thread of the incident it was asked about (bound when asked), not whichever is open now.
    const incident = row.incident_id ? { id: row.incident_id } : await this.deps.db.selectFrom('incidents').select('id').where('agent_id', '=', row.agent_id).where('status', '=', 'open').executeTakeFirst();
    const post = async () => {
      const root = incident ? await this.ref(`slack:incident:${incident.id}`) : undefined;
      const text = `${slackActor(row.requested_by)} asks to restore \`${escapeMrkdwn(row.agent_id)}\`: ${escapeMrkdwn(String(row.payload.reason ?? ''))}. ${row.requested_platform === 'api' ? 'An API token is not a person: anyone with the restore role may confirm.' : 'A second person with the restore role must confirm.'}`;
      await this.post(`slack:confirmation:${row.id}`, root?.channel ?? channel, {
        text,
        ...(root ? { thread_ts: root.ts } : {}),
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text } },
          {
            type: 'actions',
            block_id: `confirm:${row.id}`,
            elements: [
              { type: 'button', action_id: CONFIRM_ACTION, style: 'primary', text: { type: 'plain_text', text: `Confirm restore of ${row.agent_id}`.slice(0, 75) }, value: row.id },
              { type: 'button', action_id: CANCEL_ACTION, text: { type: 'plain_text', text: 'Cancel' }, value: row.id },
            ],
          },
        ],
      });
      return 'posted' as const;
    };
    return incident ? this.exclusive(incident.id, post) : post();
  }

  /** Slack user ids of the people on a request's route: listed ids, and emails the directory resolved. */
  private async slackUsersOf(keys: string[], people: Record<string, { slack: string[]; emails: string[] }>): Promise<Map<string, string[]>> {
    const emails = keys.flatMap((k) => people[k]?.emails ?? []);
    const resolved = emails.length
      ? await this.deps.db.selectFrom('chat_identities').select(['email', 'user_id']).where('platform', '=', 'slack').where('email', 'in', emails).execute()
      : [];
    return new Map(
      keys.map((k) => {
        const p = people[k];
        const ids = [...(p?.slack ?? []), ...resolved.filter((r) => r.user_id && p?.emails.includes(r.email)).map((r) => r.user_id!)];
        return [k, [...new Set(ids)]];
      }),
    );
  }

  /**
   * Posts the card to every approver's DM (and the rule's channel) that does not have it yet, then
   * updates every copy to the current state. Reminders go into the DM threads of those who have
   * not decided. Serialized per request, like incidents.
   */
  async approvalCards(requestId: string, flags: { remind?: boolean } = {}): Promise<NoticeOutcome> {
    return this.exclusive(`approval:${requestId}`, async () => {
      const view = await this.deps.approvals.get(requestId);
      const row = await this.deps.db.selectFrom('approval_requests').select(['route']).where('id', '=', requestId).executeTakeFirst();
      if (!view || !row) return 'gone';
      const agent = await this.deps.db.selectFrom('agents').select('name').where('id', '=', view.agentId).executeTakeFirst();
      const card = approvalCard(view, agent?.name ?? view.agentId);
      const route = row.route;
      const keys = [...new Set(route.requirements.flatMap((r) => r.people))];
      const users = await this.slackUsersOf(keys, route.people);
      const decided = new Set(view.decisions.map((d) => d.by));
      // A rate-limited channel must not hold up the others: post everywhere we can, then, if any
      // channel answered 429, retry the job after the longest Retry-After (posted copies are skipped).
      let limited: SlackRateLimited | undefined;
      const attempt = async (work: () => Promise<unknown>) => {
        try {
          await work();
        } catch (err) {
          if (!(err instanceof SlackRateLimited)) throw err;
          if (!limited || err.retryAfterSeconds > limited.retryAfterSeconds) limited = err;
        }
      };
      if (view.status === 'pending') {
        for (const [, ids] of users) {
          for (const userId of ids) {
            // Posting to a user id delivers to the app's DM with that person.
            await attempt(async () => {
              const copy = await this.post(`slack:approval:${requestId}:${userId}`, userId, card);
              if (flags.remind && !decided.has(`slack:${userId}`)) {
                const text = `:bell: Reminder: this request is still waiting on you (expires ${view.expiresAt}).`;
                await this.post(`slack:approval-remind:${requestId}:${userId}`, copy.channel, { text, thread_ts: copy.ts, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
              }
            });
          }
        }
        const channelName = route.channel ?? (this.deps.policy.channels.approvals ? 'approvals' : null);
        const channel = channelName ? this.deps.policy.channels[channelName]?.slack : undefined;
        if (channel) await attempt(() => this.post(`slack:approval:${requestId}:channel`, channel, card));
        // Channels subscribed to this agent's approvals get a copy too.
        const subs = await this.deps.db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'slack').where('agent_pattern', 'in', [view.agentId, '*']).execute();
        for (const sub of subs) {
          if (sub.kinds.includes('approvals') && sub.channel !== channel) await attempt(() => this.post(`slack:approval:${requestId}:sub:${sub.channel}`, sub.channel, card));
        }
      }
      const copies = await this.deps.db.selectFrom('chat_messages').select(['channel', 'ts']).where('key', 'like', `slack:approval:${requestId}:%`).execute();
      for (const copy of copies) await attempt(() => this.call(() => this.deps.client.chat.update({ channel: copy.channel, ts: copy.ts, ...card })));
      // Everyone on the route sees the change on their App Home too.
      for (const ids of users.values()) for (const userId of ids) await attempt(() => this.publishHome(userId));
      if (limited) throw limited;
      return 'posted';
    });
  }

  /** Refreshes a person's App Home: "Waiting on you" and "Recently decided". */
  async publishHome(userId: string): Promise<void> {
    const emails = (await this.deps.db.selectFrom('chat_identities').select('email').where('platform', '=', 'slack').where('user_id', '=', userId).execute()).map((r) => r.email);
    const actor = `slack:${userId}`;
    const [waiting, decided] = await Promise.all([
      this.deps.approvals.waitingOn({ actor, platform: 'slack', slack: userId, emails }),
      this.deps.approvals.decidedBy(actor),
    ]);
    await this.call(() => this.deps.client.views.publish({ user_id: userId, view: homeView(waiting, decided, actor) }));
  }

  /**
   * Tier changes, score moves over the policy's `trust.scoreMoveOver` and pact violations, to the policy's
   * scores channel and every Slack channel subscribed to this agent (or to every agent) for scores.
   */
  async trustNotice(n: TrustNotice): Promise<NoticeOutcome> {
    if (n.kind === 'score') {
      const moved = n.previousScore === null ? 0 : Math.abs(n.score - n.previousScore);
      if (n.tier === n.previousTier && moved <= this.deps.policy.trust.scoreMoveOver) return 'no_channel';
    }
    const subs = await this.deps.db.selectFrom('subscriptions').select(['channel', 'kinds']).where('platform', '=', 'slack').where('agent_pattern', 'in', [n.agentId, '*']).execute();
    const channels = new Set(subs.filter((s) => s.kinds.includes('scores')).map((s) => s.channel));
    const scores = this.deps.policy.channels.scores?.slack;
    if (scores) channels.add(scores);
    if (channels.size === 0) return 'no_channel';
    let text: string;
    if (n.kind === 'score') {
      const tierText = n.tier !== n.previousTier ? ` · tier *${n.previousTier ?? 'none'}* → *${n.tier}*` : ` · tier ${n.tier}`;
      text = `:chart_with_downwards_trend: \`${escapeMrkdwn(n.agentId)}\` score ${n.previousScore ?? 'none'} → *${n.score}*${tierText}`;
      if (n.previousScore !== null && n.score > n.previousScore) text = text.replace(':chart_with_downwards_trend:', ':chart_with_upwards_trend:');
    } else if (n.kind === 'stale') {
      text = `:hourglass: \`${escapeMrkdwn(n.agentId)}\` evidence is stale: the newest evaluation is ${n.ageDays} days old (${n.newestEvidence}). Its score decays and stale-evidence rules now apply.`;
    } else {
      text = `:rotating_light: \`${escapeMrkdwn(n.agentId)}\` violated pact \`${escapeMrkdwn(n.pactId)}\` (*${escapeMrkdwn(n.severity)}*)${n.description ? `: ${escapeMrkdwn(n.description)}` : ''}${n.evidenceUrl ? ` · evidence: ${escapeMrkdwn(n.evidenceUrl)}` : ''}`;
    }
    for (const channel of channels) {
      await this.post(`slack:trust:${n.key}:${channel}`, channel, { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
    }
    return 'posted';
  }

  /**
   * A built trust packet: summary blocks in the channel it was asked in, and the full PDF uploaded
   * there through the Web API's external upload flow (files.uploadV2).
   */
  async packetDelivery(packetId: string): Promise<NoticeOutcome> {
    const { packets, renderPdf } = this.deps;
    if (!packets || !renderPdf) return 'no_channel';
    const target = await packets.deliveryTarget(packetId);
    const packet = await packets.content(packetId);
    if (!target || target.platform !== 'slack' || !packet) return 'gone';
    const status = await packets.status(packetId);
    const s = packet.summary;
    const lines = [
      `*Score:* ${s.score ?? 'none'}${s.tier ? ` (${s.tier})` : ''} · trend ${s.trend}${s.change30d !== null ? ` (${s.change30d >= 0 ? '+' : ''}${s.change30d} in 30 days)` : ''} · evidence ${s.evidence}`,
      `_${escapeMrkdwn(s.verdict)}_`,
      packet.evidence.staleCount ? `:warning: *${packet.evidence.staleCount} stale evidence item${packet.evidence.staleCount === 1 ? '' : 's'}*` : 'No stale evidence',
      `*Pacts:* ${packet.pacts.items.map((p) => `${escapeMrkdwn(p.title)} (${p.lastResult ?? 'unverified'}, ${p.freshness})`).join('; ') || 'none'}`,
      `*Status:* ${packet.agent.status} · incidents (listed): ${packet.incidents.items.length} · approvals in 90 days: ${packet.approvals.counts.approved} approved, ${packet.approvals.counts.denied} denied`,
      `*Audit:* chain ${packet.auditIntegrity.verified ? 'verified' : 'BROKEN'} at entry ${packet.auditIntegrity.headSeq}`,
    ];
    // The file's title is plain text; the message, its fallback and the upload comment are mrkdwn, where
    // the agent's name and the audience (both user-supplied) must not mention, broadcast or link.
    const title = `Trust packet: ${packet.agent.name} (${packet.agent.id})${packet.audience ? ` for ${packet.audience}` : ''}`;
    const mrkdwnTitle = escapeMrkdwn(title);
    const text = `${mrkdwnTitle}\n${lines.join('\n')}`;
    await this.post(`slack:packet:${packetId}:summary`, target.channel, {
      text: mrkdwnTitle,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: `:page_facing_up: *${mrkdwnTitle}*` } },
        { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 2900) } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `Packet ${packetId} · sha256 ${status?.contentHash?.slice(0, 16)}… · verify with \`/armalo packet verify ${packetId}\`` }] },
      ],
    });
    const fileKey = `slack:packet:${packetId}:file`;
    if (!(await this.ref(fileKey))) {
      const [pdf, chart] = await Promise.all([renderPdf(packet), this.deps.renderChart ? this.deps.renderChart(packet) : Promise.resolve(undefined)]);
      // The PDF and the score chart (a PNG) go up together, with the summary as the message.
      const res = await this.call(() =>
        this.deps.client.files.uploadV2({
          channel_id: target.channel,
          initial_comment: text.slice(0, 3000),
          file_uploads: [
            { file: pdf, filename: `trust-packet-${packet.agent.id}.pdf`, title },
            ...(chart ? [{ file: chart, filename: `score-${packet.agent.id}.png`, title: `Score, last 90 days: ${packet.agent.id}` }] : []),
          ],
        }),
      );
      const files = (res as { files?: { files?: { id?: string }[] }[] }).files ?? [];
      await this.remember(fileKey, target.channel, files[0]?.files?.[0]?.id ?? 'uploaded');
    }
    return 'posted';
  }
}
