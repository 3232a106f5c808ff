import { sql } from 'kysely';
import { waitFor } from '../support/app.js';
import { approvalClickBody, postSigned, slashCommandBody } from '../support/slack-requests.js';
import { faultAgent, type AppProcess, type FaultWorld } from './harness.js';

/**
 * The traffic the fault scenarios run under: rounds of what people and agents do, each one step
 * acknowledged before the next, through the web process (REST with the platform token, signed
 * Slack commands and clicks). One round: register an agent, ask for a two-person approval with a
 * callback, both approvers click Approve on the cards they were sent, contain the agent from Slack,
 * restore it. That makes incident notices (root and thread line), approval cards (two DMs and the
 * channel), an approval callback and about ten events per round.
 */
export interface Round {
  agentId: string;
  requestId?: string;
  /** Steps the app acknowledged (2xx), by name. */
  acknowledged: string[];
  /** Why the round could not go on (a wait that timed out). */
  error?: string;
}

export interface LoadOptions {
  /** Where requests go (the web process); a function, so a scenario can swap it. */
  web: () => AppProcess;
  /** How long a step waits for an approval card before giving up on the round. */
  cardWaitMs?: number;
  /** Called with every round run, as it ends. */
  onRound?: (round: Round) => void;
  /** Called with every answer that was not 2xx (a scenario decides whether that is allowed). */
  onRefused?: (step: string, status: number, body: unknown) => void;
}

let responseSeq = 0;

/** Runs one round; resolves with what was acknowledged (a refused step ends the round). */
export async function runRound(world: FaultWorld, name: string, options: LoadOptions): Promise<Round> {
  const round: Round = { agentId: name, acknowledged: [] };
  const ok = (step: string, status: number, body: unknown): boolean => {
    if (status >= 200 && status < 300) {
      round.acknowledged.push(step);
      return true;
    }
    options.onRefused?.(step, status, body);
    return false;
  };
  const web = options.web;
  const reg = await web().call('PUT', `/v1/agents/${name}`, faultAgent(name));
  if (!ok('register', reg.status, reg.body)) return round;
  const req = await web().call('POST', '/v1/approval-requests', {
    agentId: name,
    action: 'payments:transfer',
    context: { amount: 20_000 },
    justification: `payout for ${name}`,
    idempotencyKey: `req-${name}`,
    callbackUrl: world.callbackUrl(name),
  });
  if (!ok('approval-request', req.status, req.body)) return round;
  round.requestId = String(req.body.id);
  // People click the card they were sent: wait for both DM cards and the channel's. (A card is
  // posted only while its request is pending: a click before the channel card is out would leave
  // the channel without one, by design, and the tally could not tell that from a lost card.)
  const keys = ['U0RISK', 'U0CISO', 'channel'].map((u) => `slack:approval:${round.requestId}:${u}`);
  try {
    await waitFor(
      async () => (await world.db.selectFrom('chat_messages').select('key').where('key', 'in', keys).execute()).length === keys.length,
      options.cardWaitMs ?? 120_000,
      `the approval cards of ${name}`,
    );
  } catch (err) {
    round.error = (err as Error).message;
    return round;
  }
  for (const user of ['U0RISK', 'U0CISO']) {
    const res = await postSigned(web().url, approvalClickBody({ user_id: user, request_id: round.requestId, response_url: world.slack.responseUrl(`click-${++responseSeq}`) }));
    if (!ok(`approve:${user}`, res.status, res.body)) return round;
  }
  for (const [user, text] of [
    ['U0ONCALL1', `contain ${name} fault drill`],
    ['U0ONCALL2', `restore ${name} all clear`],
  ] as const) {
    const res = await postSigned(web().url, slashCommandBody({ user_id: user, text, channel_id: 'C0OPS', response_url: world.slack.responseUrl(`cmd-${++responseSeq}`) }));
    if (!ok(text.split(' ')[0]!, res.status, res.body)) return round;
  }
  return round;
}

/** Runs `lanes` rounds at a time until `until()` says stop; resolves with every round run. */
export async function runLoad(world: FaultWorld, prefix: string, lanes: number, until: () => boolean, options: LoadOptions): Promise<Round[]> {
  const rounds: Round[] = [];
  let n = 0;
  // A round that cannot go on (its cards never came) ends its lane.
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (!until()) {
        const name = `${prefix}-${++n}`;
        const round = await runRound(world, name, options);
        rounds.push(round);
        options.onRound?.(round);
        if (round.error) return;
      }
    }),
  );
  return rounds;
}

/** What the rounds should have produced, read from Postgres once the traffic stopped. */
export interface Expected {
  /** Ledger keys of every Slack notice: approval cards (DMs, channel), incident roots, restore lines. */
  slackKeys: string[];
  /** Event ids the outbound webhook must receive. */
  eventIds: string[];
  /** Approval callbacks (one per outcome: approved, then cancelled by a containment…): request id by delivery id (the outbox row id). */
  callbacks: Map<string, string>;
}

export async function expectedDeliveries(world: FaultWorld, agentPrefix: string): Promise<Expected> {
  const db = world.db;
  const like = `${agentPrefix}-%`;
  const requests = await db.selectFrom('approval_requests').select('id').where('agent_id', 'like', like).execute();
  const incidents = await db.selectFrom('incidents').select('id').where('agent_id', 'like', like).execute();
  const restores = await db.selectFrom('agent_actions').select('id').where('agent_id', 'like', like).where('kind', '=', 'restore').execute();
  const slackKeys = [
    ...requests.flatMap((r) => ['U0RISK', 'U0CISO', 'channel'].map((u) => `slack:approval:${r.id}:${u}`)),
    ...incidents.map((i) => `slack:incident:${i.id}`),
    ...restores.map((a) => `slack:action:${a.id}`),
  ];
  const events = await db
    .selectFrom('outbox')
    .select(sql<string>`payload->>'id'`.as('event_id'))
    .where('queue', '=', 'events')
    .where('job_name', '!=', 'approval-callback')
    .where(sql<boolean>`payload->'data'->>'agentId' like ${like}`)
    .execute();
  const callbackRows = await db
    .selectFrom('outbox')
    .select(['id', sql<string>`payload->>'requestId'`.as('request_id')])
    .where('job_name', '=', 'approval-callback')
    .execute();
  const ids = new Set(requests.map((r) => r.id));
  const callbacks = new Map(callbackRows.filter((r) => ids.has(r.request_id)).map((r) => [r.id, r.request_id]));
  return { slackKeys, eventIds: events.map((e) => e.event_id), callbacks };
}

/** Event ids and callback delivery ids the receiver got, with how many times each came. */
export function received(world: FaultWorld): { events: Map<string, number>; callbacks: Map<string, number> } {
  const events = new Map<string, number>();
  const callbacks = new Map<string, number>();
  for (const r of world.receiver.requests) {
    const id = String(r.headers['x-armalo-delivery']);
    const into = r.path?.startsWith('/callback/') ? callbacks : events;
    into.set(id, (into.get(id) ?? 0) + 1);
  }
  return { events, callbacks };
}
