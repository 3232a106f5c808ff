/**
 * Events the system emits (the outbound webhook stream carries every one). Envelope shape is the
 * same as inbound Armalo events: `{id, type, createdAt, data: {agentId, ...}}`.
 */
export const EVENT_TYPES = [
  'agent.registered',
  'agent.updated',
  'agent.narrowed',
  'agent.contained',
  'agent.revoked',
  'agent.restored',
  'agent.action_expired',
  'agent.decommissioned',
  'approval.requested',
  'approval.decision',
  'approval.escalated',
  'approval.approved',
  'approval.denied',
  'approval.expired',
  'approval.cancelled',
  'trust.pact_saved',
  'trust.evaluation_recorded',
  'trust.score_changed',
  'trust.pact_violated',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface DomainEvent<T = Record<string, unknown>> {
  id: string;
  type: EventType;
  createdAt: string;
  data: { agentId: string } & T;
}
