import { describe, expect, it } from 'vitest';
import { renderSlack } from '../../src/slack/render.js';
import { renderTeams } from '../../src/teams/render.js';
import { fleetConfirmationNotice, fleetIncidentNotice, fleetRestoreNotice } from '../../src/notices/fleet.notice.js';
import type { FleetIncidentView } from '../../src/fleet/fleet-view.js';

// Issue 17, item 3: the fleet incident's notice is built once and rendered by both platforms.
const view: FleetIncidentView = {
  id: '0b7e4c5e-8f0a-4c1d-9a59-2d7f1f0d6a11',
  action: 'contain',
  selector: { scope: 'payments:*', riskTier: 'critical' },
  selectorText: 'scope:payments:* risk:critical',
  scopes: [],
  reason: 'vendor SDK compromised <!channel> *bold*',
  actor: 'slack:U0ALICE',
  count: 1234,
  sample: Array.from({ length: 10 }, (_, i) => `pay-${i}`),
  status: 'open',
  openedAt: new Date('2026-12-02T10:00:00Z'),
  closedAt: null,
  closedBy: null,
  heldNow: 1234,
  restored: 0,
  expired: 0,
  expiresAt: null,
};

describe('the fleet notice', () => {
  it('names the selector and the count on Slack and on Teams, escaping the reason', () => {
    const notice = fleetIncidentNotice(view);
    const slack = JSON.stringify(renderSlack(notice));
    const teams = JSON.stringify(renderTeams(notice));
    // Teams escapes the `*` of the glob for its Markdown (`scope:payments:\* …`).
    for (const out of [slack, teams.replace(/\\\\\*/g, '*')]) {
      expect(out).toContain('scope:payments:* risk:critical');
      expect(out).toContain('1234 agents');
      expect(out).toContain('pay-9');
      expect(out).toContain('and 1224 more');
    }
    expect(slack).not.toContain('<!channel>');
    expect(slack).toContain('restore scope:payments:* risk:critical');
  });

  it('shows a resolved incident, a restore line and a second-person request with its buttons', () => {
    const closed = JSON.stringify(renderTeams(fleetIncidentNotice({ ...view, status: 'closed', heldNow: 0, restored: 1234, closedAt: new Date(), closedBy: 'teams:bob' })));
    expect(closed).toContain('Resolved: fleet incident');
    const line = JSON.stringify(renderSlack(fleetRestoreNotice({ actor: 'slack:U0BOB', restored: 1200, held: ['pay-1', 'pay-2'], heldCount: 34, at: '2026-12-02T11:00:00Z' })));
    expect(line).toContain('restored 1200 agents');
    expect(line).toContain('34 agents stay held');
    const ask = fleetConfirmationNotice({ id: view.id, selectorText: view.selectorText, count: 1234, requestedBy: 'api:platform', requestedPlatform: 'api', reason: 'patched', expiresAt: new Date() });
    expect(JSON.stringify(renderSlack(ask))).toContain('armalo_confirm');
    expect(JSON.stringify(renderTeams(ask))).toContain('armalo.confirm');
    expect(JSON.stringify(renderTeams(ask))).toContain('Confirm restore of 1234 agents');
  });
});
