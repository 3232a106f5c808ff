/** Runs one batch; answers one outcome per item, in order, only once the batch has committed. */
export type BatchRunner<I, O> = (items: I[]) => Promise<O[]>;

export interface WriteBatcherOptions<I> {
  /** Most items in one batch (one transaction). */
  maxBatch: number;
  /** Batches in flight at once (their work before the head lock overlaps; the lock serializes the rest). */
  concurrency: number;
  /** Items with the same key never share a batch: a later one waits for the next, in arrival order. */
  key: (item: I) => string;
}

interface Waiting<I, O> {
  item: I;
  resolve: (outcome: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Groups concurrent writes into shared transactions: while a batch is in flight, new items wait;
 * the next batch takes all that waited (up to `maxBatch`). Nothing waits on a timer: a lone write
 * goes at once, as a batch of one; under load, one transaction (one head-lock hold, one WAL flush,
 * one view catch-up) serves many callers. Each caller gets its own outcome, after the shared commit.
 *
 * When a batch fails as a whole (an error the runner did not turn into a per-item outcome, such
 * as a constraint Postgres raised), nothing of it committed; its items are then run again one by
 * one, so the error reaches only the caller whose write caused it.
 */
export class WriteBatcher<I, O> {
  private readonly queue: Waiting<I, O>[] = [];
  private inFlight = 0;
  /** Keys of the batches in flight: a second write for the same agent waits for the first to commit. */
  private readonly busyKeys = new Set<string>();

  constructor(
    private readonly run: BatchRunner<I, O>,
    private readonly options: WriteBatcherOptions<I>,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) return;
      const keys = batch.map((w) => this.options.key(w.item));
      for (const k of keys) this.busyKeys.add(k);
      this.inFlight++;
      void this.runBatch(batch).finally(() => {
        for (const k of keys) this.busyKeys.delete(k);
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** The oldest waiting items with distinct keys, up to `maxBatch`; the rest keep their order. */
  private take(): Waiting<I, O>[] {
    const batch: Waiting<I, O>[] = [];
    const keys = new Set<string>();
    const left: Waiting<I, O>[] = [];
    for (const w of this.queue) {
      const key = this.options.key(w.item);
      if (batch.length < this.options.maxBatch && !keys.has(key) && !this.busyKeys.has(key)) {
        keys.add(key);
        batch.push(w);
      } else {
        // A key already taken blocks its later items, so one agent's writes keep their order.
        keys.add(key);
        left.push(w);
      }
    }
    this.queue.splice(0, this.queue.length, ...left);
    return batch;
  }

  private async runBatch(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const outcomes = await this.run(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      for (const w of batch) {
        try {
          const [outcome] = await this.run([w.item]);
          w.resolve(outcome!);
        } catch (one) {
          w.reject(one);
        }
      }
    }
  }
}
