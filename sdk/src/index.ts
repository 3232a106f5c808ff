/**
 * `@armalo/agent-sdk`: local, push-fresh permission checks and approvals for AI agents.
 *
 * ```ts
 * const armalo = createArmaloClient({ url, token, agentId });
 * await armalo.ready();
 * const answer = armalo.check('payments:transfer', { amount: 120 });
 * ```
 */
import { ArmaloClient } from './client.js';
import type { ArmaloClientOptions } from './types.js';

export { ArmaloClient } from './client.js';
export { ArmaloError } from './errors.js';
export { SseParser, type SseEvent, type SseHandlers } from './sse.js';
export type * from './types.js';

/** Creates a client and starts its change stream at once; `ready()` resolves on the first snapshot. */
export function createArmaloClient(options: ArmaloClientOptions): ArmaloClient {
  return new ArmaloClient(options);
}
