import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { BreakGlassNotice, DecommissionNotice, IncidentUpdate } from '../agents/agents.service.js';
import type { ApprovalService } from '../approvals/approvals.service.js';
import { loadIncidentView } from '../incidents/incident-view.js';
import type { PacketService } from '../packets/packets.service.js';
import type { TrustPacket } from '../packets/packet.js';
import { packetLink } from '../packets/packet-links.js';
import type { Policy } from '../policy/policy.schema.js';
import type { PolicyInvalidNotice } from '../policy/policy-watcher.js';
import type { TrustNotice as TrustChange } from '../trust/trust.service.js';
import { approvalNotice, approvalReminderNotice, waitingNotice } from './approval.notice.js';
import { auditBrokenNotice, breakGlassNotice, decommissionNotice, policyInvalidNotice } from './admin.notice.js';
import { confirmationNotice } from './confirmation.notice.js';
import { incidentExpiryNotice, incidentNotice, incidentStepNotice } from './incident.notice.js';
import { fleetConfirmationNotice, fleetIncidentNotice, fleetRestoreNotice } from './fleet.notice.js';
import { loadFleetIncidentView } from '../fleet/fleet-view.js';
import { fleetIncidentOfAction } from '../fleet/fleet.repository.js';
import { selectorText } from '../domain/fleet-selector.js';
import type { FleetSelector } from '../domain/fleet-selector.js';
import type { JobPayload } from '../queue/job-contracts.js';
import type { LeaseOwner, MessageLedger } from './ledger.js';
import { packetNotice } from './packet.notice.js';
import type { Notice } from './model.js';
import { NotReachable, RetryLater, type ChatPlatform, type MessageRef, type PlatformName } from './platform.js';
import type { Recipients } from './recipients.js';
import { announcesTrust, trustNotice } from './trust.notice.js';

/** What a use case did on one platform. */
export type NoticeOutcome = 'posted' | 'no_channel' | 'no_reference' | 'gone' | 'not_announced';

/**
 * One platform's deliveries in one job. Every target (a channel, a person) is tried on its own, so
 * a rate-limited or refusing channel never holds up the others; at the end the job is retried after
 * the longest wait it was given (posted copies are skipped then), or fails with the first error.
 */
class Deliveries {
  private limited: RetryLater | undefined;
  private failure: unknown;
  private reached = 0;
  private unreachable = 0;

  async attempt(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
      this.reached++;
    } catch (err) {
      if (err instanceof NotReachable) this.unreachable++;
      else if (err instanceof RetryLater) this.limited = RetryLater.longest(this.limited, err);
      else this.failure ??= err;
    }
  }

  /** Counts a target that could not be reached without trying (a person with no chat with the bot). */
  missed(): void {
    this.unreachable++;
  }

  outcome(): NoticeOutcome {
    if (this.limited) throw this.limited;
    if (this.failure !== undefined) throw this.failure;
    if (this.reached > 0) return 'posted';
    return this.unreachable > 0 ? 'no_reference' : 'no_channel';
  }
}

export interface NoticeServiceDeps {
  db: Db;
  clock: Clock;
  policy: Policy;
  approvals: ApprovalService;
  ledger: MessageLedger;
  recipients: Recipients;
  /** The configured chat platforms (Slack, Teams, …): every notice goes to each. */
  platforms: ChatPlatform[];
  packets?: PacketService;
  renderPdf?: (packet: TrustPacket) => Promise<Buffer>;
  renderChart?: (packet: TrustPacket) => Promise<Buffer>;
  /** Signed, expiring download links for platforms that take no files (a packet's PDF on Teams). */
  links?: { publicUrl: string; secret: string };
  /**
   * Asks for a person's home view to be republished soon, coalesced per person (a queued job), so a
   * burst of changes is a few publishes rather than one per change. Without it, it is published at once.
   */
  requestHome?: (platform: PlatformName, userId: string) => Promise<void>;
}

/**
 * The chat notices, one use case per kind, generic over the configured platforms: each notice is
 * built once from domain data (`*.notice.ts`), its recipients resolved per platform (`Recipients`),
 * and each platform posts, threads and updates it through the ChatPlatform port. Every message is
 * recorded in the ledger under a key right after the platform accepted it, so a retried job
 * updates what exists instead of posting twice; work on one incident or one approval request takes
 * turns through a lease, never through a transaction held open across a platform call. The use
 * cases that take a lease accept the job they run in (`owner`, a LeaseOwner), which the lease names.
 */
export class NoticeService {
  constructor(private readonly deps: NoticeServiceDeps) {}

  platform(name: PlatformName): ChatPlatform | undefined {
    return this.deps.platforms.find((p) => p.name === name);
  }

  /** Runs one platform's part of a use case and says what happened there: `slack posted, teams no_reference`. */
  private async each(work: (platform: ChatPlatform, out: Deliveries) => Promise<NoticeOutcome | void>): Promise<string> {
    if (this.deps.platforms.length === 0) return 'no_platform';
    const results: string[] = [];
    let limited: RetryLater | undefined;
    let failure: unknown;
    for (const platform of this.deps.platforms) {
      const out = new Deliveries();
      try {
        const early = await work(platform, out);
        results.push(`${platform.name} ${early ?? out.outcome()}`);
      } catch (err) {
        // One platform's trouble does not keep the notice from the others.
        if (err instanceof RetryLater) limited = RetryLater.longest(limited, err);
        else failure ??= err;
      }
    }
    if (limited) throw limited;
    if (failure !== undefined) throw failure;
    return results.join(', ');
  }

  /** Posts under a key once; answers the message and whether it was posted now. */
  private once(platform: ChatPlatform, key: string, post: () => Promise<MessageRef>) {
    return this.deps.ledger.once(key, platform.name, post);
  }

  /** Posts a notice into a channel or DM once per key (the key travels with the message, so a retry can find it). */
  private postTo(platform: ChatPlatform, key: string, channel: string, notice: Notice) {
    return this.deps.ledger.postOnce(key, platform, { channel }, () => platform.post(channel, notice, { key }));
  }

  /** Replies in a thread once per key (as `postTo`). */
  private replyTo(platform: ChatPlatform, key: string, root: MessageRef, notice: Notice) {
    return this.deps.ledger.postOnce(key, platform, { thread: root }, () => platform.replyInThread(root, notice, { key }));
  }

  /**
   * An incident's notice: the root in the policy's incidents channel and in every channel subscribed
   * to the agent's incidents (keys for subscribed channels carry the channel), this step as a line in
   * each root's thread, and the root updated to the current state.
   */
  async incidentUpdate(update: IncidentUpdate, owner?: LeaseOwner): Promise<string> {
    return this.deps.ledger.exclusive(`incident:${update.incidentId}`, async () => {
      const view = await loadIncidentView(this.deps.db, update.incidentId, this.deps.clock.now());
      if (!view) return 'gone';
      // A step of a fleet action (its ttl running out on one of thousands of agents) is told once,
      // in the fleet incident's thread, not in a thread per agent.
      const fleetIncidentId = await fleetIncidentOfAction(this.deps.db, update.actionId);
      // (The lift job closes the fleet incident when its ttl lifted the last of its agents.)
      if (fleetIncidentId) return 'fleet';
      const root = incidentNotice(view);
      const step = view.steps.find((s) => s.actionId === update.actionId);
      // The thread tells the steps in order: a step's job also posts the lines of earlier steps
      // not posted yet (their own jobs may be waiting out a 429 or a 5xx backoff; posted once by key).
      const lines: { key: string; notice: ReturnType<typeof incidentStepNotice> }[] = [];
      if (step) {
        for (const s of view.steps) {
          if (s.actionId !== view.openedByActionId) lines.push({ key: `action:${s.actionId}`, notice: incidentStepNotice(s) });
          if (s.actionId === step.actionId) break;
        }
        if (update.event === 'expired') lines.push({ key: `expiry:${step.actionId}`, notice: incidentExpiryNotice(step) });
      }
      return this.each(async (platform, out) => {
        const p = platform.name;
        for (const target of await this.deps.recipients.channels(p, view.agent.id, 'incidents', 'incidents')) {
          const suffix = target.fromPolicy ? '' : `:${target.channel}`;
          await out.attempt(async () => {
            const posted = await this.postTo(platform, `${p}:incident:${view.id}${suffix}`, target.channel, root);
            for (const line of lines) await this.replyTo(platform, `${p}:${line.key}${suffix}`, posted.ref, line.notice);
            // The root always shows the current state.
            if (!posted.posted) await platform.update(posted.ref, root);
          });
        }
      });
    }, owner);
  }

  /**
   * A fleet incident (a containment by selector): one root in the policy's incidents channel naming
   * the selector and the count, updated in place; a restore by the selector and a second person's
   * confirmation request as lines in its thread.
   */
  async fleetUpdate(update: JobPayload<'fleet-update'>, owner?: LeaseOwner): Promise<string> {
    const { db, ledger, recipients } = this.deps;
    return ledger.exclusive(`fleet:${update.fleetIncidentId}`, async () => {
      const view = await loadFleetIncidentView(db, update.fleetIncidentId);
      if (!view) return 'gone';
      const root = fleetIncidentNotice(view);
      let line: { key: string; notice: Notice; update: boolean } | undefined;
      if (update.event === 'restore' && update.run) line = { key: `fleet-restore:${update.run.id}`, notice: fleetRestoreNotice(update.run), update: false };
      if (update.event === 'confirmation' && update.confirmationId) {
        const c = await db.selectFrom('fleet_confirmations').selectAll().where('id', '=', update.confirmationId).executeTakeFirst();
        if (c) {
          const notice = fleetConfirmationNotice({
            id: c.id,
            selectorText: selectorText(c.selector as FleetSelector),
            count: c.agent_ids.length,
            requestedBy: c.requested_by,
            requestedPlatform: c.requested_platform,
            reason: c.reason,
            expiresAt: c.expires_at,
            ...(c.decided_at ? { decided: { outcome: c.outcome === 'confirmed' ? ('confirmed' as const) : ('cancelled' as const), by: c.decided_by ?? 'unknown', reason: c.decided_reason, at: c.decided_at } } : {}),
          });
          line = { key: `fleet-confirmation:${c.id}`, notice, update: c.decided_at !== null };
        }
      }
      return this.each(async (platform, out) => {
        const p = platform.name;
        const channel = recipients.policyChannel(p, 'incidents');
        if (!channel) return 'no_channel';
        await out.attempt(async () => {
          const posted = await this.postTo(platform, `${p}:fleet:${view.id}`, channel, root);
          if (line) {
            const copy = await this.replyTo(platform, `${p}:${line.key}`, posted.ref, line.notice);
            if (!copy.posted && line.update) await platform.update(copy.ref, line.notice);
          }
          if (!posted.posted) await platform.update(posted.ref, root);
        });
      });
    }, owner);
  }

  /**
   * Approval cards: one in each approver's DM (Slack) or personal chat (Teams), one in the rule's
   * channel (or the policy's approvals channel) and one in every channel subscribed to the agent's
   * approvals; then every copy updated to the current state and, where the platform has one, each
   * approver's home view refreshed. A reminder goes into the card's thread for each approver who
   * has not decided yet; an escalation's note beside the card of each person it was escalated to.
   */
  async approvalCards(job: { requestId: string; remind?: boolean; escalated?: boolean }, owner?: LeaseOwner): Promise<string> {
    const { requestId } = job;
    return this.deps.ledger.exclusive(`approval:${requestId}`, async () => {
      const { db, approvals, recipients, policy } = this.deps;
      const view = await approvals.get(requestId);
      const row = await db.selectFrom('approval_requests').select('route').where('id', '=', requestId).executeTakeFirst();
      if (!view || !row) return 'gone';
      const agent = await db.selectFrom('agents').select('name').where('id', '=', view.agentId).executeTakeFirst();
      const card = approvalNotice(view, agent?.name ?? view.agentId);
      const route = row.route;
      // Decided people (on any platform) get no reminder.
      const decided = new Set((await db.selectFrom('approval_decisions').select('person_key').where('request_id', '=', requestId).execute()).map((d) => d.person_key));
      const nudge = job.remind ? { key: 'approval-remind', notice: approvalReminderNotice(view) } : job.escalated ? { key: 'approval-escalated', notice: approvalReminderNotice(view, { escalated: true }) } : undefined;
      return this.each(async (platform, out) => {
        const p = platform.name;
        const approvers = await recipients.approvers(p, route);
        const fresh = new Set<string>();
        if (view.status === 'pending') {
          for (const [person, ids] of approvers) {
            for (const userId of ids) {
              const dm = await platform.openDm(userId);
              if (!dm) {
                out.missed();
                continue;
              }
              await out.attempt(async () => {
                const copy = await this.postTo(platform, `${p}:approval:${requestId}:${userId}`, dm, card);
                if (copy.posted) fresh.add(`${copy.ref.channel}/${copy.ref.id}`);
                // A reminder goes to those who had the card and have not decided; an escalation's
                // note to those who get the card now (the people it was escalated to).
                const due = nudge && !decided.has(person) && (job.remind ? !copy.posted : copy.posted);
                if (nudge && due) await this.replyTo(platform, `${p}:${nudge.key}:${requestId}:${userId}`, copy.ref, nudge.notice);
              });
            }
          }
          const channel = recipients.policyChannel(p, route.channel ?? (policy.channels.approvals ? 'approvals' : null));
          if (channel) {
            await out.attempt(async () => {
              const copy = await this.postTo(platform, `${p}:approval:${requestId}:channel`, channel, card);
              if (copy.posted) fresh.add(`${copy.ref.channel}/${copy.ref.id}`);
            });
          }
          for (const sub of await recipients.subscribed(p, view.agentId, 'approvals')) {
            if (sub === channel) continue;
            await out.attempt(async () => {
              const copy = await this.postTo(platform, `${p}:approval:${requestId}:sub:${sub}`, sub, card);
              if (copy.posted) fresh.add(`${copy.ref.channel}/${copy.ref.id}`);
            });
          }
        }
        for (const { ref } of await this.deps.ledger.findByPrefix(`${p}:approval:${requestId}:`)) {
          if (!fresh.has(`${ref.channel}/${ref.id}`)) await out.attempt(() => platform.update(ref, card));
        }
        // Everyone on the route sees the change on their home view too: soon, one publish per person
        // for every change in a short window (a burst of requests is not a publish per request).
        if (platform.publishHome) {
          const requestHome = this.deps.requestHome;
          for (const userId of new Set([...approvers.values()].flat())) {
            await out.attempt(() => (requestHome ? requestHome(p, userId) : this.publishHomeOn(platform, userId)));
          }
        }
      });
    }, owner);
  }

  /** Refreshes one person's home view ("Waiting on you", "Recently decided") on a platform that has one. */
  async publishHome(platformName: PlatformName, userId: string): Promise<string> {
    const platform = this.platform(platformName);
    if (!platform?.publishHome) return 'no_platform';
    await this.publishHomeOn(platform, userId);
    return 'published';
  }

  private async publishHomeOn(platform: ChatPlatform, userId: string): Promise<void> {
    const p = platform.name;
    const emails = (await this.deps.db.selectFrom('chat_identities').select('email').where('platform', '=', p).where('user_id', '=', userId).execute()).map((r) => r.email);
    const actor = `${p}:${userId}`;
    const [waiting, decided] = await Promise.all([this.deps.approvals.waitingOn({ actor, platform: p, [p]: userId, emails }), this.deps.approvals.decidedBy(actor)]);
    await platform.publishHome!(userId, waitingNotice(waiting, decided, actor));
  }

  /**
   * Tier changes, score moves over the policy's threshold, pact violations and stale evidence: to the
   * policy's scores channel and every channel subscribed to the agent's scores.
   */
  async trustNotice(n: TrustChange): Promise<string> {
    if (!announcesTrust(n, this.deps.policy)) return 'not_announced';
    const notice = trustNotice(n);
    return this.each(async (platform, out) => {
      const p = platform.name;
      for (const { channel } of await this.deps.recipients.channels(p, n.agentId, 'scores', 'scores')) {
        await out.attempt(() => this.postTo(platform, `${p}:trust:${n.key}:${channel}`, channel, notice));
      }
    });
  }

  /**
   * A built trust packet, where it was asked for: on a platform that takes files, the summary and
   * then the PDF and the score chart uploaded together; elsewhere, the summary with a signed,
   * expiring link to the PDF.
   */
  async packetDelivery(packetId: string, owner?: LeaseOwner): Promise<string> {
    const { packets, ledger } = this.deps;
    if (!packets) return 'no_channel';
    const target = await packets.deliveryTarget(packetId);
    const platform = target ? this.platform(target.platform) : undefined;
    if (!target) return 'gone';
    if (!platform) return `${target.platform} not configured`;
    return ledger.exclusive(`packet:${packetId}`, async () => {
      const packet = await packets.content(packetId);
      if (!packet) return 'gone';
      const status = await packets.status(packetId);
      const p = platform.name;
      const out = new Deliveries();
      const { renderPdf, renderChart, links } = this.deps;
      if (platform.upload && renderPdf) {
        const notice = packetNotice(packet, { packetId, contentHash: status?.contentHash ?? null, pdf: 'attached' });
        await out.attempt(async () => {
          await this.postTo(platform, `${p}:packet:${packetId}:summary`, target.channel, notice);
          await this.once(platform, `${p}:packet:${packetId}:file`, async () => {
            const [pdf, chart] = await Promise.all([renderPdf(packet), renderChart ? renderChart(packet) : Promise.resolve(undefined)]);
            const title = `Trust packet: ${packet.agent.name} (${packet.agent.id})${packet.audience ? ` for ${packet.audience}` : ''}`;
            return platform.upload!(
              target.channel,
              [
                { data: pdf, filename: `trust-packet-${packet.agent.id}.pdf`, title },
                ...(chart ? [{ data: chart, filename: `score-${packet.agent.id}.png`, title: `Score, last 90 days: ${packet.agent.id}` }] : []),
              ],
              notice,
            );
          });
        });
      } else {
        const downloadUrl = links ? packetLink(links.publicUrl, links.secret, packetId, this.deps.clock.now()) : undefined;
        const notice = packetNotice(packet, { packetId, contentHash: status?.contentHash ?? null, ...(downloadUrl ? { downloadUrl, pdf: 'link' as const } : { pdf: 'api' as const }) });
        await out.attempt(() => this.postTo(platform, `${p}:packet:${packetId}`, target.channel, notice));
      }
      return `${p} ${out.outcome()}`;
    }, owner);
  }

  /** A restore waiting for a second person: a notice with Confirm in the incident's thread (or the incidents channel). */
  async confirmationRequest(confirmationId: string, owner?: LeaseOwner): Promise<string> {
    const { db, ledger, recipients } = this.deps;
    const row = await db.selectFrom('confirmations').selectAll().where('id', '=', confirmationId).executeTakeFirst();
    if (!row) return 'gone';
    const asked = { id: row.id, agentId: row.agent_id, requestedBy: row.requested_by, reason: String(row.payload.reason ?? ''), requestedPlatform: row.requested_platform ?? 'api', expiresAt: row.expires_at };
    if (row.decided_at) {
      // Decided (confirmed, cancelled, or cancelled because its incident ended): every copy we posted
      // shows the outcome instead of its buttons. Nothing posted yet: nothing to ask any more.
      const decided = confirmationNotice({
        ...asked,
        decided: { outcome: row.outcome === 'confirmed' ? 'confirmed' : 'cancelled', by: row.decided_by ?? 'unknown', reason: row.decided_reason, at: row.decided_at },
      });
      const update = () =>
        this.each(async (platform, out) => {
          const posted = await ledger.find(`${platform.name}:confirmation:${row.id}`);
          if (!posted) return 'gone';
          await out.attempt(() => platform.update(posted, decided));
        });
      // After the job that asks, if it is running now: it takes the same turn.
      return row.incident_id ? ledger.exclusive(`incident:${row.incident_id}`, update, owner) : update();
    }
    // The thread of the incident it was asked about (bound when asked), not whichever is open now.
    const incident = row.incident_id ? { id: row.incident_id } : await db.selectFrom('incidents').select('id').where('agent_id', '=', row.agent_id).where('status', '=', 'open').executeTakeFirst();
    const notice = confirmationNotice(asked);
    const post = () =>
      this.each(async (platform, out) => {
        const p = platform.name;
        const channel = recipients.policyChannel(p, 'incidents');
        if (!channel) return 'no_channel';
        const root = incident ? await ledger.find(`${p}:incident:${incident.id}`) : undefined;
        await out.attempt(() => (root ? this.replyTo(platform, `${p}:confirmation:${row.id}`, root, notice) : this.postTo(platform, `${p}:confirmation:${row.id}`, channel, notice)));
      });
    // Takes its turn with the incident's own notices, so the root it threads under exists.
    return incident ? ledger.exclusive(`incident:${incident.id}`, post, owner) : post();
  }

  /**
   * A break-glass restore: a loud notice in the incidents channel and the channels subscribed to the
   * agent's incidents, and a direct message to every other member of the restore roles (who would
   * have been asked to confirm).
   */
  async breakGlassNotice(n: BreakGlassNotice): Promise<string> {
    const broadcast = breakGlassNotice(n, { direct: false });
    const direct = breakGlassNotice(n, { direct: true });
    return this.each(async (platform, out) => {
      const p = platform.name;
      for (const { channel } of await this.deps.recipients.channels(p, n.agentId, 'incidents', 'incidents')) {
        await out.attempt(() => this.postTo(platform, `${p}:breakglass:${n.actionId}:${channel}`, channel, broadcast));
      }
      for (const userId of await this.deps.recipients.restorers(p, n.actor)) {
        const dm = await platform.openDm(userId);
        if (!dm) {
          out.missed();
          continue;
        }
        await out.attempt(() => this.postTo(platform, `${p}:breakglass-dm:${n.actionId}:${userId}`, dm, direct));
      }
    });
  }

  /** An agent was decommissioned: once in the incidents channel and every channel subscribed to its incidents. */
  async decommissionNotice(n: DecommissionNotice): Promise<string> {
    const notice = decommissionNotice(n);
    return this.each(async (platform, out) => {
      const p = platform.name;
      for (const { channel } of await this.deps.recipients.channels(p, n.agentId, 'incidents', 'incidents')) {
        await out.attempt(() => this.postTo(platform, `${p}:decommissioned:${n.agentId}:${channel}`, channel, notice));
      }
    });
  }

  /** A policy file that changed but does not validate: once per file content, in the incidents channel. */
  /** The audit chain is broken (the scheduled full verify): an alarm in the incidents channel, once per break. */
  async auditBrokenNotice(n: { firstBrokenSeq: string; problem: string; at: string }): Promise<string> {
    const notice = auditBrokenNotice(n);
    const key = createHash('sha256').update(`${n.firstBrokenSeq}\n${n.problem}`).digest('hex').slice(0, 32);
    return this.each(async (platform, out) => {
      const p = platform.name;
      const channel = this.deps.recipients.policyChannel(p, 'incidents');
      if (!channel) return 'no_channel';
      await out.attempt(() => this.postTo(platform, `${p}:audit-broken:${key}`, channel, notice));
    });
  }

  async policyInvalidNotice(n: PolicyInvalidNotice): Promise<string> {
    const notice = policyInvalidNotice(n);
    return this.each(async (platform, out) => {
      const p = platform.name;
      const channel = this.deps.recipients.policyChannel(p, 'incidents');
      if (!channel) return 'no_channel';
      await out.attempt(() => this.postTo(platform, `${p}:policy-invalid:${n.contentHash}`, channel, notice));
    });
  }
}
