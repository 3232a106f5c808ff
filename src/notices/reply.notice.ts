import type { ChatReply } from '../chat/reply.js';
import { clip, LIMITS, plain, type Icon, type Notice, type NoticeAction, type NoticeBlock, type Text, type Tone } from './model.js';

const TONE: Record<ChatReply['tone'], { tone: Tone; icon: Icon }> = {
  info: { tone: 'info', icon: 'info' },
  success: { tone: 'success', icon: 'success' },
  warning: { tone: 'warning', icon: 'warning' },
  error: { tone: 'danger', icon: 'error' },
};

/** A line clipped to the model's limit, span by span. */
function clipLine(line: Text): Text {
  let left: number = LIMITS.line;
  const out: Text = [];
  for (const span of line) {
    if (left <= 0) break;
    const length = plain([span]).length;
    if (typeof span === 'string') out.push(clip(span, left));
    else if ('strong' in span) out.push({ strong: clip(span.strong, left) });
    else if ('em' in span) out.push({ em: clip(span.em, left) });
    else if ('code' in span) out.push({ code: clip(span.code, left) });
    else out.push(span);
    left -= length;
  }
  return out;
}

/** An answer to a chat command as a notice: the title, its lines, usage, and its buttons. */
export function replyNotice(reply: ChatReply): Notice {
  if (reply.notice) return reply.notice;
  const titleText = typeof reply.title === 'string' ? clip(reply.title, LIMITS.title) : plain(reply.title);
  const title: Text = typeof reply.title === 'string' ? [{ strong: titleText }] : reply.title;
  const blocks: NoticeBlock[] = [];
  if (reply.lines.length) {
    const lines = reply.lines.slice(0, LIMITS.lines).map((line) => clipLine(typeof line === 'string' ? [line] : line));
    if (reply.lines.length > LIMITS.lines) lines.push([`…and ${reply.lines.length - LIMITS.lines} more lines`]);
    blocks.push({ kind: 'lines', lines });
  }
  if (reply.usage) blocks.push({ kind: 'code', label: 'Usage', text: reply.usage });
  const actions: NoticeAction[] = [];
  if (reply.confirm) {
    actions.push({ kind: 'confirm', confirmationId: reply.confirm.id, label: clip(reply.confirm.label, LIMITS.buttonLabel), danger: reply.confirm.danger });
    actions.push({ kind: 'cancel', confirmationId: reply.confirm.id });
  }
  if (reply.more) actions.push({ kind: 'more', label: clip(reply.more.label, LIMITS.buttonLabel), command: clip(reply.more.command, LIMITS.moreCommand) });
  return { kind: 'reply', ...TONE[reply.tone], title, fallback: titleText, blocks, ...(actions.length ? { actions } : {}) };
}
