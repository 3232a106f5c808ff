/**
 * The platform-neutral notice model. Every message the bot sends (incident notices, approval cards,
 * trust changes, packet summaries, confirmation requests, command replies, …) is built once from
 * domain data into a `Notice`, and each chat platform renders it (`src/slack/render.ts` into Block
 * Kit, `src/teams/render.ts` into an Adaptive Card 1.5). Nothing here knows a platform: no mrkdwn, no
 * Markdown, no emoji codes, no Block Kit or Adaptive Card shapes. Platform limits (Block Kit's 3,000
 * characters a section, 50 blocks a message; Adaptive Cards' sizes) live only in the renderers; the
 * limits below are the model's own, applied by the builders.
 *
 * Text is a list of spans. A plain string span is shown as typed: it may carry user-supplied text
 * (names, owners, reasons, justifications, audiences), and every renderer escapes it with its
 * platform's one helper, so user text can never mention, broadcast, link or format.
 */

/** A piece of inline text. */
export type Span =
  /** Shown as typed (escaped by the renderer). */
  | string
  /** Emphasised (bold). */
  | { strong: string }
  /** Secondary (italic). */
  | { em: string }
  /** An identifier, scope, action or command: monospace where the platform has it. */
  | { code: string }
  /** A link to a URL we built (a signed packet link); never a URL from user input. */
  | { link: string; label: string }
  /**
   * Who did something, as an actor string (`slack:U123`, `teams:<aad id>`, `api:<token name>`,
   * `system:ttl`): each platform shows its own people as mentions and everyone else by name.
   */
  | { actor: string }
  /** A moment: Slack shows it in the reader's time zone, Teams as an ISO time. */
  | { time: Date | string }
  /**
   * A chat command of ours, without the platform's prefix (`restore pay-bot <reason>`): Slack shows
   * the slash command (`/armalo restore …`), Teams the words to send to the bot.
   */
  | { command: string };

/** One line of text. */
export type Text = Span[];

export type Tone = 'info' | 'success' | 'warning' | 'danger';

/**
 * What the notice is about, for renderers that show an icon or a colour next to the title. A
 * renderer may ignore it.
 */
export type Icon =
  | 'incident'
  | 'resolved'
  | 'approval'
  | 'approved'
  | 'denied'
  | 'expired'
  | 'cancelled'
  | 'score-up'
  | 'score-down'
  | 'stale'
  | 'violation'
  | 'packet'
  | 'break-glass'
  | 'decommissioned'
  | 'policy'
  | 'reminder'
  | 'info'
  | 'success'
  | 'warning'
  | 'error'
  | 'active'
  | 'narrowed'
  | 'contained'
  | 'revoked';

export type NoticeBlock =
  /** Paragraph lines, shown one under the other. */
  | { kind: 'lines'; lines: Text[] }
  /** Label/value pairs (Slack: a bold label in a line; Teams: a FactSet). */
  | { kind: 'facts'; facts: { label: string; value: Text }[] }
  /** Small print under the content. */
  | { kind: 'context'; text: Text }
  /** Preformatted text of ours (usage lines); never user input. `label` is shown above it ("Usage"). */
  | { kind: 'code'; text: string; label?: string }
  /** A heading inside a longer notice (App Home's "Waiting on you"). */
  | { kind: 'heading'; text: string }
  /** A separator. */
  | { kind: 'divider' }
  /** Buttons that belong to the block above them (one per approval in a list). */
  | { kind: 'actions'; actions: NoticeAction[] };

export type NoticeAction =
  | { kind: 'approve'; requestId: string }
  /** Deny asks for a reason (Slack: a modal; Teams: an inline input). */
  | { kind: 'deny'; requestId: string }
  | { kind: 'confirm'; confirmationId: string; label: string; danger: boolean }
  | { kind: 'cancel'; confirmationId: string }
  /** A listing's next page: the command text that shows it. */
  | { kind: 'more'; label: string; command: string }
  | { kind: 'open-url'; label: string; url: string };

export type NoticeKind =
  | 'incident'
  | 'incident-step'
  | 'incident-expiry'
  /** A fleet incident's root (one containment by selector, many agents). */
  | 'fleet-incident'
  /** A line in a fleet incident's thread (a restore by the same selector). */
  | 'fleet-step'
  | 'approval'
  | 'approval-reminder'
  | 'waiting'
  | 'trust'
  | 'packet'
  | 'confirmation'
  | 'break-glass'
  | 'decommission'
  | 'policy-invalid'
  | 'audit-broken'
  | 'reply';

export interface Notice {
  kind: NoticeKind;
  tone: Tone;
  icon?: Icon;
  /** Shown above the title, emphasised (a refusal shown on top of an approval card). */
  banner?: Text;
  title: Text;
  /**
   * The plain words platforms show in notifications and previews. Plain text, no markup; may carry
   * user text, so renderers escape it like any string span.
   */
  fallback: string;
  blocks: NoticeBlock[];
  /** Buttons at the end of the notice. */
  actions?: NoticeAction[];
  /** Ask for everyone's attention in a channel (the break-glass notice): Slack `@here`; Teams shows it as urgent. */
  broadcast?: boolean;
}

/** The model's own length limits, applied by the builders (`clip`). Renderers add their platform's. */
export const LIMITS = {
  /** A title. */
  title: 300,
  /** One line of a `lines` block or a fact's value. */
  line: 1_000,
  /** Lines in one notice, all blocks together (a listing's page stays well under). */
  lines: 120,
  /** A button's label (Slack's limit is 75: the tighter of the two platforms). */
  buttonLabel: 75,
  /** The command carried by a "more" button. */
  moreCommand: 2_000,
  /** Problems listed in a policy-invalid notice before "…and N more". */
  problems: 10,
  /** A free-text reason or justification shown in a notice. */
  reason: 2_000,
} as const;

/** Cuts a string to `max` characters, marking the cut with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** The plain characters of a line (for fallbacks, logs and tests): no markup, nothing escaped. */
export function plain(text: Text): string {
  return text
    .map((s) => {
      if (typeof s === 'string') return s;
      if ('strong' in s) return s.strong;
      if ('em' in s) return s.em;
      if ('code' in s) return s.code;
      if ('link' in s) return s.label;
      if ('actor' in s) return s.actor;
      if ('command' in s) return s.command;
      return typeof s.time === 'string' ? s.time : s.time.toISOString();
    })
    .join('');
}
