import type { Db } from '../../db/database.js';
import type { Clock } from '../../core/clock.js';
import { incidentIdSchema, incidentListQuerySchema } from '../../api/schemas.js';
import { encodeCursor } from '../../core/cursor.js';
import { notFound } from '../../domain/errors.js';
import { incidentAgentId, listIncidents, listIncidentsWithFleet, loadIncidentDetail } from '../../incidents/incidents.repository.js';
import { assertAgentInScope, assertRecordInScope } from '../auth.js';
import { queryObject } from '../query.js';
import type { Router } from '../router.js';
import { loadFleetIncidentDetail } from '../../fleet/fleet-view.js';
import { parseInput } from '../validate.js';

/**
 * Incidents, read-only. Reading them is like reading agents (an incident is the story of an agent's
 * permission state): admin and platform tokens see every incident, an agent token its agent's only.
 */
export function addIncidentRoutes(router: Router, deps: { db: Db; clock: Clock }): void {
  router.add({
    method: 'GET',
    path: '/v1/incidents',
    auth: 'platform',
    handler: async (ctx) => {
      const query = parseInput(incidentListQuerySchema, queryObject(ctx.query), 'query');
      if (query.agentId !== undefined) assertAgentInScope(ctx.token, query.agentId);
      const scope = ctx.token?.scope;
      const agentId = scope?.kind === 'agent' ? scope.agentId : query.agentId;
      const after = query.cursor?.at !== undefined ? { at: query.cursor.at, id: query.cursor.id } : undefined;
      // Fleet incidents name a selector, not one agent: listed for admin and platform tokens when no agent is asked for.
      const page =
        agentId === undefined && scope?.kind !== 'agent'
          ? await listIncidentsWithFleet(deps.db, { status: query.status }, { limit: query.limit, after })
          : await listIncidents(deps.db, { status: query.status, agentId }, { limit: query.limit, after });
      return { status: 200, body: { items: page.items, nextCursor: page.nextAfter ? encodeCursor('incidents', page.nextAfter) : null } };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/incidents/{id}',
    auth: 'platform',
    handler: async (ctx) => {
      const id = parseInput(incidentIdSchema, ctx.params.id, 'incident id');
      parseInput(incidentListQuerySchema.pick({}), queryObject(ctx.query), 'query');
      // A fleet incident (POST /v1/actions) names a selector, not one agent: admin and platform tokens only.
      if (ctx.token?.scope.kind !== 'agent') {
        const fleet = await loadFleetIncidentDetail(deps.db, id);
        if (fleet) return { status: 200, body: fleet };
      }
      await assertRecordInScope(ctx.token, () => incidentAgentId(deps.db, id), () => notFound(`unknown incident ${id}`));
      const incident = await loadIncidentDetail(deps.db, id, deps.clock.now());
      if (!incident) throw notFound(`unknown incident ${id}`);
      return { status: 200, body: incident };
    },
  });
}
