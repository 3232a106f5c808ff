import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { AgentService, ActionResult } from '../agents/agents.service.js';
import type { ApprovalService } from '../approvals/approvals.service.js';
import type { TrustService } from '../trust/trust.service.js';
import type { PacketService } from '../packets/packets.service.js';
import { sparkline } from './sparkline.js';
import { recentActions, findOpenIncident } from '../agents/agents.repository.js';
import { loadAgentAsSeen } from '../fleet/fleet-hold.js';
import { appendAudit, listAudit, verifyAudit } from '../audit/audit.repository.js';
import { grantStatus } from '../domain/agent.js';
import { formatDuration } from '../domain/duration.js';
import { isCodedError } from '../domain/errors.js';
import type { Policy } from '../policy/policy.schema.js';
import { authorize, type ChatIdentity, type Permission } from './authorization.js';
import { parseCommand, usageText, USAGE, type ChatCommand } from './command-parser.js';
import { errorReply, type ChatReply } from './reply.js';
import type { Text } from '../notices/model.js';
import { codeList, joinText } from '../notices/spans.js';
import { waitingNotice } from '../notices/approval.notice.js';
import { ConfirmationService, CONFIRMATION_REQUEST_JOB, RESTORE_CONFIRM_MS, REVOKE_CONFIRM_MS } from '../confirmations/confirmations.service.js';
import { announceDecided, findConfirmation, incidentEnded, requesterOfRow } from '../confirmations/confirmations.repository.js';
import { requesterOf, samePerson } from '../confirmations/same-person.js';
import { listAgents } from '../agents/agent-listing.js';
import { listIncidents } from '../incidents/incidents.repository.js';
import { decodeCursor, encodeCursor } from '../core/cursor.js';
import type { FleetService } from '../fleet/fleet.service.js';
import { FleetCommands } from './fleet-commands.js';

export { CONFIRMATION_REQUEST_JOB, RESTORE_CONFIRM_MS, REVOKE_CONFIRM_MS };

export interface ChatCommandDeps {
  db: Db;
  clock: Clock;
  agents: AgentService;
  policy: Policy;
  approvals?: ApprovalService;
  trust?: TrustService;
  packets?: PacketService;
  /** Mints web console sign-in links (`console`); absent: the console is not served. */
  consoleLinks?: { issueLink(who: ChatIdentity): Promise<{ ok: true; url: string; expiresAt: Date } | { ok: false; message: string }> };
  /** Fleet actions by selector (`contain scope:payments:*`). */
  fleet?: FleetService;
}

/**
 * `slack:U0ONCALL1`: how a chat user appears as an actor in actions and the audit log; through the
 * web console, `console:slack:U0ONCALL1` (the same person, seen acting from the console).
 */
export const actorOf = (who: ChatIdentity) => (who.via === 'console' ? `console:${who.platform}:${who.userId}` : `${who.platform}:${who.userId}`);

const PERMISSION_FOR: Record<ChatCommand['kind'], Permission | null> = {
  help: null,
  // Lists only what waits on the caller: nothing to protect.
  approvals: null,
  // The console shows security state: the same people who may read it in chat.
  console: 'read',
  status: 'read',
  audit: 'read',
  'audit-verify': 'read',
  // Listings show security state like status does: anyone holding a role in the policy.
  agents: 'read',
  incidents: 'read',
  score: 'read',
  // Checked in the command: the agent's owner may also request its packet.
  packet: null,
  'packet-verify': 'read',
  // Subscribing sends security notices (amounts, recipients) into a channel: a permission of its own.
  subscribe: 'subscribe',
  unsubscribe: 'subscribe',
  contain: 'contain',
  narrow: 'narrow',
  revoke: 'revoke',
  restore: 'restore',
  // Checked in the fleet command: a bulk role AND the action's own role.
  fleet: null,
};

function actionLines(r: ActionResult): Text[] {
  const lines: Text[] = [];
  lines.push(['Status: ', { strong: r.statusBefore }, ' → ', { strong: r.statusAfter }]);
  if (r.action.scopes.length) lines.push(['Scopes: ', ...codeList(r.action.scopes)]);
  if (r.grantsSuspended.length || r.action.kind === 'contain' || r.action.kind === 'narrow') lines.push(['Grants suspended: ', ...codeList(r.grantsSuspended.map((g) => g.scope))]);
  if (r.grantsRevoked.length) lines.push(['Grants revoked: ', ...codeList(r.grantsRevoked.map((g) => g.scope))]);
  if (r.grantsRestored.length || r.action.kind === 'restore') lines.push(['Grants restored: ', ...codeList(r.grantsRestored.map((g) => g.scope))]);
  if (r.action.expiresAt) lines.push(['Lifts itself at ', { time: r.action.expiresAt }]);
  lines.push([`Pending approvals cancelled: ${r.pendingApprovalsCancelled.length}`]);
  lines.push(['Reason: ', r.action.reason]);
  return lines;
}

/**
 * The chat commands as use cases, shared by every platform: parse, authorize against the policy,
 * act through the same AgentService the REST API uses, and answer with the neutral reply model.
 */
export class ChatCommands {
  private readonly confirmations: ConfirmationService;
  private readonly fleet: FleetCommands | undefined;

  constructor(private readonly deps: ChatCommandDeps) {
    this.confirmations = new ConfirmationService({ db: deps.db, clock: deps.clock, policy: deps.policy, agents: deps.agents });
    this.fleet = deps.fleet ? new FleetCommands({ db: deps.db, clock: deps.clock, policy: deps.policy, fleet: deps.fleet, withResolvedEmails: (who) => this.confirmations.withResolvedEmails(who) }) : undefined;
  }

  async handle(who: ChatIdentity, text: string, options: { idempotencyKey?: string; channel?: string } = {}): Promise<ChatReply> {
    const parsed = parseCommand(text);
    if (!parsed.ok) return errorReply(parsed.error, parsed.usage);
    return this.execute(who, parsed.command, options);
  }

  /**
   * A parsed command: authorized against the policy, then run. The web console calls this with the
   * command its form describes (never parsed from text a person typed into a field).
   */
  async execute(who: ChatIdentity, command: ChatCommand, options: { idempotencyKey?: string; channel?: string } = {}): Promise<ChatReply> {
    if (command.kind === 'help') return { tone: 'info', title: 'Armalo commands', lines: [], usage: usageText() };
    // Break-glass is its own permission: holding a restore role is not enough to restore alone.
    const permission = command.kind === 'restore' && command.breakGlass ? 'breakGlass' : PERMISSION_FOR[command.kind];
    if (permission) {
      const auth = authorize(this.deps.policy, who, permission);
      if (!auth.ok) return errorReply(`Not allowed: ${auth.message}. Nothing was changed.`, `/armalo ${USAGE[command.kind.replace('-verify', '')] ?? ''}`);
    }
    try {
      return await this.run(who, command, options.idempotencyKey, options.channel);
    } catch (err) {
      if (isCodedError(err)) return errorReply(`${err.message}. Nothing was changed.`, `/armalo ${USAGE[command.kind.replace('-verify', '')] ?? ''}`);
      throw err;
    }
  }

  private async run(who: ChatIdentity, command: ChatCommand, idempotencyKey: string | undefined, channel: string | undefined): Promise<ChatReply> {
    const { agents, db } = this.deps;
    const actor = actorOf(who);
    switch (command.kind) {
      case 'help':
        return { tone: 'info', title: 'Armalo commands', lines: [], usage: usageText() };
      case 'approvals':
        return this.waiting(who);
      case 'console':
        return this.consoleLink(who);
      case 'score':
        return this.score(command.agentId);
      case 'packet':
        return this.packet(who, command, channel);
      case 'packet-verify': {
        if (!this.deps.packets) return errorReply('Trust packets are not enabled on this server.');
        const v = await this.deps.packets.verify(command.packetId);
        return v.intact
          ? { tone: 'success', title: `Trust packet ${command.packetId} is intact`, lines: [[`Hash ${v.storedHash?.slice(0, 16)}…; built from audit entry ${v.builtFromAuditHead.seq}`], [`Evidence was ${v.evidenceAtBuild} when built; it is ${v.evidenceNow} now`]] }
          : { tone: 'error', title: `Trust packet ${command.packetId} has been TAMPERED with (or is not built)`, lines: [[`Stored hash ${v.storedHash ?? 'none'}; content hashes to ${v.computedHash ?? 'nothing'}`]] };
      }
      case 'subscribe':
      case 'unsubscribe':
        return this.subscription(who, command, channel);
      case 'agents':
        return this.agentPage(command);
      case 'incidents':
        return this.incidentPage(command);
      case 'status':
        return this.status(command.agentId);
      case 'audit':
        return this.audit(command.agentId);
      case 'audit-verify': {
        const v = await verifyAudit(db);
        return v.ok
          ? { tone: 'success', title: 'Audit log verified', lines: [[`${v.entries} entries, chain intact. Head: entry ${v.head.seq}, `, { code: `${v.head.hash.slice(0, 16)}…` }]] }
          : { tone: 'error', title: 'Audit log is BROKEN', lines: [[`First broken entry: ${v.firstBroken?.seq}: ${v.firstBroken?.problem}`], [`${v.entries} entries checked.`]] };
      }
      case 'fleet':
        if (!this.fleet) return errorReply('Fleet actions are not enabled on this server.');
        return this.fleet.handle(who, command, idempotencyKey);
      case 'contain':
      case 'narrow': {
        const cmd = {
          kind: command.kind,
          scopes: command.kind === 'narrow' ? command.scopes : undefined,
          reason: command.reason,
          actor,
          ttlMs: command.ttlMs,
        };
        const r = await agents.act(command.agentId, cmd, { dryRun: command.dryRun, idempotencyKey });
        if (r.dryRun) return { tone: 'info', title: `Dry run: ${command.kind} ${command.agentId} would change this (nothing was changed)`, lines: actionLines(r) };
        const ttl = command.ttlMs ? ` for ${formatDuration(command.ttlMs)}` : '';
        return {
          tone: 'success',
          title: `${command.kind === 'contain' ? 'Contained' : 'Narrowed'} ${command.agentId}${ttl}${r.replayed ? ' (already applied)' : ''}`,
          lines: [...actionLines(r), ['Undo with ', { command: `restore ${command.agentId} <reason>` }]],
        };
      }
      case 'revoke': {
        const preview = await agents.act(command.agentId, { kind: 'revoke', reason: command.reason, actor }, { dryRun: true });
        if (command.dryRun) return { tone: 'info', title: `Dry run: revoke ${command.agentId} would change this (nothing was changed)`, lines: actionLines(preview) };
        const { id, expiresAt } = await this.createConfirmation('revoke', command.agentId, who, { reason: command.reason }, REVOKE_CONFIRM_MS);
        return {
          tone: 'warning',
          title: `Revoke ${command.agentId}? This is the kill switch: every grant stops, kept-in-containment ones too.`,
          lines: [...actionLines(preview), ['Only you can confirm, until ', { time: expiresAt }, '.']],
          confirm: { id, label: `Revoke ${command.agentId}`, danger: true, expiresAt },
        };
      }
      case 'restore': {
        if (command.breakGlass) {
          // The emergency path: applies at once, alone; the notice job tells everyone who would have confirmed.
          const r = await agents.act(command.agentId, { kind: 'restore', reason: command.reason, actor, breakGlass: true }, { idempotencyKey });
          return {
            tone: 'warning',
            title: `BREAK-GLASS: restored ${command.agentId}${r.replayed ? ' (already applied)' : ''}`,
            lines: [...actionLines(r), ['No second person confirmed this. It is marked break-glass in the audit log and the incident, announced in the incidents channel, and every other member of the restore roles is told directly.']],
          };
        }
        const preview = await agents.act(command.agentId, { kind: 'restore', reason: command.reason, actor }, { dryRun: true });
        if (command.dryRun) return { tone: 'info', title: `Dry run: restore ${command.agentId} would change this (nothing was changed)`, lines: actionLines(preview) };
        const rule = this.deps.policy.permissions.restore;
        const stale = await this.confirmations.missingFreshEvaluation(command.agentId);
        if (stale) return errorReply(stale, `/armalo ${USAGE.restore}`);
        const notes: Text[] = rule.freshEvaluation ? [['A fresh evaluation since the incident began was found, as the policy requires.']] : [];
        if (rule.secondPerson) {
          // The confirm button goes into the incidents channel: without one, nobody would see it.
          if (!this.deps.policy.channels.incidents) {
            return errorReply('Restore needs a second person, but the policy names no incidents channel (channels.incidents) to ask in. Nothing was changed.');
          }
          await this.createConfirmation('restore', command.agentId, who, { reason: command.reason }, RESTORE_CONFIRM_MS);
          return {
            tone: 'info',
            title: `Restore of ${command.agentId} requested: a second person must confirm`,
            lines: [...actionLines(preview), [`Another holder of ${rule.roles.join(' or ')} can confirm in the incident thread within ${formatDuration(RESTORE_CONFIRM_MS)}.`], ...notes],
          };
        }
        const r = await agents.act(command.agentId, { kind: 'restore', reason: command.reason, actor }, { idempotencyKey, freshEvaluation: rule.freshEvaluation });
        return { tone: 'success', title: `Restored ${command.agentId}${r.replayed ? ' (already applied)' : ''}`, lines: [...actionLines(r), ...notes] };
      }
    }
  }

  /** A one-time sign-in link to the web console, for the asker only. */
  private async consoleLink(who: ChatIdentity): Promise<ChatReply> {
    if (!this.deps.consoleLinks) return errorReply('The web console is not enabled on this server.');
    const link = await this.deps.consoleLinks.issueLink(who);
    if (!link.ok) return { ...errorReply(`${link.message}.`), private: true };
    return {
      tone: 'info',
      title: 'Your sign-in link to the Armalo console',
      lines: [
        [{ link: link.url, label: 'Open the console' }],
        ['The link works once and until ', { time: link.expiresAt.toISOString() }, ' (5 minutes); it opens a session of 8 hours as you, with your roles in the policy. Do not share it.'],
      ],
      private: true,
    };
  }

  /** Records a two-step action; who asked is kept as a person (ids, resolved emails, policy member). */
  private async createConfirmation(kind: 'revoke' | 'restore', agentId: string, who: ChatIdentity, payload: Record<string, unknown>, ttlMs: number) {
    const person = await this.confirmations.withResolvedEmails(who);
    return this.confirmations.request({ kind, agentId, actor: actorOf(who), requester: requesterOf(this.deps.policy, person), payload, ttlMs });
  }

  /** A click on a confirmation button. Double clicks and retries apply once. */
  async confirm(who: ChatIdentity, confirmationId: string): Promise<ChatReply> {
    const { db, clock, agents, policy } = this.deps;
    if (!/^[0-9a-f-]{36}$/.test(confirmationId)) return errorReply('That confirmation is not valid.');
    const row = await findConfirmation(db, confirmationId);
    if (!row) return (await this.fleet?.confirm(who, confirmationId)) ?? errorReply('That confirmation does not exist.');
    const actor = actorOf(who);
    const reason = String(row.payload.reason ?? 'no reason given');
    if (row.kind === 'revoke') {
      if (row.requested_by !== actor) return errorReply(`Only the person who asked (${row.requested_by}) can confirm this revoke. Nothing was changed.`);
    } else if (samePerson(policy, requesterOfRow(row), await this.confirmations.withResolvedEmails(who))) {
      // The same person on another platform (or under another id of the same policy member) is still the requester.
      return errorReply(`A second person must confirm this restore; you asked for it${row.requested_by === actor ? '' : ` (as ${row.requested_by})`}. Nothing was changed.`);
    }
    const auth = authorize(policy, who, row.kind);
    if (!auth.ok) return errorReply(`Not allowed: ${auth.message}. Nothing was changed.`);
    if (row.decided_at && row.outcome === 'confirmed') {
      const before = await agents.act(row.agent_id, { kind: row.kind, reason, actor }, { idempotencyKey: `confirmation:${row.id}` }).catch(() => undefined);
      return { tone: 'info', title: `Already confirmed by ${row.decided_by}`, lines: before ? actionLines(before) : [] };
    }
    const ended = incidentEnded(row, (await findOpenIncident(db, row.agent_id))?.id ?? null);
    if (ended) return errorReply(`${ended}. Nothing was changed.`);
    if (row.decided_at) return errorReply(`This confirmation was ${row.outcome} by ${row.decided_by}${row.decided_reason ? ` (${row.decided_reason})` : ''}. Nothing was changed.`);
    if (row.expires_at.getTime() <= clock.now().getTime()) return errorReply(`This confirmation expired at ${row.expires_at.toISOString()}. Ask again. Nothing was changed.`);

    if (row.kind === 'restore') {
      const stale = await this.confirmations.missingFreshEvaluation(row.agent_id);
      if (stale) return errorReply(stale);
    }
    const fullReason = row.kind === 'restore' ? `${reason} (requested by ${row.requested_by}, confirmed by ${actor})` : reason;
    let result: ActionResult;
    try {
      // The confirmation id is the idempotency key: two clicks, one action. The confirmation is
      // claimed in the action's transaction, which checks its incident and state once more.
      result = await agents.act(row.agent_id, { kind: row.kind, reason: fullReason, actor }, { idempotencyKey: `confirmation:${row.id}`, confirmation: { id: row.id } });
    } catch (err) {
      if (isCodedError(err)) return errorReply(`${err.message}. Nothing was changed.`);
      throw err;
    }
    const verb = row.kind === 'revoke' ? 'Revoked' : 'Restored';
    return { tone: 'success', title: `${verb} ${row.agent_id}${result.replayed ? ' (already applied)' : ''}`, lines: actionLines(result) };
  }

  /**
   * Cancel: the person who asked (on any platform). A restore asked for over the API has no person
   * behind it, so any holder of a restore role may cancel it.
   */
  async cancel(who: ChatIdentity, confirmationId: string): Promise<ChatReply> {
    const { db, clock, policy } = this.deps;
    if (!/^[0-9a-f-]{36}$/.test(confirmationId)) return errorReply('That confirmation is not valid.');
    const row = await findConfirmation(db, confirmationId);
    if (!row) {
      const fleet = await this.fleet?.cancel(who, confirmationId);
      if (fleet) return fleet;
    }
    const actor = actorOf(who);
    const requester = row ? requesterOfRow(row) : undefined;
    const allowed =
      row !== undefined &&
      requester !== undefined &&
      (row.kind === 'revoke'
        ? row.requested_by === actor
        : requester.platform === 'api'
          ? authorize(policy, who, 'restore').ok
          : samePerson(policy, requester, await this.confirmations.withResolvedEmails(who)));
    const updated = allowed
      ? await db.transaction().execute(async (trx) => {
          const now = clock.now();
          const result = await trx
            .updateTable('confirmations')
            .set({ decided_at: now, decided_by: actor, outcome: 'cancelled' })
            .where('id', '=', confirmationId)
            .where('decided_at', 'is', null)
            .executeTakeFirst();
          // The request posted in the incident thread loses its buttons (a revoke's lives only in the asker's reply).
          if (Number(result.numUpdatedRows) === 1 && row.kind === 'restore') await announceDecided(trx, confirmationId, now);
          return result;
        })
      : undefined;
    return updated && Number(updated.numUpdatedRows) === 1
      ? { tone: 'info', title: 'Cancelled. Nothing was changed.', lines: [] }
      : errorReply('Only the person who asked can cancel, and only while it is pending.');
  }

  private async packet(who: ChatIdentity, command: Extract<ChatCommand, { kind: 'packet' }>, channel: string | undefined): Promise<ChatReply> {
    const { packets, db, policy } = this.deps;
    if (!packets) return errorReply('Trust packets are not enabled on this server.');
    const agent = await db.selectFrom('agents').select(['id', 'owner']).where('id', '=', command.agentId).executeTakeFirst();
    if (!agent) return errorReply(`Unknown agent ${command.agentId}.`, `/armalo ${USAGE.packet}`);
    const auth = authorize(policy, who, 'packet');
    const owner = agent.owner.toLowerCase();
    const isOwner = owner === who.userId.toLowerCase() || owner === actorOf(who).toLowerCase() || who.emails.some((e) => e.toLowerCase() === owner);
    if (!auth.ok && !isOwner) return errorReply(`Not allowed: ${auth.message}, or be the agent's owner. Nothing was built.`, `/armalo ${USAGE.packet}`);
    const status = await packets.request(
      { agentId: agent.id, audience: command.audience, workflow: command.workflow, ...(channel ? { deliverTo: { platform: who.platform, channel } } : {}) },
      actorOf(who),
    );
    return {
      tone: 'info',
      title: `Building the trust packet for ${agent.id}${command.audience ? ` (for ${command.audience})` : ''}`,
      lines: [[`It will be posted in this channel in a few seconds. Packet ${status.id}; check it later with `, { command: `packet verify ${status.id}` }, '.']],
    };
  }

  private async score(agentId: string): Promise<ChatReply> {
    if (!this.deps.trust) return errorReply('Trust data is not enabled on this server.');
    const v = await this.deps.trust.scoreOf(agentId);
    if (v.score === null) {
      return { tone: 'info', title: `${agentId} has no score yet`, lines: [['No evaluations or score events have been received for this agent, so there is nothing to score. Send evaluations to ', { code: `POST /v1/agents/${agentId}/evaluations` }, '.']] };
    }
    const violations = await this.deps.db.selectFrom('audit_log').select(['at', 'payload']).where('subject', '=', agentId).where('action', '=', 'trust.pact_violated').orderBy('seq', 'desc').limit(3).execute();
    return {
      tone: v.tier === 'bronze' ? 'warning' : 'info',
      title: `${agentId}: ${v.score} (${v.tier})`,
      lines: [
        [`Trend, 30 days: ${sparkline(v.trend.map((t) => t.score))} (${v.trend.length} change${v.trend.length === 1 ? '' : 's'})`],
        [`Evidence: ${v.freshness}${v.newestEvidence ? `, newest ${v.newestEvidence}` : ''} · source: ${v.source}`],
        [`Pacts: ${v.pacts.length ? v.pacts.map((p) => `${p.id} (${p.severity}) ${p.freshness}`).join('; ') : 'none'}`],
        [`Last violations: ${violations.length ? violations.map((r) => `${(r.payload as { pactId?: string }).pactId} at ${r.at.toISOString()}`).join('; ') : 'none'}`],
      ],
    };
  }

  private async subscription(who: ChatIdentity, command: Extract<ChatCommand, { kind: 'subscribe' | 'unsubscribe' }>, channel: string | undefined): Promise<ChatReply> {
    if (!channel) return errorReply('Run this in the channel that should (or should no longer) get the notices.');
    const { db, clock } = this.deps;
    const key = { platform: who.platform, channel, agent_pattern: command.agentPattern };
    const existing = await db.selectFrom('subscriptions').select('kinds').where('platform', '=', key.platform).where('channel', '=', channel).where('agent_pattern', '=', command.agentPattern).executeTakeFirst();
    const current = new Set(existing?.kinds ?? []);
    for (const k of command.kinds) {
      if (command.kind === 'subscribe') current.add(k);
      else current.delete(k);
    }
    const kinds = [...current].sort();
    await db.transaction().execute(async (trx) => {
      if (kinds.length === 0) {
        await trx.deleteFrom('subscriptions').where('platform', '=', key.platform).where('channel', '=', channel).where('agent_pattern', '=', command.agentPattern).execute();
      } else {
        await trx
          .insertInto('subscriptions')
          .values({ ...key, kinds: JSON.stringify(kinds), created_by: actorOf(who), created_at: clock.now() })
          .onConflict((oc) => oc.columns(['platform', 'channel', 'agent_pattern']).doUpdateSet({ kinds: JSON.stringify(kinds) }))
          .execute();
      }
      await appendAudit(trx, { actor: actorOf(who), action: `chat.${command.kind}`, subject: command.agentPattern, payload: { channel, kinds: command.kinds, now: kinds }, at: clock.now() });
    });
    const target = command.agentPattern === '*' ? 'every agent' : command.agentPattern;
    return {
      tone: 'success',
      title: kinds.length ? `This channel gets ${kinds.join(', ')} notices for ${target}` : `This channel no longer gets notices for ${target}`,
      lines: [],
    };
  }

  /** What waits on the caller, with Approve and Deny per request, and what they decided lately (Slack's App Home). */
  private async waiting(who: ChatIdentity): Promise<ChatReply> {
    if (!this.deps.approvals) return errorReply('Approvals are not enabled on this server.');
    const actor = actorOf(who);
    const [views, decided] = await Promise.all([
      this.deps.approvals.waitingOn({
        actor,
        platform: who.platform,
        ...(who.platform === 'slack' ? { slack: who.userId } : { teams: who.userId }),
        emails: who.emails,
      }),
      this.deps.approvals.decidedBy(actor),
    ]);
    const notice = waitingNotice(views, decided, actor);
    return { tone: 'info', title: notice.title, lines: [], notice };
  }

  private async status(agentId: string): Promise<ChatReply> {
    const { db, clock } = this.deps;
    const agent = await loadAgentAsSeen(db, agentId);
    if (!agent) return errorReply(`Unknown agent ${agentId}.`, `/armalo ${USAGE.status}`);
    const now = clock.now();
    const incident = await findOpenIncident(db, agentId);
    const recent = await recentActions(db, agentId, 5);
    const grants = agent.grants.map((g) => {
      const s = grantStatus(agent, g, now);
      return [{ code: g.scope }, ` ${s.state}${g.keepInContainment ? ' (kept in containment)' : ''}${g.constraints.maxAmount !== undefined ? `, max ${g.constraints.maxAmount}` : ''}`] as Text;
    });
    return {
      tone: agent.status === 'active' ? 'info' : 'warning',
      title: `${agent.name} (${agent.id}) is ${agent.status}`,
      lines: [
        [`Owner: ${agent.owner} · risk tier: ${agent.riskTier}`],
        ['Grants: ', ...(grants.length ? joinText(grants, '; ') : ['none'])],
        [incident ? `Open incident: ${incident.id}` : 'No open incident'],
        [`Last actions: ${recent.length ? recent.map((a) => `${a.kind} by ${a.actor} at ${a.created_at.toISOString()}${a.lifted_at ? ' (lifted)' : ''}: ${a.reason}`).join('; ') : 'none'}`],
      ],
    };
  }

  private async audit(agentId: string): Promise<ChatReply> {
    const rows = await listAudit(this.deps.db, { subject: agentId, limit: 10 });
    if (rows.length === 0) {
      const exists = await sql<{ n: number }>`select 1 as n from agents where id = ${agentId}`.execute(this.deps.db);
      if (exists.rows.length === 0) return errorReply(`Unknown agent ${agentId}.`, `/armalo ${USAGE.audit}`);
    }
    return {
      tone: 'info',
      title: `Audit log for ${agentId} (latest ${rows.length})`,
      lines: rows.map((r) => [`#${r.seq} ${r.at.toISOString()} ${r.actor}: `, { code: r.action }]),
    };
  }

  /**
   * The next page behind a "more" button. The button's value is command text; only a listing is
   * accepted, so a forged value cannot run any other command through a click.
   */
  async more(who: ChatIdentity, text: string): Promise<ChatReply> {
    const command = text.slice(0, 1000);
    const parsed = parseCommand(command);
    if (!parsed.ok || (parsed.command.kind !== 'agents' && parsed.command.kind !== 'incidents')) return errorReply('That button is not valid.');
    return this.handle(who, command);
  }

  /** A page of agents, privately: id order, the same listing as GET /v1/agents. */
  private async agentPage(command: Extract<ChatCommand, { kind: 'agents' }>): Promise<ChatReply> {
    const after = command.after ? decodeCursor('agents', command.after) : undefined;
    const { agents, nextAfterId } = await listAgents(this.deps.db, { status: command.status }, { limit: CHAT_PAGE_SIZE, afterId: after?.ok ? after.position.id : undefined });
    const what = command.status ? `${command.status} agents` : 'agents';
    const lines = agents.map((a): Text => [{ code: a.id }, ` ${a.name.slice(0, 60)} · `, { strong: a.status }, ` · risk ${a.riskTier} · owner ${a.owner.slice(0, 60)}${a.trustTier ? ` · ${a.trustTier}` : ''}`]);
    if (agents.length === 0) return { tone: 'info', title: command.after ? `No more ${what}` : `No ${what}`, lines: [] };
    const next = nextAfterId === null ? undefined : `agents ${command.status ?? 'all'} --after ${encodeCursor('agents', { id: nextAfterId })}`;
    return withNextPage({ tone: 'info', title: `${command.after ? 'More ' : ''}${what[0]!.toUpperCase()}${what.slice(1)} (${agents.length}${next ? ', more follow' : ''})`, lines }, next);
  }

  /** A page of open incidents, newest first, privately. */
  private async incidentPage(command: Extract<ChatCommand, { kind: 'incidents' }>): Promise<ChatReply> {
    const after = command.after ? decodeCursor('incidents', command.after) : undefined;
    const position = after?.ok && after.position.at !== undefined ? { at: after.position.at, id: after.position.id } : undefined;
    const { items, nextAfter } = await listIncidents(this.deps.db, { status: 'open' }, { limit: CHAT_PAGE_SIZE, after: position });
    if (items.length === 0) return { tone: 'info', title: command.after ? 'No more open incidents' : 'No open incidents', lines: [] };
    const lines = items.map(
      (i): Text => [{ code: i.agentId }, ' is ', { strong: i.agentStatus }, ` · ${i.openedWith} by ${i.openedBy} at ${i.openedAt}: ${i.reason.slice(0, 80)} · ${i.steps} step${i.steps === 1 ? '' : 's'} · incident ${i.id}`],
    );
    const next = nextAfter ? `incidents --after ${encodeCursor('incidents', nextAfter)}` : undefined;
    return withNextPage({ tone: 'warning', title: `${command.after ? 'More open' : 'Open'} incidents (${items.length}${next ? ', more follow' : ''})`, lines }, next);
  }
}

/** Items per chat listing page: a Slack section holds 3000 characters. */
export const CHAT_PAGE_SIZE = 15;

/** Adds the next page: a "more" button (Slack) and the words to type for it (every platform). */
function withNextPage(reply: ChatReply, next: string | undefined): ChatReply {
  if (!next) return reply;
  return { ...reply, lines: [...reply.lines, ['Next page: ', { code: next }]], more: { label: 'More', command: next } };
}
