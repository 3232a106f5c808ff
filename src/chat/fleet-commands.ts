import type { Db } from '../db/database.js';
import { answerOnce, findAnswer, type StoredAnswer } from '../db/idempotent-answers.js';
import type { Clock } from '../core/clock.js';
import { formatDuration } from '../domain/duration.js';
import { isCodedError } from '../domain/errors.js';
import { selectorText } from '../domain/fleet-selector.js';
import type { FleetSelector } from '../domain/fleet-selector.js';
import type { Policy } from '../policy/policy.schema.js';
import type { Text } from '../notices/model.js';
import { codeList } from '../notices/spans.js';
import { requesterOf, samePerson, type Requester } from '../confirmations/same-person.js';
import { findFleetConfirmation, type FleetConfirmationRow } from '../fleet/fleet.repository.js';
import {
  FLEET_APPLY_CONFIRM_MS,
  type FleetAwaiting,
  type FleetCommand,
  type FleetPreview,
  type FleetResult,
  type FleetService,
  type LeftAlone,
} from '../fleet/fleet.service.js';
import { authorize, type ChatIdentity } from './authorization.js';
import { USAGE, type ChatCommand } from './command-parser.js';
import { errorReply, type ChatReply } from './reply.js';

type FleetChatCommand = Extract<ChatCommand, { kind: 'fleet' }>;

const VERB = { contain: 'Contained', narrow: 'Narrowed', restore: 'Restored' } as const;
const agents = (n: number) => `${n} agent${n === 1 ? '' : 's'}`;
/** Ids a chat answer lists before "and N more". */
const SHOWN = 10;

function idsLine(label: string, ids: readonly string[], total: number): Text {
  const shown = ids.slice(0, SHOWN);
  return [label, ...codeList(shown), ...(total > shown.length ? [` and ${total - shown.length} more`] : [])];
}

function leftLines(label: string, left: readonly LeftAlone[] | undefined, total: number | undefined): Text[] {
  if (!left || !total) return [];
  const reasons = new Map<string, string[]>();
  for (const l of left) reasons.set(l.reason, [...(reasons.get(l.reason) ?? []), l.agentId]);
  const lines: Text[] = [[`${label}: ${total}`]];
  for (const [reason, ids] of [...reasons].slice(0, 5)) lines.push([`• ${reason.slice(0, 200)}: `, ...codeList(ids.slice(0, SHOWN)), ...(ids.length > SHOWN ? [` and ${ids.length - SHOWN} more`] : [])]);
  return lines;
}

function previewLines(p: FleetPreview): Text[] {
  return [
    ['Selector: ', { code: selectorText(p.selector) }, ` · matched ${p.matched}`],
    idsLine(`Would ${p.action}: ${p.count} · `, p.sample, p.count),
    ...leftLines('Left alone', p.unchanged, p.unchangedCount),
    ...leftLines('Stay held', p.stillHeld, p.stillHeldCount),
  ];
}

function resultLines(r: FleetResult): Text[] {
  return [
    ['Selector: ', { code: selectorText(r.selector) }, ` · matched ${r.matched}`],
    idsLine(`${VERB[r.action]}: ${r.count} · `, r.agents, r.count),
    ...leftLines('Left alone', r.unchanged, r.unchangedCount),
    ...leftLines('Stay held', r.stillHeld, r.stillHeldCount),
    ...(r.incidentId ? [[`Fleet incident ${r.incidentId}`] as Text] : []),
  ];
}

function requesterOfRow(row: FleetConfirmationRow): Requester {
  return { platform: row.requested_platform, userId: row.requested_user_id, emails: row.requested_emails, personKey: row.requested_person };
}

/**
 * The fleet commands in chat (`/armalo contain scope:payments:*`, and the same words in Teams):
 * who may (a bulk role AND the action's own role), dry runs, the confirmation above
 * `permissions.bulk.confirmAbove`, and the second person of a restore.
 */
export class FleetCommands {
  constructor(private readonly deps: { db: Db; clock: Clock; policy: Policy; fleet: FleetService; withResolvedEmails: (who: ChatIdentity) => Promise<ChatIdentity> }) {}

  async handle(who: ChatIdentity, command: FleetChatCommand, idempotencyKey: string | undefined): Promise<ChatReply> {
    const usage = `/armalo ${USAGE[command.action]}`;
    const { policy, fleet } = this.deps;
    // A fleet action multiplies one command by thousands of agents: it takes both roles.
    for (const permission of ['bulk', command.action] as const) {
      const auth = authorize(policy, who, permission);
      if (!auth.ok) return errorReply(`Not allowed: ${auth.message}. Nothing was changed.`, usage);
    }
    const actor = `${who.platform}:${who.userId}`;
    const cmd: FleetCommand = { action: command.action, selector: command.selector, scopes: command.scopes, reason: command.reason, actor, ttlMs: command.ttlMs };
    const what = `${command.action} by selector ${selectorText(command.selector)}`;
    // A restore answers a redelivered command (the same Slack trigger or Teams activity) with what
    // the first delivery did, before looking at the fleet again: by then the set has changed.
    const restoreKey = command.action === 'restore' && !command.dryRun && idempotencyKey !== undefined ? `chat-fleet-restore:${idempotencyKey}` : undefined;
    try {
      if (restoreKey !== undefined) {
        const before = await findAnswer<FleetResult | FleetAwaiting>(this.deps.db, restoreKey);
        if (before) return this.restoreReply(command, { ...before, body: { ...before.body, replayed: true } });
      }
      const preview = await fleet.preview(cmd);
      if (command.dryRun) return { tone: 'info', title: `Dry run: ${what} would change ${agents(preview.count)} (nothing was changed)`, lines: previewLines(preview) };
      if (command.action === 'restore' && preview.count === 0 && preview.matched === 0) {
        // Nothing of that fleet incident is in force any more (its ttl ran out, or its agents were restored one by one): it ends.
        const closed = await answerOnce<FleetResult | FleetAwaiting>(this.deps.db, restoreKey, async () => ({ status: 201, body: await fleet.restore(cmd, { answerKey: restoreKey }) }));
        return this.restoreReply(command, closed);
      }
      if (preview.count === 0) return { tone: 'info', title: `Nothing to ${command.action}: no agent selected by ${selectorText(command.selector)} would change. Nothing was changed.`, lines: previewLines(preview) };
      const person = () => this.deps.withResolvedEmails(who).then((p) => requesterOf(policy, p));
      if (command.action === 'restore' && policy.permissions.restore.secondPerson) {
        if (!policy.channels.incidents) return errorReply('Restore needs a second person, but the policy names no incidents channel (channels.incidents) to ask in. Nothing was changed.');
        const requester = await person();
        const asked = await answerOnce<FleetResult | FleetAwaiting>(this.deps.db, restoreKey, () => fleet.askRestoreConfirmation(cmd, requester, preview, restoreKey));
        return this.restoreReply(command, asked, preview);
      }
      const limit = policy.permissions.bulk.confirmAbove;
      if (preview.count > limit) {
        const asked = await fleet.requestConfirmation({ kind: 'apply', cmd, requester: await person(), agentIds: preview.ids, incidentId: preview.incidentId ?? null, ttlMs: FLEET_APPLY_CONFIRM_MS });
        const label = `${command.action[0]!.toUpperCase()}${command.action.slice(1)} ${agents(preview.count)}`;
        return {
          tone: 'warning',
          title: `${label} selected by ${selectorText(command.selector)}? That is more than the policy's ${limit} (permissions.bulk.confirmAbove).`,
          lines: [
            ...previewLines(preview),
            ['Only you can confirm, until ', { time: asked.expiresAt }, `. It acts on exactly these ${preview.count}; if the selection changes before you click, it is refused and nothing changes.`],
          ],
          confirm: { id: asked.id, label, danger: command.action !== 'restore', expiresAt: asked.expiresAt },
        };
      }
      if (command.action === 'restore') {
        const restored = await answerOnce<FleetResult | FleetAwaiting>(this.deps.db, restoreKey, async () => ({ status: 201, body: await fleet.restore(cmd, { answerKey: restoreKey }) }));
        return this.restoreReply(command, restored);
      }
      const result = await fleet.apply(cmd, { idempotencyKey });
      return this.resultReply(result, command.ttlMs);
    } catch (err) {
      if (isCodedError(err)) return errorReply(`${err.message.replace(/\. Nothing was changed$/, '')}. Nothing was changed.`, usage);
      throw err;
    }
  }

  /**
   * The answer to a restore by selector: done (201, a FleetResult), or waiting for a second person
   * (202); the same answer again, marked, for a redelivered command.
   */
  private restoreReply(command: FleetChatCommand, answer: StoredAnswer<FleetResult | FleetAwaiting>, preview?: FleetPreview): ChatReply {
    const replayed = (answer.body as { replayed?: boolean }).replayed === true;
    const body = answer.body;
    if ('status' in body && body.status === 'awaiting_confirmation') {
      const { policy } = this.deps;
      return {
        tone: 'info',
        title: `Restore of ${agents(body.count)} by selector ${selectorText(command.selector)} ${replayed ? 'was already requested' : 'requested'}: a second person must confirm`,
        lines: [
          ...(preview && !replayed ? previewLines(preview) : []),
          [`Another holder of ${policy.permissions.restore.roles.join(' or ')} can confirm in the fleet incident's thread until `, { time: body.expiresAt }, '; one confirmation covers the whole set.'],
        ],
      };
    }
    const result = body as FleetResult;
    if (result.count === 0 && result.matched === 0) {
      return { tone: 'info', title: `Nothing is held by the fleet incident of ${selectorText(command.selector)} any more; it is closed. Nothing else was changed.`, lines: [] };
    }
    return this.resultReply(result, command.ttlMs);
  }

  private resultReply(result: FleetResult, ttlMs?: number): ChatReply {
    const ttl = ttlMs ? ` for ${formatDuration(ttlMs)}` : '';
    const restoreHint: Text[] = result.action !== 'restore' && result.count > 0 ? [['Undo with ', { command: `restore ${selectorText(result.selector)} <reason>` }]] : [];
    return {
      tone: result.count > 0 ? 'success' : 'info',
      title: `${VERB[result.action]} ${agents(result.count)} by selector ${selectorText(result.selector)}${ttl}${result.replayed ? ' (already applied)' : ''}`,
      lines: [...resultLines(result), ...restoreHint],
    };
  }

  /** A click on a fleet confirmation; undefined when `id` is not one (the caller tries the other kinds). */
  async confirm(who: ChatIdentity, id: string): Promise<ChatReply | undefined> {
    const { db, policy, fleet, clock } = this.deps;
    const row = await findFleetConfirmation(db, id);
    if (!row) return undefined;
    const actor = `${who.platform}:${who.userId}`;
    const requester = requesterOfRow(row);
    const person = await this.deps.withResolvedEmails(who);
    if (row.kind === 'apply') {
      if (!samePerson(policy, requester, person)) return errorReply(`Only the person who asked (${row.requested_by}) can confirm this. Nothing was changed.`);
      for (const permission of ['bulk', row.action] as const) {
        const auth = authorize(policy, who, permission);
        if (!auth.ok) return errorReply(`Not allowed: ${auth.message}. Nothing was changed.`);
      }
    } else {
      if (requester.platform !== 'api' && samePerson(policy, requester, person)) {
        return errorReply(`A second person must confirm this restore; you asked for it${row.requested_by === actor ? '' : ` (as ${row.requested_by})`}. Nothing was changed.`);
      }
      const auth = authorize(policy, who, 'restore');
      if (!auth.ok) return errorReply(`Not allowed: ${auth.message}. Nothing was changed.`);
    }
    if (row.outcome === 'cancelled') return errorReply(`This confirmation was cancelled by ${row.decided_by}. Nothing was changed.`);
    if (!row.decided_at && row.expires_at.getTime() <= clock.now().getTime()) return errorReply(`This confirmation expired at ${row.expires_at.toISOString()}. Ask again. Nothing was changed.`);
    const reason = row.kind === 'second_person' ? `${row.reason} (requested by ${row.requested_by}, confirmed by ${actor})` : row.reason;
    try {
      const result = await fleet.runConfirmation(row, actor, reason);
      if (result.replayed) return { tone: 'info', title: `Already confirmed by ${row.decided_by ?? 'someone else'}`, lines: resultLines(result) };
      return this.resultReply(result, row.ttl_ms === null ? undefined : Number(row.ttl_ms));
    } catch (err) {
      if (isCodedError(err)) return errorReply(`${err.message.replace(/\. Nothing was changed$/, '')}. Nothing was changed.`);
      throw err;
    }
  }

  /** Cancel: the person who asked; a restore asked over the API, any holder of a restore role. Undefined when not a fleet confirmation. */
  async cancel(who: ChatIdentity, id: string): Promise<ChatReply | undefined> {
    const { db, policy, fleet } = this.deps;
    const row = await findFleetConfirmation(db, id);
    if (!row) return undefined;
    const requester = requesterOfRow(row);
    const allowed = requester.platform === 'api' ? authorize(policy, who, 'restore').ok : samePerson(policy, requester, await this.deps.withResolvedEmails(who));
    if (allowed && (await fleet.cancelConfirmation(id, `${who.platform}:${who.userId}`))) return { tone: 'info', title: 'Cancelled. Nothing was changed.', lines: [] };
    return errorReply('Only the person who asked can cancel, and only while it is pending.');
  }
}

/** The selector a fleet confirmation was asked with (for replies that name it). */
export const selectorOfRow = (row: FleetConfirmationRow): FleetSelector => row.selector as FleetSelector;
