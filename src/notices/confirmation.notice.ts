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
  /** Set once it was decided: the notice then shows the outcome and no buttons. */
  decided?: { outcome: 'confirmed' | 'cancelled'; by: string; reason: string | null; at: Date };
}

/** A restore waiting for a second person: Confirm and Cancel, in the incident's thread. */
export function confirmationNotice(c: ConfirmationRequest): Notice {
  return restoreConfirmationNotice({
    ...c,
    title: [{ actor: c.requestedBy }, ' asks to restore ', { code: c.agentId }, ': ', clip(c.reason, LIMITS.reason)],
    secondPerson: 'A second person with the restore role must confirm.',
    confirmLabel: `Confirm restore of ${c.agentId}`,
  });
}

/**
 * A restore waiting for a second person, of one agent or of a fleet (`fleetConfirmationNotice`):
 * who may confirm, when it expires, Confirm and Cancel. Once decided, the outcome in place of the
 * buttons, so a copy left in a thread (a restore cancelled because its incident ended, or confirmed
 * elsewhere) cannot be clicked.
 */
export function restoreConfirmationNotice(c: {
  id: string;
  title: Text;
  requestedPlatform: string;
  expiresAt: Date;
  decided?: ConfirmationRequest['decided'];
  /** Who must confirm, when a person asked (an API token is not a person: anyone with the role may). */
  secondPerson: string;
  confirmLabel: string;
}): Notice {
  const { title } = c;
  if (c.decided) {
    const d = c.decided;
    const confirmed = d.outcome === 'confirmed';
    const outcome: Text = confirmed
      ? [{ strong: 'Confirmed' }, ' by ', { actor: d.by }, ' at ', { time: d.at }]
      : [{ strong: 'Cancelled' }, ' by ', { actor: d.by }, ...(d.reason ? [': ', clip(d.reason, LIMITS.reason)] : []), ' at ', { time: d.at }, '. Nothing was restored by it.'];
    return {
      kind: 'confirmation',
      tone: confirmed ? 'success' : 'info',
      icon: confirmed ? 'approved' : 'cancelled',
      title,
      fallback: `${plain(title)} (${confirmed ? 'confirmed' : 'cancelled'})`,
      blocks: [
        { kind: 'lines', lines: [outcome] },
        { kind: 'context', text: [`confirmation ${c.id}`] },
      ],
    };
  }
  const who = c.requestedPlatform === 'api' ? 'An API token is not a person: anyone with the restore role may confirm.' : c.secondPerson;
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
      { kind: 'confirm', confirmationId: c.id, label: clip(c.confirmLabel, LIMITS.buttonLabel), danger: false },
      { kind: 'cancel', confirmationId: c.id },
    ],
  };
}
