/** Messages between the benchmark (parent) and a server child over the fork IPC channel. */
export type ParentMessage = { type: 'start'; options: Record<string, string> } | { type: 'stop' } | { type: 'usage' };

export type ChildMessage =
  | { type: 'ready'; port: number }
  | { type: 'error'; message: string }
  /** CPU time this process has used so far (microseconds), and its memory now (bytes). */
  | { type: 'usage'; user: number; system: number; rss: number; heapUsed: number; heapTotal: number };

export function isParentMessage(value: unknown): value is ParentMessage {
  return typeof value === 'object' && value !== null && 'type' in value && (value.type === 'start' || value.type === 'stop' || value.type === 'usage');
}

export function isChildMessage(value: unknown): value is ChildMessage {
  return typeof value === 'object' && value !== null && 'type' in value && (value.type === 'ready' || value.type === 'error' || value.type === 'usage');
}

/**
 * The child side: waits for `start`, runs `start(options)` and reports the port; on `stop` or
 * when the parent goes away it runs `stop()` and exits (bounded: a stuck close cannot keep it alive).
 */
export function serveChild(start: (options: Record<string, string>) => Promise<number>, stop: () => Promise<void>): void {
  const send = (msg: ChildMessage) => process.send?.(msg);
  let stopping = false;
  const exit = async (code: number) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(code), 5000).unref();
    await stop().catch(() => undefined);
    // process.exit (not a signal) so --cpu-prof writes its profile.
    process.exit(code);
  };
  process.on('message', (raw: unknown) => {
    if (!isParentMessage(raw)) return;
    if (raw.type === 'stop') {
      void exit(0);
      return;
    }
    if (raw.type === 'usage') {
      const { user, system } = process.cpuUsage();
      const { rss, heapUsed, heapTotal } = process.memoryUsage();
      send({ type: 'usage', user, system, rss, heapUsed, heapTotal });
      return;
    }
    start(raw.options).then(
      (port) => send({ type: 'ready', port }),
      async (err: unknown) => {
        send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
        await exit(1);
      },
    );
  });
  process.on('disconnect', () => void exit(0));
}
