/**
 * The neutral message model for answers to chat commands. Each platform adapter renders it
 * (Block Kit for Slack, Adaptive Cards for Teams); nothing here knows either.
 */
export type Tone = 'info' | 'success' | 'warning' | 'error';

export interface ChatReply {
  tone: Tone;
  /** Plain words (no markup); may contain user-supplied text, escaped by each renderer. */
  title: string;
  /**
   * Paragraphs; `*bold*`, `_italic_` and `code` in backticks are the only markup used. Title and lines
   * carry user-supplied text (names, owners, reasons, justifications, audiences), so every renderer
   * escapes them with its platform's one helper (`src/slack/escape.ts`, `src/teams/escape.ts`):
   * Slack keeps the markup and loses mentions, links and broadcasts; Teams shows the text as typed.
   */
  lines: string[];
  /** The usage line(s) to show after an error. */
  usage?: string;
  /** A two-step command waiting for a click. */
  confirm?: { id: string; label: string; danger: boolean; expiresAt: string };
  /** A listing with another page: the command text that shows it (a "more" button where the platform has one). */
  more?: { label: string; command: string };
}

export const errorReply = (title: string, usage?: string): ChatReply => ({ tone: 'error', title, lines: [], ...(usage ? { usage } : {}) });
