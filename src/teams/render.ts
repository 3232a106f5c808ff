import type { Notice, NoticeAction, NoticeBlock, Span, Text, Tone } from '../notices/model.js';
import { escapeMarkdown } from './escape.js';

/**
 * The Teams renderer: a neutral notice into an Adaptive Card 1.5 with Universal Actions
 * (Action.Execute). Every user-supplied string goes through `escapeMarkdown` (src/teams/escape.ts)
 * and nothing else; emphasis is Markdown of ours (`**…**`, `_…_`) around escaped text.
 */

export type AdaptiveCard = Record<string, unknown>;
type Element = Record<string, unknown>;

/** The Universal Action verbs (Action.Execute) of our cards; the bot routes each to its use case. */
export const VERBS = { approve: 'armalo.approve', deny: 'armalo.deny', refresh: 'armalo.refresh', confirm: 'armalo.confirm', cancel: 'armalo.cancel' } as const;
export const { approve: APPROVE_VERB, deny: DENY_VERB, refresh: REFRESH_VERB, confirm: CONFIRM_VERB, cancel: CANCEL_VERB } = VERBS;

export const CARD_SCHEMA = 'http://adaptivecards.io/schemas/adaptive-card.json';
export const CARD_VERSION = '1.5';

/**
 * Teams refuses a message over about 28 KB: the card's body is cut (with a note) past this many
 * characters of JSON, and one TextBlock holds at most `textBlock` characters.
 */
export const TEAMS_LIMITS = { cardBody: 22_000, textBlock: 5_000 } as const;

const COLOR: Record<Tone, string> = { info: 'Default', success: 'Good', warning: 'Warning', danger: 'Attention' };

/** Notices that read as one line in a thread, not as a card with a heading. */
const LINE_KINDS = new Set<Notice['kind']>(['incident-step', 'incident-expiry', 'approval-reminder']);

/** How an actor reads in Teams: by name (a token's name, the ttl), else the actor as recorded. */
export function teamsActor(actor: string): string {
  if (actor.startsWith('api:')) return `API token ${escapeMarkdown(actor.slice(4))}`;
  if (actor === 'system:ttl') return 'ttl expiry';
  return escapeMarkdown(actor);
}

function teamsTime(value: Date | string): string {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? escapeMarkdown(String(value)) : date.toISOString();
}

/** Emphasis markers need text next to them. */
const wrap = (marker: string, text: string) => (text.trim() ? `${marker}${text}${marker}` : text);

/** A URL of ours inside `[label](url)`: the characters that would end it are percent-encoded. */
const safeUrl = (url: string) => url.replace(/[()<>\s]/g, (c) => encodeURIComponent(c));

function span(s: Span): string {
  if (typeof s === 'string') return escapeMarkdown(s);
  if ('strong' in s) return wrap('**', escapeMarkdown(s.strong));
  if ('em' in s) return wrap('_', escapeMarkdown(s.em));
  // TextBlocks have no code style: identifiers are shown as typed (escaped: `payments:*` stays literal).
  if ('code' in s) return escapeMarkdown(s.code);
  // No slash commands in Teams: the words to send to the bot.
  if ('command' in s) return escapeMarkdown(s.command);
  if ('link' in s) return `[${escapeMarkdown(s.label)}](${safeUrl(s.link)})`;
  if ('actor' in s) return teamsActor(s.actor);
  return teamsTime(s.time);
}

/** A line of spans as Teams Markdown. */
export function teamsText(text: Text): string {
  return text.map(span).join('');
}

/** A line-like notice (a thread reply) as Teams message text. */
export function teamsLine(n: Notice): string {
  return teamsText(n.title);
}

/** Cuts Markdown without leaving a dangling backslash escape. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let out = text.slice(0, max - 1);
  const trailing = /\\+$/.exec(out)?.[0].length ?? 0;
  if (trailing % 2 === 1) out = out.slice(0, -1);
  return `${out}…`;
}

const textBlock = (text: string, extra: Element = {}): Element => ({ type: 'TextBlock', text: cut(text, TEAMS_LIMITS.textBlock), wrap: true, ...extra });

/** Keeps the body under the card size Teams accepts: later elements give way to a note. */
function capBody(body: Element[]): Element[] {
  let size = 0;
  for (const [i, e] of body.entries()) {
    size += JSON.stringify(e).length;
    if (size > TEAMS_LIMITS.cardBody) return [...body.slice(0, i), textBlock(`…${body.length - i} more part(s) not shown.`, { isSubtle: true, size: 'Small' })];
  }
  return body;
}

/** Approve and Deny… (Deny asks for a reason in the card), Confirm/Cancel, links. "More" has no button in Teams: the reply says the words. */
function cardActions(actions: NoticeAction[]): Element[] {
  const out: Element[] = [];
  for (const a of actions) {
    switch (a.kind) {
      case 'approve':
        out.push({ type: 'Action.Execute', title: 'Approve', verb: APPROVE_VERB, data: { requestId: a.requestId }, style: 'positive' });
        break;
      case 'deny':
        out.push({
          type: 'Action.ShowCard',
          title: 'Deny…',
          card: {
            type: 'AdaptiveCard',
            version: CARD_VERSION,
            body: [{ type: 'Input.Text', id: 'reason', label: 'Reason (everyone on the request sees it)', isMultiline: true, isRequired: true, errorMessage: 'A reason is required', maxLength: 2000 }],
            actions: [{ type: 'Action.Execute', title: 'Deny', verb: DENY_VERB, data: { requestId: a.requestId }, style: 'destructive' }],
          },
        });
        break;
      case 'confirm':
        out.push({ type: 'Action.Execute', title: a.label, verb: CONFIRM_VERB, data: { confirmationId: a.confirmationId }, style: a.danger ? 'destructive' : 'positive' });
        break;
      case 'cancel':
        out.push({ type: 'Action.Execute', title: 'Cancel', verb: CANCEL_VERB, data: { confirmationId: a.confirmationId } });
        break;
      case 'open-url':
        out.push({ type: 'Action.OpenUrl', title: a.label, url: a.url });
        break;
      case 'more':
        break;
    }
  }
  return out;
}

function blockElements(b: NoticeBlock): Element[] {
  switch (b.kind) {
    case 'lines':
      return b.lines.map((line) => textBlock(teamsText(line), { spacing: 'Small' }));
    case 'facts':
      // FactSet values render Markdown in Teams too: every value is escaped span by span.
      return [{ type: 'FactSet', facts: b.facts.map((f) => ({ title: escapeMarkdown(f.label), value: f.value.length ? teamsText(f.value) : 'none' })) }];
    case 'context':
      return [textBlock(teamsText(b.text), { isSubtle: true, size: 'Small' })];
    case 'code': {
      // Usage lines are ours; Teams has no slash command, so the words to send are shown.
      const lines = b.text.split('\n').map((l) => l.replace(/^\/armalo /, ''));
      return [textBlock(`${b.label ? `${b.label}:\n\n` : ''}${lines.join('\n\n')}`, { fontType: 'Monospace', isSubtle: true })];
    }
    case 'heading':
      return [textBlock(escapeMarkdown(b.text), { weight: 'Bolder', size: 'Medium', spacing: 'Large' })];
    case 'divider':
      return [];
    case 'actions': {
      const actions = cardActions(b.actions);
      return actions.length ? [{ type: 'ActionSet', actions }] : [];
    }
  }
}

/**
 * A notice as an Adaptive Card 1.5. `refreshUserIds` (approval cards): the people whose copy
 * refreshes itself when they open it (Universal Actions `refresh.userIds`), while Approve is offered.
 */
export function renderTeams(n: Notice, opts: { refreshUserIds?: string[] } = {}): AdaptiveCard {
  const body: Element[] = [];
  if (n.banner?.length) body.push(textBlock(teamsText(n.banner), { color: 'Attention', weight: 'Bolder' }));
  if (n.broadcast) body.push(textBlock('URGENT', { color: 'Attention', weight: 'Bolder', size: 'Small' }));
  if (n.title.length) {
    const line = LINE_KINDS.has(n.kind);
    body.push(textBlock(teamsText(n.title), line ? { color: COLOR[n.tone] === 'Default' ? 'Default' : COLOR[n.tone] } : { weight: 'Bolder', size: 'Medium', color: COLOR[n.tone] }));
  }
  let separator = false;
  for (const b of n.blocks) {
    if (b.kind === 'divider') {
      separator = true;
      continue;
    }
    const elements = blockElements(b);
    if (separator && elements[0]) {
      elements[0] = { ...elements[0], separator: true };
      separator = false;
    }
    body.push(...elements);
  }
  const actions = cardActions(n.actions ?? []);
  const approve = [...(n.actions ?? []), ...n.blocks.flatMap((b) => (b.kind === 'actions' ? b.actions : []))].find((a) => a.kind === 'approve');
  const refresh =
    opts.refreshUserIds?.length && approve && approve.kind === 'approve'
      ? { refresh: { action: { type: 'Action.Execute', verb: REFRESH_VERB, data: { requestId: approve.requestId } }, userIds: opts.refreshUserIds } }
      : {};
  return { type: 'AdaptiveCard', $schema: CARD_SCHEMA, version: CARD_VERSION, ...refresh, body: capBody(body), ...(actions.length ? { actions } : {}) };
}

/** The attachment a Bot Framework activity carries a card in. */
export const cardAttachment = (card: AdaptiveCard) => ({ contentType: 'application/vnd.microsoft.card.adaptive', content: card });
