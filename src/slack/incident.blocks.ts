// Kept for callers of the old module: the incident notices are built in src/notices/incident.notice.ts
// and rendered by ./render.ts.
import type { IncidentStep, IncidentView } from '../incidents/incident-view.js';
import { incidentExpiryNotice, incidentNotice, incidentStepNotice } from '../notices/incident.notice.js';
import { renderSlack, slackActor, slackTitle, type Block } from './render.js';

export { slackActor };

/** A step after the first, as the mrkdwn line in the incident's thread. */
export const stepLine = (step: IncidentStep): string => slackTitle(incidentStepNotice(step));

/** A lifted ttl, as the mrkdwn line in the incident's thread. */
export const expiryLine = (step: IncidentStep): string => slackTitle(incidentExpiryNotice(step));

/** The incident's root message, updated in place as the incident moves on. */
export const incidentRoot = (view: IncidentView): { text: string; blocks: Block[] } => renderSlack(incidentNotice(view));
