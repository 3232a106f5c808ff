import type { IncidentStep, IncidentView } from '../incidents/incident-view.js';
import { escapeMrkdwn } from './escape.js';
import type { Block } from './reply.blocks.js';

/** How an actor reads in Slack: people as mentions, tokens and the system by name. */
export function slackActor(actor: string): string {
  const [kind, id] = [actor.slice(0, actor.indexOf(':')), actor.slice(actor.indexOf(':') + 1)];
  if (kind === 'slack' && /^[UW][A-Z0-9]+$/.test(id)) return `<@${id}>`;
  if (kind === 'api') return `API token \`${escapeMrkdwn(id)}\``;
  if (actor === 'system:ttl') return 'ttl expiry';
  return escapeMrkdwn(actor);
}

const VERB: Record<IncidentStep['kind'], string> = { narrow: 'narrowed', contain: 'contained', revoke: 'revoked', restore: 'restored' };
const STATUS_ICON: Record<string, string> = { active: ':white_check_mark:', narrowed: ':large_orange_diamond:', contained: ':rotating_light:', revoked: ':no_entry:', decommissioned: ':wastebasket:' };
const time = (d: Date) => `<!date^${Math.floor(d.getTime() / 1000)}^{date_short_pretty} {time}|${d.toISOString()}>`;

export function stepLine(step: IncidentStep): string {
  const scopes = step.scopes.length ? ` ${step.scopes.map((s) => `\`${escapeMrkdwn(s)}\``).join(', ')}` : '';
  const grants = step.grants.length ? ` (grants: ${step.grants.map((g) => `\`${escapeMrkdwn(g)}\``).join(', ')})` : '';
  const ttl = step.expiresAt ? ` until ${time(step.expiresAt)}` : '';
  const glass = step.breakGlass ? ':rotating_light: *BREAK-GLASS* (no second person) ' : '';
  return `${glass}${slackActor(step.actor)} ${VERB[step.kind]}${scopes}${ttl}${grants}: ${escapeMrkdwn(step.reason)}`;
}

export function expiryLine(step: IncidentStep): string {
  return `:hourglass: The ${step.kind} by ${slackActor(step.actor)} reached its ttl and was lifted${step.liftedAt ? ` at ${time(step.liftedAt)}` : ''}.`;
}

/** The incident's root message, updated in place as the incident moves on. */
export function incidentRoot(view: IncidentView): { text: string; blocks: Block[] } {
  const { agent } = view;
  const closed = view.status === 'closed';
  const title = closed
    ? `:white_check_mark: Resolved: ${escapeMrkdwn(agent.name)} (\`${escapeMrkdwn(agent.id)}\`) is ${agent.status}`
    : `${STATUS_ICON[agent.status] ?? ':warning:'} Incident: ${escapeMrkdwn(agent.name)} (\`${escapeMrkdwn(agent.id)}\`) is *${agent.status.toUpperCase()}*`;
  const opener = view.steps.find((s) => s.actionId === view.openedByActionId) ?? view.steps[0];
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: title } }];
  const lines: string[] = [];
  if (opener) lines.push(`*Opened* ${time(view.openedAt)}: ${stepLine(opener)}`);
  if (view.heldGrants.length) lines.push(`*Not usable now:* ${view.heldGrants.map((g) => `\`${escapeMrkdwn(g.scope)}\` ${g.state}`).join(', ')}`);
  else if (!closed) lines.push('*Not usable now:* nothing beyond the agent status');
  const lifts = view.steps.filter((s) => s.expiresAt && !s.liftedAt);
  for (const s of lifts) lines.push(`*Lifts itself* ${time(s.expiresAt!)} (${s.kind})`);
  if (closed) lines.push(`*Closed* ${view.closedAt ? time(view.closedAt) : ''} by ${view.closedBy ? slackActor(view.closedBy) : 'unknown'}`);
  else lines.push(`*To restore:* \`/armalo restore ${escapeMrkdwn(agent.id)} &lt;reason&gt;\``);
  blocks.push({ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 2900) } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Owner: ${escapeMrkdwn(agent.owner)} · risk tier: ${agent.riskTier} · ${view.steps.length} step(s) · incident ${view.id}` }] });
  return { text: escapeMrkdwn(`${closed ? 'Resolved' : 'Incident'}: ${agent.id} is ${agent.status}`), blocks };
}
