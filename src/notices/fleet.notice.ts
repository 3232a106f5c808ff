import type { FleetIncidentView } from '../fleet/fleet-view.js';
import { clip, LIMITS, plain, type Notice, type Text } from './model.js';
import { codeList } from './spans.js';
import { restoreConfirmationNotice } from './confirmation.notice.js';

const VERB = { contain: 'contained', narrow: 'narrowed' } as const;
const agents = (n: number) => `${n} agent${n === 1 ? '' : 's'}`;

/**
 * A fleet incident's root notice in the incidents channel: the selector, the action and the count,
 * updated in place as restores lift it. One notice for the whole set: the agents' own incidents
 * are not announced one by one.
 */
export function fleetIncidentNotice(view: FleetIncidentView): Notice {
  const closed = view.status === 'closed';
  const selector: Text = [{ code: view.selectorText }];
  const title: Text = closed
    ? ['Resolved: fleet incident ', ...selector, ` (${agents(view.count)} ${VERB[view.action]}, all lifted${view.closedBy === 'system:ttl' ? ' by their ttl' : ''})`]
    : ['Fleet incident: ', { strong: `${agents(view.count)} ${VERB[view.action].toUpperCase()}` }, ' by selector ', ...selector];
  const facts: { label: string; value: Text }[] = [
    { label: 'Selector', value: selector },
    { label: 'Action', value: [view.action, ...(view.scopes.length ? [' ', ...codeList(view.scopes)] : [])] },
    { label: 'Agents', value: [`${view.count}`] },
    { label: 'Opened', value: [{ time: view.openedAt }, ' by ', { actor: view.actor }, ': ', clip(view.reason, LIMITS.reason)] },
    { label: 'Still held', value: [`${view.heldNow} of ${view.count}`, ...(view.restored ? [` · restored ${view.restored}`] : []), ...(view.expired ? [` · lifted by ttl ${view.expired}`] : [])] },
  ];
  if (view.expiresAt && view.heldNow > 0) facts.push({ label: 'Lifts itself', value: [{ time: view.expiresAt }] });
  if (closed) facts.push({ label: 'Closed', value: [...(view.closedAt ? [{ time: view.closedAt }, ' '] : []), 'by ', view.closedBy ? { actor: view.closedBy } : 'unknown'] });
  else facts.push({ label: 'To restore', value: [{ command: `restore ${view.selectorText} <reason>` }] });
  const shown = view.sample.slice(0, 10);
  return {
    kind: 'fleet-incident',
    tone: closed ? 'success' : view.action === 'narrow' ? 'warning' : 'danger',
    icon: closed ? 'resolved' : view.action === 'narrow' ? 'narrowed' : 'contained',
    title,
    fallback: `${closed ? 'Resolved: fleet incident' : 'Fleet incident'}: ${view.count} agents ${VERB[view.action]} by selector ${view.selectorText}`,
    blocks: [
      { kind: 'facts', facts },
      {
        kind: 'context',
        text: ['Agents: ', ...codeList(shown), ...(view.count > shown.length ? [` and ${view.count - shown.length} more`] : []), ` · fleet incident ${view.id}`],
      },
    ],
  };
}

/** A restore by the selector, as a line in the fleet incident's thread. */
export interface FleetRestoreLine {
  actor: string;
  restored: number;
  /** Agents the policy keeps held (no fresh evaluation), first few. */
  held: string[];
  heldCount: number;
  at: string;
}

export function fleetRestoreNotice(line: FleetRestoreLine): Notice {
  const title: Text = [{ actor: line.actor }, ` restored ${agents(line.restored)}`];
  if (line.heldCount > 0) title.push(`; ${agents(line.heldCount)} stay held (no fresh evaluation since their incident began): `, ...codeList(line.held), ...(line.heldCount > line.held.length ? [` and ${line.heldCount - line.held.length} more`] : []));
  return { kind: 'fleet-step', tone: line.heldCount ? 'warning' : 'success', title, fallback: plain(title), blocks: [{ kind: 'context', text: ['At ', { time: line.at }] }] };
}

export interface FleetConfirmationRequest {
  id: string;
  selectorText: string;
  count: number;
  requestedBy: string;
  requestedPlatform: string;
  reason: string;
  expiresAt: Date;
  decided?: { outcome: 'confirmed' | 'cancelled'; by: string; reason: string | null; at: Date };
}

/** A restore of a fleet waiting for a second person, in the fleet incident's thread: one click covers the whole set. */
export function fleetConfirmationNotice(c: FleetConfirmationRequest): Notice {
  return restoreConfirmationNotice({
    ...c,
    title: [{ actor: c.requestedBy }, ` asks to restore ${agents(c.count)} by selector `, { code: c.selectorText }, ': ', clip(c.reason, LIMITS.reason)],
    secondPerson: 'A second person with the restore role must confirm; one confirmation covers every agent of the set.',
    confirmLabel: `Confirm restore of ${agents(c.count)}`,
  });
}
