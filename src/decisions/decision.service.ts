import type { Clock } from '../core/clock.js';
import type { Agent, AgentStatus, OpenApproval } from '../domain/agent.js';
import { approvalRequired, approvedBy, decide, hasApprovalRouting, routeDecision, type Decision, type DecisionRequest, type RoutingRules } from '../domain/decide.js';
import type { Metrics } from '../observability/metrics.js';
import type { LimitedLog } from '../observability/logger.js';
import { derivedFrom, readLive, type Live } from '../policy/policy-holder.js';

/** What a decision reads: this replica's in-memory view (the `PermissionView`). */
export interface DecisionView {
  get(agentId: string): Agent | undefined;
  isFresh(): boolean;
  approvalsFor(agentId: string): readonly OpenApproval[];
  /** A single-use approval was consumed here: forget it, and tell the other replicas. */
  approvalUsed(agentId: string, requestId: string): Promise<void>;
}

/** The one write a decision may make: use up a single-use approval, exactly once across replicas. */
export interface ApprovalConsumer {
  consume(agentId: string, candidateIds: readonly string[]): Promise<string | undefined>;
}

export interface DecisionAnswer {
  decision: Decision;
  agentStatus: AgentStatus | null;
  approvalRequestId?: string;
}

/** The JSON answer of a decision (`POST /v1/decisions`, MCP's `check_action`): one shape everywhere. */
export function decisionAnswerBody(answer: DecisionAnswer, viewVersion: bigint) {
  const { decision } = answer;
  return {
    decision: decision.decision,
    reasons: decision.reasons.map((r) => r.message),
    reasonCodes: decision.reasons.map((r) => r.code),
    ...(answer.approvalRequestId ? { approvalRequestId: answer.approvalRequestId } : {}),
    agentStatus: answer.agentStatus,
    ...(decision.grantId ? { grantId: decision.grantId } : {}),
    viewVersion: viewVersion.toString(),
  };
}

// The last view version and its JSON text: the version changes only with a write, so consecutive
// decisions share the string.
let lastVersion = -1n;
/** `"<version>"}`: the version's JSON and the answer's closing brace. */
let lastVersionTail = '"-1"}';

/**
 * `JSON.stringify(decisionAnswerBody(answer, viewVersion))`, built directly: the same text, key
 * order included, without the intermediate objects and arrays. The decision and status values
 * are fixed words of ours; every free text (messages, ids) goes through `JSON.stringify`.
 */
export function decisionAnswerJson(answer: DecisionAnswer, viewVersion: bigint): string {
  if (viewVersion !== lastVersion) {
    lastVersionTail = `"${viewVersion.toString()}"}`;
    lastVersion = viewVersion;
  }
  const { decision } = answer;
  // A shared (frozen) allow from decide: its text up to the version is kept with it.
  if (!answer.approvalRequestId && Object.isFrozen(decision)) {
    const kept = answerTexts.get(decision);
    if (kept && kept.status === answer.agentStatus) return kept.text + lastVersionTail;
    const text = answerText(answer);
    answerTexts.set(decision, { status: answer.agentStatus, text });
    return text + lastVersionTail;
  }
  return answerText(answer) + lastVersionTail;
}

const answerTexts = new WeakMap<Decision, { status: AgentStatus | null; text: string }>();

/** The answer's JSON up to `"viewVersion":` (the version and the closing brace follow). */
function answerText(answer: DecisionAnswer): string {
  const { decision } = answer;
  const reasons = decision.reasons;
  let messages = '';
  let codes = '';
  for (let i = 0; i < reasons.length; i++) {
    const r = reasons[i]!;
    if (i > 0) {
      messages += ',';
      codes += ',';
    }
    messages += JSON.stringify(r.message);
    codes += JSON.stringify(r.code);
  }
  return (
    `{"decision":${JSON.stringify(decision.decision)},"reasons":[${messages}],"reasonCodes":[${codes}]` +
    (answer.approvalRequestId ? `,"approvalRequestId":${JSON.stringify(answer.approvalRequestId)}` : '') +
    `,"agentStatus":${answer.agentStatus === null ? 'null' : JSON.stringify(answer.agentStatus)}` +
    (decision.grantId ? `,"grantId":${JSON.stringify(decision.grantId)}` : '') +
    `,"viewVersion":`
  );
}

/** How long using up an approval may take before the decision fails closed. */
export const CONSUME_WAIT_MS = 2000;

/**
 * The decision use case: may this agent do this now? Owns the whole answer: grants, containment,
 * routing rules and approvals. Answered from the replica's view; Postgres is asked only to use up
 * a single-use approval a matching rule needs (one statement). Never throws: whatever goes wrong
 * answers `deny` with a reason code and counts in `armalo_decision_errors_total`.
 *
 * Synchronous whenever no approval has to be used up, so the hot path allocates no promise.
 */
export class DecisionService {
  /** Whether any rule needs approvals, re-derived when a policy reload replaces the rules. */
  private readonly routing: () => boolean;
  private readonly rules: () => RoutingRules;

  constructor(
    private readonly deps: {
      view: DecisionView;
      clock: Clock;
      metrics: Metrics;
      /** The routing rules, or a function answering the ones in force (live policy). */
      rules: Live<RoutingRules>;
      approvals?: ApprovalConsumer;
      limitedLog?: LimitedLog;
      consumeWaitMs?: number;
    },
  ) {
    this.rules = () => readLive(deps.rules);
    this.routing = derivedFrom(this.rules, hasApprovalRouting);
  }

  decide(request: DecisionRequest): DecisionAnswer | Promise<DecisionAnswer> {
    let agent: Agent | undefined;
    try {
      const { view, clock } = this.deps;
      agent = view.get(request.agentId);
      const now = clock.now();
      const allowed = decide(agent, request, now, view.isFresh());
      if (allowed.decision !== 'allow' || !agent || !this.routing()) return this.answer(allowed, agent);
      const step = routeDecision(allowed, agent, request, this.rules(), view.approvalsFor(agent.id), now);
      if (step.kind === 'final') return this.answer(step.decision, agent, step.approvalRequestId);
      const consumer = this.deps.approvals;
      if (!consumer) return this.answer(approvalRequired(request, step.rule, step.pendingId), agent, step.pendingId);
      const routedAgent = agent;
      return withDeadline(consumer.consume(routedAgent.id, step.candidates), this.deps.consumeWaitMs ?? CONSUME_WAIT_MS).then(
        (used) => {
          if (!used) return this.answer(approvalRequired(request, step.rule, step.pendingId), routedAgent, step.pendingId);
          void view.approvalUsed(routedAgent.id, used).catch(() => undefined);
          return this.answer(approvedBy(allowed, step.rule, used), routedAgent, used);
        },
        (err: unknown) => this.failed('view_stale', err, routedAgent, 'cannot reach Postgres to use the approval this action needs; failing closed'),
      ).catch((err: unknown) => this.failed('decision_error', err, routedAgent, 'the decision could not be made; failing closed'));
    } catch (err) {
      return this.failed('decision_error', err, agent, 'the decision could not be made; failing closed');
    }
  }

  /** A deny the caller decided before asking the view (`view_behind`), counted like every other answer. */
  deny(agentId: string, code: Decision['reasons'][number]['code'], message: string): DecisionAnswer {
    return this.answer({ decision: 'deny', reasons: [{ code, message }] }, this.deps.view.get(agentId));
  }

  private answer(decision: Decision, agent: Agent | undefined, approvalRequestId?: string): DecisionAnswer {
    this.deps.metrics.decided(decision.decision).inc();
    const agentStatus = agent ? agent.status : null;
    return approvalRequestId ? { decision, agentStatus, approvalRequestId } : { decision, agentStatus };
  }

  private failed(code: 'view_stale' | 'decision_error', err: unknown, agent: Agent | undefined, message: string): DecisionAnswer {
    try {
      this.deps.metrics.decisionErrors.inc({ reason: code });
      this.deps.metrics.decided('deny').inc();
      this.deps.limitedLog?.('warn', `decision-failed:${code}`, { err: err instanceof Error ? err.message : String(err) }, message);
    } catch {
      // Counting or logging must not turn a fail-closed answer into a 500.
    }
    return { decision: { decision: 'deny', reasons: [{ code, message }] }, agentStatus: agent?.status ?? null };
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from Postgres within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
