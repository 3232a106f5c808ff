import type { IncidentStep, IncidentView } from '../incidents/incident-view.js';
import { escapeMarkdown as md } from './escape.js';

const VERB: Record<IncidentStep['kind'], string> = { narrow: 'narrowed', contain: 'contained', revoke: 'revoked', restore: 'restored' };

export function teamsStepLine(step: IncidentStep): string {
  const scopes = step.scopes.length ? ` ${step.scopes.join(', ')}` : '';
  const ttl = step.expiresAt ? ` until ${step.expiresAt.toISOString()}` : '';
  // Scopes match the validated scope pattern; actor and reason are free text.
  const glass = step.breakGlass ? 'BREAK-GLASS (no second person): ' : '';
  return `${glass}${md(step.actor)} ${VERB[step.kind]}${scopes}${ttl}: ${md(step.reason)}`;
}

/** The incident notice as an Adaptive Card; updated in place as the incident moves on. */
export function incidentCard(view: IncidentView): Record<string, unknown> {
  const closed = view.status === 'closed';
  const opener = view.steps.find((s) => s.actionId === view.openedByActionId) ?? view.steps[0];
  const body: Record<string, unknown>[] = [
    {
      type: 'TextBlock',
      text: closed ? `Resolved: ${md(view.agent.name)} (${md(view.agent.id)}) is ${view.agent.status}` : `Incident: ${md(view.agent.name)} (${md(view.agent.id)}) is ${view.agent.status.toUpperCase()}`,
      weight: 'Bolder',
      size: 'Medium',
      wrap: true,
      color: closed ? 'Good' : 'Attention',
    },
  ];
  if (opener) body.push({ type: 'TextBlock', text: `Opened ${view.openedAt.toISOString()}: ${teamsStepLine(opener)}`, wrap: true });
  if (view.heldGrants.length) body.push({ type: 'TextBlock', text: `Not usable now: ${view.heldGrants.map((g) => `${g.scope} ${g.state}`).join(', ')}`, wrap: true });
  body.push({ type: 'TextBlock', text: closed ? `Closed ${view.closedAt?.toISOString() ?? ''} by ${view.closedBy ? md(view.closedBy) : 'unknown'}` : `To restore: restore ${md(view.agent.id)} \\<reason\\>`, wrap: true, isSubtle: true });
  body.push({ type: 'TextBlock', text: `Incident ${view.id} · ${view.steps.length} step(s)`, wrap: true, isSubtle: true, size: 'Small' });
  return { type: 'AdaptiveCard', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', version: '1.5', body };
}
