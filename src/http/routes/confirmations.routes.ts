import type { ConfirmationService } from '../../confirmations/confirmations.service.js';
import { notFound } from '../../domain/errors.js';
import { confirmationIdSchema } from '../../api/schemas.js';
import { assertRecordInScope } from '../auth.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';

export function addConfirmationRoutes(router: Router, deps: { confirmations: ConfirmationService; fleet?: { confirmationView(id: string): Promise<object | undefined> } }): void {
  // How a restore asked for over the API (202 awaiting_confirmation) ended: the caller polls this.
  router.add({
    method: 'GET',
    path: '/v1/confirmations/{id}',
    auth: 'platform',
    handler: async (ctx) => {
      const id = parseInput(confirmationIdSchema, ctx.params.id, 'confirmation id');
      // A restore by selector (POST /v1/actions) waits in a fleet confirmation: no single agent, so
      // an agent-scoped token never sees one.
      const fleet = ctx.token?.scope.kind === 'agent' ? undefined : await deps.fleet?.confirmationView(id);
      if (fleet) return { status: 200, body: fleet };
      await assertRecordInScope(ctx.token, async () => (await deps.confirmations.get(id))?.agentId, () => notFound(`unknown confirmation ${id}`));
      const view = await deps.confirmations.get(id);
      if (!view) throw notFound(`unknown confirmation ${id}`);
      return { status: 200, body: view };
    },
  });
}
