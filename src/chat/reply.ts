/**
 * The neutral message model for answers to chat commands. Each platform renders it through the
 * notice model (`replyNotice` in src/notices/reply.notice.ts, then Block Kit for Slack, an Adaptive
 * Card for Teams); nothing here knows either platform.
 */
import type { Notice, Text } from '../notices/model.js';

export type Tone = 'info' | 'success' | 'warning' | 'error';

export interface ChatReply {
  tone: Tone;
  /** Plain words, or spans; may contain user-supplied text, escaped by each renderer. */
  title: Text | string;
  /**
   * Paragraphs as spans: emphasis, identifiers and commands are spans (`{ strong }`, `{ code }`,
   * `{ command }`), never markup inside a string. Plain string spans may carry user-supplied text
   * (names, owners, reasons, justifications, audiences): every renderer escapes them with its
   * platform's one helper, so they can never mention, link, broadcast or format. A bare string is
   * one plain span (shown as typed, never as markup).
   */
  lines: (Text | string)[];
  /** The usage line(s) to show after an error. */
  usage?: string;
  /** A two-step command waiting for a click. */
  confirm?: { id: string; label: string; danger: boolean; expiresAt: string };
  /** A listing with another page: the command text that shows it (a "more" button where the platform has one). */
  more?: { label: string; command: string };
  /**
   * Only for the person who asked (a sign-in link): where a platform cannot answer privately in a
   * shared conversation (Teams channels), the adapter sends it to the person's own chat instead.
   */
  private?: true;
  /** A richer answer (the `approvals` listing): renderers show this notice instead of the fields above. */
  notice?: Notice;
}

export const errorReply = (title: string, usage?: string): ChatReply => ({ tone: 'error', title, lines: [], ...(usage ? { usage } : {}) });
