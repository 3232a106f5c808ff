import type { Config } from '../config/env.js';
import type { NotifyDeps } from '../../jobs/notify.job.js';
import { MessageLedger } from '../notices/ledger.js';
import { NoticeService } from '../notices/notifier.js';
import type { ChatPlatform } from '../notices/platform.js';
import { Recipients } from '../notices/recipients.js';
import { createSlackWebClient } from '../slack/slack-web.js';
import { PostGate } from '../notices/post-gate.js';
import { SlackPlatform } from '../slack/slack-platform.js';
import { requestSlackHome } from '../slack/slack-home.js';
import { lazyBotAdapter, teamsEnabled } from '../teams/teams-app.js';
import { TeamsPlatform } from '../teams/teams-platform.js';
import { loadPacketRenderers, type Services } from './services.js';

/** The chat notices of the worker role: one NoticeService over each configured chat platform. */
export function createChatNotices(config: Config, s: Services): NotifyDeps {
  const { db, clock, policy, approvals, packets, directory, logger } = s;
  const notify: NotifyDeps = {};
  const platforms: ChatPlatform[] = [];
  if (config.slack.botToken) {
    const client = createSlackWebClient(config.slack.botToken, config.slack.apiUrl);
    notify.slack = { client, directory };
    platforms.push(new SlackPlatform(client, new PostGate(s.producer, config.queuePrefix, 'slack')));
    if (!policy.channels.incidents?.slack) logger.warn('the policy names no Slack incidents channel (channels.incidents.slack): incident notices are not posted');
  }
  if (teamsEnabled(config)) platforms.push(new TeamsPlatform({ db, adapter: lazyBotAdapter(config), appId: config.teams.appId ?? '', gate: new PostGate(s.producer, config.queuePrefix, 'teams') }));
  if (platforms.length) {
    notify.notices = new NoticeService({
      db,
      clock,
      policy,
      approvals,
      packets,
      platforms,
      ledger: new MessageLedger({ db, clock }),
      recipients: new Recipients({ db, policy }),
      renderPdf: async (p) => (await loadPacketRenderers()).pdf(p),
      renderChart: async (p) => (await import('../packets/score-chart.js')).packetChartPng(p),
      ...(config.links ? { links: config.links } : {}),
      // Only Slack has a home view.
      requestHome: async (platform, userId) => {
        if (platform === 'slack') await requestSlackHome(s.queues, userId, 'changed');
      },
    });
  }
  return notify;
}
