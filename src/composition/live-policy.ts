import type { Config } from '../config/env.js';
import type { Logger } from '../observability/logger.js';
import { loadPolicyFile, parsePolicyData } from '../policy/load-policy.js';
import { PolicyHolder } from '../policy/policy-holder.js';
import { PolicyWatcher } from '../policy/policy-watcher.js';
import { createRedis } from '../queue/connection.js';
import { addJob } from '../queue/job-contracts.js';
import { SLACK_DIRECTORY_JOB } from '../slack/slack-directory.js';
import type { AppOptions } from '../app.js';
import type { Lifecycle } from './lifecycle.js';
import type { Services } from './services.js';

/** Refuses to run on a policy that does not validate: nothing may run on a half-understood policy. */
export function loadPolicy(config: Config, logger: Logger): PolicyHolder {
  const holder = new PolicyHolder(config.policyFile ? loadPolicyFile(config.policyFile) : parsePolicyData({}));
  if (!config.policyFile) logger.warn('ARMALO_POLICY_FILE is not set: running with an empty policy (no roles, no routing rules)');
  return holder;
}

/** Live policy: file watch, SIGHUP (main.ts) and other replicas' announcements (DESIGN §5). */
export async function startLivePolicy(s: Services, options: AppOptions, lifecycle: Lifecycle): Promise<PolicyWatcher | undefined> {
  const { config, holder, logger } = s;
  if (!config.policyFile) return undefined;
  if (config.slack.botToken) {
    // New members listed by email become Slack users through the directory: resolve them now.
    const unsubscribe = holder.onChange(({ hash }) => {
      void addJob(s.queues, SLACK_DIRECTORY_JOB, {}, { jobId: `slack-directory-policy-${hash.slice(0, 16)}` }).catch((err: Error) => logger.warn({ err: err.message }, 'could not queue a Slack directory refresh after the policy change'));
    });
    lifecycle.onStop(async () => unsubscribe());
  }
  const subscriber = lifecycle.redis(createRedis(config.redisUrl));
  const watcher = new PolicyWatcher({
    file: config.policyFile,
    holder,
    db: s.db,
    clock: s.clock,
    logger,
    publisher: s.producer,
    subscriber,
    channel: `${config.queuePrefix}:policy`,
    ...options.policyReload,
  });
  await watcher.start();
  lifecycle.onStop(async () => watcher.stop());
  return watcher;
}
