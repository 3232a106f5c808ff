/**
 * A payments agent governed by Armalo: it checks every transfer locally before making it, asks
 * people for approval when a routing rule says so (the example policy: over 10,000), and stops
 * as soon as it is contained or revoked.
 *
 * Against a fresh `npm start` (README "Running without Docker"), with an admin token and a token
 * for this agent, from the repository root:
 *
 *   export ARMALO_API_TOKENS="ops:<admin token, 24+ chars>,pay-bot:<agent token, 24+ chars>:agent=pay-bot"
 *   export ARMALO_POLICY_FILE=policy/armalo-policy.example.yaml
 *   npm run migrate && npm start                      # in one terminal
 *
 *   curl -X PUT http://localhost:3000/v1/agents/pay-bot \
 *     -H "authorization: Bearer <admin token>" -H 'content-type: application/json' \
 *     -d '{"name":"Payments bot","owner":"owner@example.com","riskTier":"medium",
 *          "grants":[{"scope":"payments:transfer","constraints":{"maxAmount":50000}}]}'
 *   # Evidence, so the example policy's stale-evidence rule does not add a third approver:
 *   curl -X POST http://localhost:3000/v1/agents/pay-bot/evaluations \
 *     -H "authorization: Bearer <admin token>" -H 'content-type: application/json' \
 *     -d "{\"id\":\"eval-1\",\"dimension\":\"safety\",\"passed\":true,\"observedAt\":\"$(date -u +%FT%TZ)\",\"source\":\"ci\"}"
 *   npm run build -w @armalo/agent-sdk
 *   ARMALO_URL=http://localhost:3000 ARMALO_TOKEN=<agent token> ARMALO_AGENT_ID=pay-bot \
 *     npx tsx sdk/examples/payments-agent.ts
 *
 * The 25,000 transfer waits for two approvers (risk-owner and ciso) in Slack or Teams, or times
 * out after two minutes. Contain the agent meanwhile (`/armalo contain pay-bot`, or
 * `POST /v1/agents/pay-bot/actions {"action":"contain","reason":"..."}`) and it stops.
 */
import { ArmaloError, createArmaloClient, type DecisionAnswer } from '@armalo/agent-sdk';

interface Transfer {
  id: string;
  amount: number;
  currency: string;
  to: string;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (see the comment at the top of this file)`);
    process.exit(2);
  }
  return value;
}

const armalo = createArmaloClient({ url: env('ARMALO_URL'), token: env('ARMALO_TOKEN'), agentId: env('ARMALO_AGENT_ID') });

// Containment arrives on the stream within milliseconds: stop at once, not at the next transfer.
let stopped: string | undefined;
armalo.on('change', (event) => {
  if (event.kind === 'agent' && (event.status === 'contained' || event.status === 'revoked')) stopped = `the agent is ${event.status}`;
});
armalo.on('error', (err) => log(`stream: ${err.code}: ${err.message}`));

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

/** Stands in for the real payment API call. */
async function pay(transfer: Transfer, grantedBy: DecisionAnswer): Promise<void> {
  log(`PAID ${transfer.id}: ${transfer.amount} ${transfer.currency} to ${transfer.to} (grant ${grantedBy.grantId ?? '?'}${grantedBy.approvalRequestId ? `, approval ${grantedBy.approvalRequestId}` : ''})`);
}

async function handle(transfer: Transfer): Promise<void> {
  const context = { amount: transfer.amount, currency: transfer.currency };
  const answer = armalo.check('payments:transfer', context);
  if (answer.decision === 'allow') return pay(transfer, answer);
  if (answer.decision === 'deny') {
    if (answer.agentStatus === 'contained' || answer.agentStatus === 'revoked') stopped = `the agent is ${answer.agentStatus}`;
    log(`NOT PAID ${transfer.id}: ${answer.reasonCodes.join(', ')}: ${answer.reasons.join('; ')}`);
    return;
  }
  // approval_required. An approval that is already granted (or one this agent asked for before)
  // is named: decide() asks the server, which spends a single-use approval exactly once.
  if (answer.approvalRequestId) {
    const used = await armalo.decide('payments:transfer', context);
    if (used.decision === 'allow') return pay(transfer, used);
    if (used.decision === 'deny') return log(`NOT PAID ${transfer.id}: ${used.reasons.join('; ')}`);
  }
  log(`${transfer.id} needs approval: asking`);
  let outcome;
  try {
    // The same idempotencyKey after a restart finds the same request instead of asking twice.
    outcome = await armalo.requireApproval('payments:transfer', context, {
      justification: `Transfer ${transfer.id}: ${transfer.amount} ${transfer.currency} to ${transfer.to}`,
      idempotencyKey: `transfer-${transfer.id}`,
      timeoutMs: 120_000,
    });
  } catch (err) {
    if (!(err instanceof ArmaloError) || err.status === 0) throw err;
    return log(`NOT PAID ${transfer.id}: the approval request was refused: ${err.message}`);
  }
  log(`${transfer.id}: approval ${outcome.requestId} ${outcome.status}${outcome.decisions.map((d) => `; ${d.by} ${d.decision}`).join('')}`);
  if (outcome.status !== 'approved') return;
  const final = await armalo.decide('payments:transfer', context);
  if (final.decision === 'allow') return pay(transfer, final);
  log(`NOT PAID ${transfer.id}: ${final.decision}: ${final.reasons.join('; ')}`);
}

async function main(): Promise<void> {
  await armalo.ready({ timeoutMs: 10_000 });
  log(`connected; view version ${armalo.viewVersion}`);
  const transfers: Transfer[] = [
    { id: 'T-1001', amount: 120, currency: 'EUR', to: 'acme-supplies' },
    { id: 'T-1002', amount: 25_000, currency: 'EUR', to: 'reinsurer-ag' },
    { id: 'T-1003', amount: 900, currency: 'EUR', to: 'office-rent' },
  ];
  for (const transfer of transfers) {
    if (stopped) break;
    await handle(transfer);
  }
  // Keep working (here: one small transfer every 5 s) until contained.
  for (let n = 1; !stopped; n++) {
    await new Promise((r) => setTimeout(r, 5000));
    if (!stopped) await handle({ id: `T-2${String(n).padStart(3, '0')}`, amount: 50, currency: 'EUR', to: 'coffee' });
  }
  log(`stopping: ${stopped}`);
}

main()
  .catch((err: unknown) => {
    if (err instanceof ArmaloError) console.error(`armalo: ${err.status} ${err.code}: ${err.message}`);
    else console.error(err);
    process.exitCode = 1;
  })
  .finally(() => armalo.close());
