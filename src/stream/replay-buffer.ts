import type { WireApproval } from '../domain/wire.js';

/**
 * One remembered change, seen by this replica at `at` (ms): an agent reached `version`, or a request
 * got a new status (then `version` is the view's version at the time).
 */
export type ReplayEntry = { version: bigint; agentId: string; at: number; approval?: WireApproval };

/** What a resume from a version sends instead of a snapshot. */
export interface Replay {
  /** Agents that changed after the version, oldest change first (each once). */
  agentIds: string[];
  /** The newest status of each request that may have changed since, in the order they happened. */
  approvals: WireApproval[];
}

/**
 * The recent changes a replica has seen, bounded to `capacity` entries (a ring: memory does not
 * grow with the rate of changes), and able to tell what it can replay from what it has forgotten.
 *
 * Agents carry a global version, so "changed after V" is exact: the agents whose entries are above
 * V. Requests carry none, and the client's V may come from another replica, whose view was ahead
 * of ours when the request changed: we may have recorded that change at a version below V. What
 * bounds it is time: our view lags the database by at most `lagWindowMs` while it is fresh, so any
 * request change the client has not seen reached us no earlier than `lagWindowMs` before our view
 * reached V. A resume replays every request status recorded since then (newest per request;
 * sending a status the client has is harmless, missing one is not). It can only do so when nothing
 * from that time on was forgotten, and not for a time before the buffer started.
 */
export class ReplayBuffer {
  private readonly entries: (ReplayEntry | undefined)[];
  private next = 0;
  private count = 0;
  /** Resumes from below this version cannot be served: agent changes at or below it were forgotten. */
  private agentFloor: bigint;
  /** When our view reached `agentFloor` (at first: the start, the latest it can have been). */
  private agentFloorAt: number;
  /** Request changes seen up to this time (ms) may have been forgotten (at first: the start). */
  private approvalFloorAt: number;

  constructor(
    readonly capacity: number,
    startVersion: bigint,
    startAt: number,
    private readonly lagWindowMs: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('the replay buffer needs a capacity of at least 1');
    this.entries = new Array<ReplayEntry | undefined>(capacity);
    this.agentFloor = startVersion;
    this.agentFloorAt = startAt;
    this.approvalFloorAt = startAt;
  }

  /** Adds a change; agent changes must come in version order (the view reports them so). */
  add(entry: ReplayEntry): void {
    const evicted = this.entries[this.next];
    if (evicted) {
      if (evicted.approval) this.approvalFloorAt = Math.max(this.approvalFloorAt, evicted.at);
      else if (evicted.version > this.agentFloor) {
        this.agentFloor = evicted.version;
        this.agentFloorAt = evicted.at;
      }
    } else {
      this.count++;
    }
    this.entries[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Nothing before now can be replayed (a change's outcome could not be learnt). */
  forgetUpTo(version: bigint, at: number): void {
    if (version > this.agentFloor) {
      this.agentFloor = version;
      this.agentFloorAt = at;
    }
    this.approvalFloorAt = Math.max(this.approvalFloorAt, at);
  }

  /**
   * The changes since `from` that `inScope` accepts, or undefined when some may have been forgotten
   * (the caller sends a snapshot then). `from` must not be ahead of the view (the caller checks).
   */
  since(from: bigint, inScope: (agentId: string) => boolean): Replay | undefined {
    if (from < this.agentFloor) return undefined;
    const start = (this.next - this.count + this.capacity) % this.capacity;
    const at = (i: number) => this.entries[(start + i) % this.capacity]!;
    // When our view reached `from`: the first agent entry at or above it (agent entries come in
    // version order), or the forgotten one that set the floor.
    let reachedAt = from === this.agentFloor ? this.agentFloorAt : undefined;
    for (let i = 0; i < this.count && reachedAt === undefined; i++) {
      const entry = at(i);
      if (!entry.approval && entry.version >= from) reachedAt = entry.at;
    }
    if (reachedAt === undefined) return undefined;
    const cutoff = reachedAt - this.lagWindowMs;
    if (cutoff <= this.approvalFloorAt) return undefined;

    const agentVersions = new Map<string, bigint>();
    const approvals = new Map<string, WireApproval>();
    for (let i = 0; i < this.count; i++) {
      const entry = at(i);
      if (!inScope(entry.agentId)) continue;
      if (entry.approval) {
        if (entry.at < cutoff) continue;
        // Re-inserted so the map's order is that of each request's newest change.
        approvals.delete(entry.approval.id);
        approvals.set(entry.approval.id, entry.approval);
      } else if (entry.version > from) {
        const seen = agentVersions.get(entry.agentId);
        if (seen === undefined || entry.version > seen) agentVersions.set(entry.agentId, entry.version);
      }
    }
    const agentIds = [...agentVersions.entries()].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)).map(([id]) => id);
    return { agentIds, approvals: [...approvals.values()] };
  }
}
