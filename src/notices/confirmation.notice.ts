import { clip, LIMITS, plain, type Notice, type Text } from './model.js';

export interface ConfirmationRequest {
  id: string;
  agentId: string;
  /** The actor who asked (`slack:U…`, `teams:…`, `api:<token>`). */
  requestedBy: string;
  reason: string;
  /** `slack`, `teams` or `api`: an API token is not a person, so anyone with the role may confirm. */
  requestedPlatform: string;
  expiresAt: Date;
}

/** A restore waiting for a second person: Confirm and Cancel, in the incident's thread. */
export function confirmationNotice(c: ConfirmationRequest): Notice {
  const title: Text = [{ actor: c.requestedBy }, ' asks to restore ', { code: c.agentId }, ': ', clip(c.reason, LIMITS.reason)];
  const who = c.requestedPlatform === 'api' ? 'An API token is not a person: anyone with the restore role may confirm.' : 'A second person with the restore role must confirm.';
  return {
    kind: 'confirmation',
    tone: 'warning',
    icon: 'approval',
    title,
    fallback: plain(title),
    blocks: [
      { kind: 'lines', lines: [[who]] },
      { kind: 'context', text: ['Expires ', { time: c.expiresAt }, ` · confirmation ${c.id}`] },
    ],
    actions: [
      { kind: 'confirm', confirmationId: c.id, label: clip(`Confirm restore of ${c.agentId}`, LIMITS.buttonLabel), danger: false },
      { kind: 'cancel', confirmationId: c.id },
    ],
  };
}
