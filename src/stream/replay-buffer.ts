import type { WireApproval } from '../domain/wire.js';

/** One remembered change: an agent reached `version`, or a request got a new status at view version `version`. */
export type ReplayEntry = { version: bigint; agentId: string; approval?: WireApproval };

/** What a resume from a version sends instead of a snapshot. */
export interface Replay {
  /** Agents that changed after the version, oldest change first (each once). */
  agentIds: string[];
  /** The newest status of each request that changed at or after the version, in the order they happened. */
  approvals: WireApproval[];
}

/**
 * The recent changes a replica has seen, bounded to `capacity` entries (a ring: memory does not
 * grow with the rate of changes). It tells apart what it can replay from what it has forgotten:
 * `agentFloor` / `approvalFloor` are the highest versions of forgotten entries (at first, the view's
 * version when the buffer started, since it saw nothing before that).
 *
 * Agent entries carry the agent's own version, so a resume from V needs the agents above V.
 * Approval entries carry the view's version when they happened (requests have no version of their
 * own), and several may share one: a resume from V replays those at V too, and can only be served
 * when nothing at V was forgotten. Replaying a status twice is harmless; missing one is not.
 */
export class ReplayBuffer {
  private readonly entries: (ReplayEntry | undefined)[];
  private next = 0;
  private count = 0;
  private agentFloor: bigint;
  private approvalFloor: bigint;

  constructor(
    readonly capacity: number,
    startVersion: bigint,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('the replay buffer needs a capacity of at least 1');
    this.entries = new Array<ReplayEntry | undefined>(capacity);
    this.agentFloor = startVersion;
    this.approvalFloor = startVersion;
  }

  add(entry: ReplayEntry): void {
    const evicted = this.entries[this.next];
    if (evicted) {
      if (evicted.approval) {
        if (evicted.version > this.approvalFloor) this.approvalFloor = evicted.version;
      } else if (evicted.version > this.agentFloor) {
        this.agentFloor = evicted.version;
      }
    } else {
      this.count++;
    }
    this.entries[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
  }

  /** From now on nothing before `version` can be replayed (used when a change's outcome could not be learnt). */
  forgetUpTo(version: bigint): void {
    if (version > this.agentFloor) this.agentFloor = version;
    if (version > this.approvalFloor) this.approvalFloor = version;
  }

  /**
   * The changes after `from` that `inScope` accepts, or undefined when some may have been forgotten
   * (the caller sends a snapshot then). `from` must not be ahead of the view (the caller checks).
   */
  since(from: bigint, inScope: (agentId: string) => boolean): Replay | undefined {
    if (from < this.agentFloor || from <= this.approvalFloor) return undefined;
    const agentVersions = new Map<string, bigint>();
    const approvals = new Map<string, WireApproval>();
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) {
      const entry = this.entries[(start + i) % this.capacity]!;
      if (!inScope(entry.agentId)) continue;
      if (entry.approval) {
        if (entry.version < from) continue;
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
