import type { IncidentStep, IncidentView } from '../incidents/incident-view.js';
import { clip, LIMITS, plain, type Icon, type Notice, type Text } from './model.js';
import { codeList } from './spans.js';

/** What each step did, in the past tense: the one verb map every platform shows. */
export const STEP_VERB: Record<IncidentStep['kind'], string> = { narrow: 'narrowed', contain: 'contained', revoke: 'revoked', restore: 'restored' };

const STATUS_ICON: Record<string, Icon> = { active: 'active', narrowed: 'narrowed', contained: 'contained', revoked: 'revoked', decommissioned: 'decommissioned' };

/** One step of an incident as a line: who did what, to which scopes, until when, and why. */
export function stepText(step: IncidentStep): Text {
  const text: Text = [];
  if (step.breakGlass) text.push({ strong: 'BREAK-GLASS' }, ' (no second person) ');
  text.push({ actor: step.actor }, ` ${STEP_VERB[step.kind]}`);
  if (step.scopes.length) text.push(' ', ...codeList(step.scopes));
  if (step.expiresAt) text.push(' until ', { time: step.expiresAt });
  if (step.grants.length) text.push(' (grants: ', ...codeList(step.grants), ')');
  text.push(': ', clip(step.reason, LIMITS.reason));
  return text;
}

/** The incident's root notice, updated in place as the incident moves on. */
export function incidentNotice(view: IncidentView): Notice {
  const { agent } = view;
  const closed = view.status === 'closed';
  const name = clip(agent.name, LIMITS.title - 80);
  const title: Text = closed
    ? ['Resolved: ', name, ' (', { code: agent.id }, `) is ${agent.status}`]
    : ['Incident: ', name, ' (', { code: agent.id }, ') is ', { strong: agent.status.toUpperCase() }];
  const opener = view.steps.find((s) => s.actionId === view.openedByActionId) ?? view.steps[0];
  const facts: { label: string; value: Text }[] = [];
  if (opener) facts.push({ label: 'Opened', value: [{ time: view.openedAt }, ': ', ...stepText(opener)] });
  if (view.heldGrants.length) {
    facts.push({ label: 'Not usable now', value: view.heldGrants.flatMap((g, i): Text => [...(i ? [', '] : []), { code: g.scope }, ` ${g.state}`]) });
  } else if (!closed) {
    facts.push({ label: 'Not usable now', value: ['nothing beyond the agent status'] });
  }
  for (const s of view.steps.filter((x) => x.expiresAt && !x.liftedAt)) facts.push({ label: 'Lifts itself', value: [{ time: s.expiresAt! }, ` (${s.kind})`] });
  if (closed) facts.push({ label: 'Closed', value: [...(view.closedAt ? [{ time: view.closedAt }, ' '] : []), 'by ', view.closedBy ? { actor: view.closedBy } : 'unknown'] });
  else facts.push({ label: 'To restore', value: [{ command: `restore ${agent.id} <reason>` }] });
  return {
    kind: 'incident',
    tone: closed ? 'success' : agent.status === 'narrowed' ? 'warning' : 'danger',
    icon: closed ? 'resolved' : (STATUS_ICON[agent.status] ?? 'warning'),
    title,
    fallback: `${closed ? 'Resolved' : 'Incident'}: ${agent.id} is ${agent.status}`,
    blocks: [
      { kind: 'facts', facts },
      { kind: 'context', text: ['Owner: ', clip(agent.owner, LIMITS.line), ` · risk tier: ${agent.riskTier} · ${view.steps.length} step(s) · incident ${view.id}`] },
    ],
  };
}

/** A step after the first, as a line in the incident's thread. */
export function incidentStepNotice(step: IncidentStep): Notice {
  const title = stepText(step);
  return {
    kind: 'incident-step',
    tone: step.breakGlass ? 'danger' : step.kind === 'restore' ? 'success' : 'warning',
    ...(step.breakGlass ? { icon: 'break-glass' as const } : {}),
    title,
    fallback: plain(title),
    blocks: [],
  };
}

/** A step's ttl ran out and the step was lifted: a line in the incident's thread. */
export function incidentExpiryNotice(step: IncidentStep): Notice {
  const title: Text = [`The ${step.kind} by `, { actor: step.actor }, ' reached its ttl and was lifted', ...(step.liftedAt ? [' at ', { time: step.liftedAt }] : []), '.'];
  return { kind: 'incident-expiry', tone: 'info', icon: 'expired', title, fallback: plain(title), blocks: [] };
}
