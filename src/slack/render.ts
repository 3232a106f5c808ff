import type { types } from '@slack/bolt';
import type { Icon, Notice, NoticeAction, NoticeBlock, Span, Text } from '../notices/model.js';
import { escapeMrkdwn } from './escape.js';

/**
 * The Slack renderer: a neutral notice into Block Kit (mrkdwn). Every user-supplied string goes
 * through `escapeMrkdwn` (src/slack/escape.ts) and nothing else; the only `<…>` control sequences in
 * the output are ours (mentions of Slack people, date tokens, `<!here>` for a broadcast, links we
 * built). Block Kit's limits are enforced here.
 */

/** Block Kit block, loosely typed: we build a handful of shapes and Slack validates them. */
export type Block = Record<string, unknown>;

/** Block Kit's limits (https://api.slack.com/reference/block-kit). */
export const SLACK_LIMITS = {
  sectionText: 3_000,
  contextText: 3_000,
  messageBlocks: 50,
  homeBlocks: 100,
  buttonLabel: 75,
  buttonValue: 2_000,
  header: 150,
  /** A message's `text` (the notification fallback); Slack allows far more, nobody reads it. */
  fallback: 3_000,
} as const;

export const APPROVE_ACTION = 'armalo_approve';
export const DENY_ACTION = 'armalo_deny';
export const DENY_MODAL = 'armalo_deny_modal';
export const CONFIRM_ACTION = 'armalo_confirm';
export const CANCEL_ACTION = 'armalo_cancel';
/** The "more" button of a listing: its value is the command that shows the next page. */
export const MORE_ACTION = 'armalo_more';
/** Link buttons need an action id too; clicks on them are only acknowledged. */
export const LINK_ACTION = 'armalo_link';
/** The slash command our command spans show. */
export const SLASH_COMMAND_PREFIX = '/armalo';

const EMOJI: Record<Icon, string> = {
  incident: ':rotating_light:',
  resolved: ':white_check_mark:',
  approval: ':raised_hand:',
  approved: ':white_check_mark:',
  denied: ':no_entry:',
  expired: ':hourglass:',
  cancelled: ':heavy_multiplication_x:',
  'score-up': ':chart_with_upwards_trend:',
  'score-down': ':chart_with_downwards_trend:',
  stale: ':hourglass:',
  violation: ':rotating_light:',
  packet: ':page_facing_up:',
  'break-glass': ':rotating_light:',
  decommissioned: ':wastebasket:',
  policy: ':warning:',
  reminder: ':bell:',
  info: ':information_source:',
  success: ':white_check_mark:',
  warning: ':warning:',
  error: ':x:',
  active: ':white_check_mark:',
  narrowed: ':large_orange_diamond:',
  contained: ':rotating_light:',
  revoked: ':no_entry:',
};

/** How an actor reads in Slack: Slack people as mentions, tokens and the system by name. */
export function slackActor(actor: string): string {
  const colon = actor.indexOf(':');
  const kind = colon < 0 ? '' : actor.slice(0, colon);
  const id = actor.slice(colon + 1);
  if (kind === 'slack' && /^[UW][A-Z0-9]+$/.test(id)) return `<@${id}>`;
  if (kind === 'api') return `API token \`${escapeMrkdwn(id)}\``;
  if (actor === 'system:ttl') return 'ttl expiry';
  return escapeMrkdwn(actor);
}

/** A date token: the reader's time zone in Slack, the ISO time where tokens are not shown. */
function slackTime(value: Date | string): string {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return escapeMrkdwn(String(value));
  return `<!date^${Math.floor(date.getTime() / 1000)}^{date_short_pretty} {time}|${date.toISOString()}>`;
}

/** A URL of ours inside `<url|label>`: the characters that would end it are percent-encoded. */
const safeUrl = (url: string) => url.replace(/[<>|\s]/g, (c) => encodeURIComponent(c));

/** Emphasis markers need text next to them: `*  *` would show as typed. */
const wrap = (marker: string, text: string) => (text.trim() ? `${marker}${text}${marker}` : text);

function span(s: Span): string {
  if (typeof s === 'string') return escapeMrkdwn(s);
  if ('strong' in s) return wrap('*', escapeMrkdwn(s.strong));
  if ('em' in s) return wrap('_', escapeMrkdwn(s.em));
  if ('code' in s) return wrap('`', escapeMrkdwn(s.code));
  if ('command' in s) return `\`${SLASH_COMMAND_PREFIX} ${escapeMrkdwn(s.command)}\``;
  if ('link' in s) return `<${safeUrl(s.link)}|${escapeMrkdwn(s.label)}>`;
  if ('actor' in s) return slackActor(s.actor);
  return slackTime(s.time);
}

/** A line of spans as mrkdwn. */
export function slackText(text: Text): string {
  return text.map(span).join('');
}

/** Cuts mrkdwn to `max` characters without leaving half a control sequence of ours behind. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let out = text.slice(0, max - 1);
  const open = out.lastIndexOf('<');
  if (open > out.lastIndexOf('>')) out = out.slice(0, open);
  return `${out}…`;
}

const section = (text: string): Block => ({ type: 'section', text: { type: 'mrkdwn', text: cut(text, SLACK_LIMITS.sectionText) } });
const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text: cut(text, SLACK_LIMITS.contextText) }] });

/** Lines joined into sections of at most 3,000 characters, breaking between lines where it can. */
function sections(lines: string[]): Block[] {
  const out: string[] = [];
  let current = '';
  for (const line of lines) {
    const piece = cut(line, SLACK_LIMITS.sectionText);
    if (current && current.length + 1 + piece.length > SLACK_LIMITS.sectionText) {
      out.push(current);
      current = '';
    }
    current = current ? `${current}\n${piece}` : piece;
  }
  if (current) out.push(current);
  return out.map(section);
}

const button = (actionId: string, label: string, value: string, style?: 'primary' | 'danger'): Block => ({
  type: 'button',
  action_id: actionId,
  text: { type: 'plain_text', text: cutPlain(label, SLACK_LIMITS.buttonLabel) },
  value: value.slice(0, SLACK_LIMITS.buttonValue),
  ...(style ? { style } : {}),
});

const cutPlain = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** Buttons into actions blocks: one per request (approve/deny), per confirmation, the "more" button, links. */
function actionBlocks(actions: NoticeAction[]): Block[] {
  const groups = new Map<string, Block[]>();
  const add = (blockId: string, element: Block) => {
    const list = groups.get(blockId) ?? [];
    list.push(element);
    groups.set(blockId, list);
  };
  for (const a of actions) {
    switch (a.kind) {
      case 'approve':
        add(`approval:${a.requestId}`, button(APPROVE_ACTION, 'Approve', a.requestId, 'primary'));
        break;
      case 'deny':
        add(`approval:${a.requestId}`, button(DENY_ACTION, 'Deny…', a.requestId, 'danger'));
        break;
      case 'confirm':
        add(`confirm:${a.confirmationId}`, button(CONFIRM_ACTION, a.label, a.confirmationId, a.danger ? 'danger' : 'primary'));
        break;
      case 'cancel':
        add(`confirm:${a.confirmationId}`, button(CANCEL_ACTION, 'Cancel', a.confirmationId));
        break;
      case 'more':
        // The value is the command text of the next page (at most 2,000 characters in Slack).
        add('more', button(MORE_ACTION, a.label, a.command));
        break;
      case 'open-url':
        add('links', { type: 'button', action_id: `${LINK_ACTION}:${(groups.get('links')?.length ?? 0) + 1}`, text: { type: 'plain_text', text: cutPlain(a.label, SLACK_LIMITS.buttonLabel) }, url: a.url.slice(0, 3000) });
        break;
    }
  }
  // An actions block holds at most 25 elements.
  return [...groups].map(([blockId, elements]) => ({ type: 'actions', block_id: blockId.slice(0, 255), elements: elements.slice(0, 25) }));
}

/** Facts as one bold label and its value per line. */
const factLines = (facts: { label: string; value: Text }[]) => facts.map((f) => `*${escapeMrkdwn(f.label)}:* ${f.value.length ? slackText(f.value) : 'none'}`);

function block(b: NoticeBlock): Block[] {
  switch (b.kind) {
    case 'lines':
      return sections(b.lines.map(slackText));
    case 'facts':
      return sections(factLines(b.facts));
    case 'context':
      return [context(slackText(b.text))];
    case 'code':
      return [context(`${b.label ? `${escapeMrkdwn(b.label)}:\n` : ''}\`\`\`${escapeMrkdwn(b.text)}\`\`\``)];
    case 'heading':
      return [{ type: 'header', text: { type: 'plain_text', text: cutPlain(b.text, SLACK_LIMITS.header) } }];
    case 'divider':
      return [{ type: 'divider' }];
    case 'actions':
      return actionBlocks(b.actions);
  }
}

/** The title line: the notice's icon, `<!here>` for a broadcast, then the title. */
export function slackTitle(n: Notice): string {
  const icon = n.icon ? `${EMOJI[n.icon]} ` : '';
  return `${n.broadcast ? '<!here> ' : ''}${icon}${slackText(n.title)}`;
}

/** Keeps a list of blocks under a limit: the end (the notice's buttons) stays, the middle is cut with a note. */
function capBlocks(head: Block[], tail: Block[], max: number): Block[] {
  if (head.length + tail.length <= max) return [...head, ...tail];
  const keep = Math.max(0, max - tail.length - 1);
  return [...head.slice(0, keep), context(`…${head.length - keep} more block(s) not shown.`), ...tail].slice(0, max);
}

function body(n: Notice): Block[] {
  const blocks: Block[] = [];
  for (const b of n.blocks) blocks.push(...block(b));
  return blocks;
}

/** A notice as a Slack message: blocks, and the plain-text fallback Slack shows in notifications. */
export function renderSlack(n: Notice): { text: string; blocks: Block[] } {
  const head: Block[] = [];
  if (n.banner?.length) head.push(section(`:warning: ${wrap('*', slackText(n.banner))}`));
  if (n.title.length || n.icon || n.broadcast) head.push(section(slackTitle(n)));
  head.push(...body(n));
  const tail = n.actions?.length ? actionBlocks(n.actions) : [];
  // The fallback text is mrkdwn too (it drives notifications): escaped like the blocks.
  const text = `${n.broadcast ? '<!here> ' : ''}${escapeMrkdwn(cutPlain(n.fallback, SLACK_LIMITS.fallback))}`;
  return { text, blocks: capBlocks(head, tail, SLACK_LIMITS.messageBlocks) };
}

/** A notice as the App Home tab (the waiting notice): its blocks, no title, up to 100 blocks. */
export function renderSlackHome(n: Notice): types.HomeView {
  const blocks = capBlocks(body(n), n.actions?.length ? actionBlocks(n.actions) : [], SLACK_LIMITS.homeBlocks);
  return { type: 'home', blocks: blocks as unknown as types.KnownBlock[] };
}

/** The modal a denial goes through: a reason is required. */
export function denyModal(requestId: string, agentId: string, action: string): types.ModalView {
  return {
    type: 'modal',
    callback_id: DENY_MODAL,
    private_metadata: requestId,
    title: { type: 'plain_text', text: 'Deny request' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: cut(`Deny ${slackText([{ code: agentId }])} → ${slackText([{ code: action }])}?`, SLACK_LIMITS.sectionText) } },
      { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason (shown to everyone on the request)' }, element: { type: 'plain_text_input', action_id: 'reason_input', multiline: true, min_length: 3, max_length: 2000 } },
    ],
  };
}
