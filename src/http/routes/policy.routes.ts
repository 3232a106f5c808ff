import { ErrorCode } from '../../domain/errors.js';
import { parsePolicyText, PolicyError } from '../../policy/load-policy.js';
import { summarizePolicyChange } from '../../policy/policy-diff.js';
import { policyHash, type PolicyHolder } from '../../policy/policy-holder.js';
import { HttpError } from '../body.js';
import type { Policy } from '../../policy/policy.schema.js';
import type { Router } from '../router.js';

/**
 * `POST /v1/policy/check` (admin tokens): a policy file's text (YAML) checked as a reload would check
 * it, and what it would change against the policy this replica runs, in the words of the
 * `policy.changed` audit entry. Nothing is applied: a policy changes only through the file (or
 * SIGHUP). `npm run policy:check -- FILE --against URL` calls it.
 */
export function addPolicyRoutes(router: Router, deps: { holder: PolicyHolder }): void {
  router.add({
    method: 'POST',
    path: '/v1/policy/check',
    auth: 'admin',
    rawBody: true,
    // A policy listing every member of large teams outgrows the API's usual 64 KB.
    bodyLimit: 1024 * 1024,
    handler: (ctx) => {
      const candidate = parseOrRefuse(ctx.rawBody ?? '');
      const hash = policyHash(candidate);
      const runningHash = deps.holder.hash;
      return {
        status: 200,
        body: { valid: true, hash, runningHash, changed: hash !== runningHash, summary: summarizePolicyChange(deps.holder.policy, candidate) },
      };
    },
  });
}

/** The policy in the body, or a 400 listing every problem (as `policy:check` prints them). */
function parseOrRefuse(text: string): Policy {
  try {
    return parsePolicyText(text, 'policy');
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    const n = err.problems.length;
    throw new HttpError(400, ErrorCode.InvalidInput, `the policy is not valid (${n} problem${n === 1 ? '' : 's'}); nothing was changed`, err.problems);
  }
}
