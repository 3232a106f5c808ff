// Kept for callers of the old module: the incident notices are built in src/notices/incident.notice.ts
// and rendered by ./render.ts.
import type { IncidentStep, IncidentView } from '../incidents/incident-view.js';
import { incidentNotice, incidentStepNotice } from '../notices/incident.notice.js';
import { renderTeams, teamsLine } from './render.js';

/** A step after the first, as Teams message text in the incident's thread. */
export const teamsStepLine = (step: IncidentStep): string => teamsLine(incidentStepNotice(step));

/** The incident notice as an Adaptive Card; updated in place as the incident moves on. */
export const incidentCard = (view: IncidentView): Record<string, unknown> => renderTeams(incidentNotice(view));
