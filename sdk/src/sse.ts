/**
 * A Server-Sent Events parser (the WHATWG "event stream interpretation"), fed with text as it
 * arrives. Written here rather than taken from a package: the maintained EventSource packages need
 * Node 22, and the SDK needs the raw pieces anyway (comments count as "alive", `Last-Event-ID` on
 * every reconnect, and the request headers are ours).
 *
 * Lines end in LF, CRLF or a lone CR, and a chunk may end anywhere: in the middle of a line, or
 * between the CR and the LF of one line break.
 */

export interface SseEvent {
  /** `message` when the event named none. */
  event: string;
  /** The `data:` lines joined with LF. */
  data: string;
  /** The last `id:` seen so far on this stream (it carries over to later events, as the spec says). */
  lastEventId: string;
}

export interface SseHandlers {
  event(event: SseEvent): void;
  /** A line starting with `:` (a heartbeat), without the colon. */
  comment?(text: string): void;
  /** A valid `retry:` field, in milliseconds. */
  retry?(ms: number): void;
}

export class SseParser {
  private buffer = '';
  /** The previous chunk ended in CR: an LF at the start of the next one belongs to that line break. */
  private afterCr = false;
  private first = true;
  private eventType = '';
  private data: string[] = [];
  private lastEventId: string;

  constructor(
    private readonly handlers: SseHandlers,
    lastEventId = '',
  ) {
    this.lastEventId = lastEventId;
  }

  /** Feeds decoded text; handlers run synchronously for every complete line. */
  push(text: string): void {
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (this.afterCr && text.charCodeAt(0) === 10) start = 1;
    this.afterCr = false;
    const len = text.length;
    for (let i = start; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer + text.slice(start, i);
      this.buffer = '';
      if (c === 13) {
        if (i + 1 < len) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
      this.line(line);
    }
    if (start < len) this.buffer += text.slice(start);
  }

  /** How many characters of an unfinished line are held (the caller bounds it). */
  get pending(): number {
    return this.buffer.length;
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.charCodeAt(0) === 58 /* : */) {
      this.handlers.comment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.handlers.retry?.(Number(value));
        break;
      default:
      // Unknown fields are ignored (the spec says so).
    }
  }

  private dispatch(): void {
    const type = this.eventType;
    const data = this.data;
    this.eventType = '';
    this.data = [];
    // An event with no data line is not dispatched (but its id still counts).
    if (data.length === 0) return;
    this.handlers.event({ event: type || 'message', data: data.join('\n'), lastEventId: this.lastEventId });
  }
}
