import { createHash } from 'node:crypto';
import type { Policy } from './policy.schema.js';

/**
 * The running policy of one process. Every service is handed the same {@link Policy} object
 * (`holder.policy`) and reads its keys when it acts, so a reload swaps that object's top-level keys
 * in place, in one synchronous step: no request ever sees half an old and half a new policy, and no
 * service needs to be rebuilt. Services that derive data from the policy (people, routing flags, a
 * serialised routing list) re-derive it when the key they derive from is a new object (see
 * {@link derivedFrom}), or listen through {@link PolicyHolder.onChange}.
 */
export class PolicyHolder {
  #hash: string;
  readonly #listeners = new Set<PolicyListener>();

  constructor(readonly policy: Policy) {
    this.#hash = policyHash(policy);
  }

  /** sha256 of the canonical JSON of the validated policy (what `/readyz` and the metric show). */
  get hash(): string {
    return this.#hash;
  }

  /**
   * Swaps in a validated policy (atomically: no await between the first and the last key). Answers
   * false and changes nothing when it is the same policy. Listeners run after the swap.
   */
  replace(next: Policy): boolean {
    const hash = policyHash(next);
    if (hash === this.#hash) return false;
    const previous: Policy = { ...this.policy };
    const target = this.policy as unknown as Record<string, unknown>;
    for (const key of Object.keys(target)) if (!Object.hasOwn(next, key)) delete target[key];
    Object.assign(target, next);
    const previousHash = this.#hash;
    this.#hash = hash;
    for (const listener of this.#listeners) listener({ previous, previousHash, current: this.policy, hash });
    return true;
  }

  /** Called after every swap; answers the unsubscribe function. Listeners must not throw. */
  onChange(listener: PolicyListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export type PolicyListener = (change: { previous: Policy; previousHash: string; current: Policy; hash: string }) => void;

/** sha256 (hex) of the canonical JSON of a validated policy: equal policies hash equal whatever the key order in the file. */
export function policyHash(policy: Policy): string {
  return createHash('sha256').update(canonicalJson(policy)).digest('hex');
}

/** JSON with object keys sorted at every level (arrays keep their order: routing rules are read top to bottom). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner !== undefined) out[key] = sortKeys(inner);
  }
  return out;
}

/**
 * A value derived from one part of the policy, recomputed whenever that part is a different object
 * (a reload replaces every top-level key with a new object), so derived data is never stale and is
 * computed once per policy version, not once per call.
 */
export function derivedFrom<K extends object, V>(source: () => K, derive: (key: K) => V): () => V {
  let lastKey: K | undefined;
  let lastValue: V | undefined;
  return () => {
    const key = source();
    if (key !== lastKey) {
      lastValue = derive(key);
      lastKey = key;
    }
    return lastValue as V;
  };
}

/** A setting given either as a value (fixed) or as a function read at each use (live policy). */
export type Live<T> = T | (() => T);

export function readLive<T>(value: Live<T>): T {
  return typeof value === 'function' ? (value as () => T)() : value;
}
