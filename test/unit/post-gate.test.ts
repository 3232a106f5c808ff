import { describe, expect, it } from 'vitest';
import { PostGate } from '../../src/slack/post-gate.js';

describe('PostGate: turns in a rate-limited Slack channel', () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it('a message posts at once where no refused message waits its turn', () => {
    const c = clock();
    const gate = new PostGate(c.now, 1000);
    for (let i = 0; i < 20; i++) expect(gate.waitFor(i % 2 ? 'C1' : 'C2', `k${i}`)).toBe(0);
    gate.limited('C1', 'refused', 3000);
    // Another channel is not held back by C1's queue.
    for (let i = 0; i < 5; i++) expect(gate.waitFor('C2', `m${i}`)).toBe(0);
    // Once the refused message has had its turn and posted, C1 takes new messages at once again.
    c.advance(3000);
    expect(gate.waitFor('C1', 'refused')).toBe(0);
    gate.posted('C1', 'refused');
    expect(gate.waitFor('C1', 'fresh')).toBe(0);
  });

  it('a new message joins the end of the queue where refused messages still wait, and asking again keeps its place', () => {
    const c = clock();
    const gate = new PostGate(c.now, 1000);
    expect(gate.limited('C1', 'r0', 2000)).toBe(2000);
    expect(gate.waitFor('C1', 'n1')).toBe(3000);
    expect(gate.waitFor('C1', 'n2')).toBe(4000);
    expect(gate.waitFor('C1', 'n1')).toBe(3000);
    // A refusal after them waits behind them.
    expect(gate.limited('C1', 'r1', 1000)).toBe(5000);
    c.advance(3000);
    // Its turn has come: asked twice before the post (the ledger, then the post), both say go.
    expect(gate.waitFor('C1', 'n1')).toBe(0);
    expect(gate.waitFor('C1', 'n1')).toBe(0);
    gate.posted('C1', 'n1');
    expect(gate.waitFor('C1', 'n2')).toBe(1000);
    // Turns are still given out (r1 at +5 s): a newcomer goes after them.
    expect(gate.waitFor('C1', 'n3')).toBe(3000);
  });

  it('refused messages get turns one slot apart, none before its Retry-After, and each waits for its own', () => {
    const c = clock();
    const gate = new PostGate(c.now, 1000);
    expect(['k0', 'k1', 'k2', 'k3'].map((k) => gate.limited('C1', k, 2000))).toEqual([2000, 3000, 4000, 5000]);
    // Another channel's turns are its own.
    expect(gate.limited('C2', 'k0', 1000)).toBe(1000);
    // Asking before its turn: the same turn, not a later one.
    c.advance(500);
    expect(gate.waitFor('C1', 'k2')).toBe(3500);
    c.advance(1500);
    expect(gate.waitFor('C1', 'k0')).toBe(0);
    expect(gate.waitFor('C1', 'k1')).toBe(1000);
    // Refused again at its turn (another client used the channel): a new turn after the last one.
    expect(gate.limited('C1', 'k0', 1000)).toBe(4000);
    c.advance(1000);
    expect(gate.waitFor('C1', 'k1')).toBe(0);
    expect(gate.waitFor('C1', 'k1')).toBe(0);
  });

  it('a longer Retry-After pushes the turns after it; turns nobody came back for are dropped', () => {
    const c = clock();
    const gate = new PostGate(c.now, 1000);
    expect(gate.limited('C1', 'a', 1000)).toBe(1000);
    expect(gate.limited('C1', 'b', 5000)).toBe(5000);
    expect(gate.limited('C1', 'c', 1000)).toBe(6000);
    c.advance(120_000);
    // 'a', 'b' and 'c' never came back: a new refusal waits only its own Retry-After.
    expect(gate.limited('C1', 'd', 1000)).toBe(1000);
  });
});
