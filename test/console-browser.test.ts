import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { appTest } from './support/fixture.js';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { decisionOf, slashCommand, textOf } from './support/drive.js';
import { consoleLink } from './support/console.js';
import { browserAvailability, freePort, launchChromium } from './support/browser.js';

/**
 * The web console in a real browser (Debian's chromium through playwright-core): sign in with a link
 * from a signed Slack command, see an agent, approve a request (the Slack card follows), contain an
 * agent (decisions deny), verify the audit chain, refusals for a person without the role, and an
 * action in chat showing in an open page by itself (htmx polling under our CSP).
 *
 * `CONSOLE_SCREENSHOTS=1` also saves a screenshot of each page into docs/console/ (the README's).
 */

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO, email: ciso@example.com }] }
  risk-owner: { members: [{ slack: U0RISK }] }
  procurement: { members: [{ slack: U0PROC }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
channels:
  incidents: { slack: C0INCIDENTS }
`;

const availability = browserAvailability();
if (!availability.run) console.warn(availability.reason);
if (availability.reason && availability.run) throw new Error(availability.reason);

/** How long a page may take to show something: CI and this machine are loaded 2-core boxes. */
const WAIT = { timeout: 20_000, interval: 100 };

const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS === '1' ? join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'console') : undefined;

const it = appTest({
  policy: POLICY,
  slack: true,
  appOptions: { relayPollMs: 200 },
  // The link points at ARMALO_PUBLIC_URL: make it this instance's own address, as in production.
  beforeStart: async () => {
    const port = await freePort();
    return { PORT: String(port), ARMALO_PUBLIC_URL: `http://127.0.0.1:${port}` };
  },
});

describe.skipIf(!availability.run)('the console in chromium', { timeout: 180_000 }, () => {
  let app: TestApp;
  let slack: FakeSlack;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Messages the pages logged as errors (a CSP violation shows up here). */
  const pageErrors: string[] = [];
  /** Requests the pages made to any other origin (there must be none: no CDN, nothing from outside). */
  const foreignRequests: string[] = [];

  it.beforeAll(async ({ app: started, slack: fake }) => {
    app = started;
    slack = fake;
    const agents: [string, string][] = [
      ['underwriter', 'Underwriting bot'],
      ['mailer', 'Renewal mailer'],
      ['live-bot', 'Claims triage bot'],
      ['key-bot', 'Quote bot'],
    ];
    for (const [id, name] of agents) expect((await app.call('PUT', `/v1/agents/${id}`, { ...sampleAgent, name })).status).toBe(201);
    // Evidence, so the agent page has a score, a chart and the overview a mover.
    const now = Date.now();
    for (const [i, passed] of [true, true, false, true].entries()) {
      const evaluation = { id: `eval-${i}`, dimension: i % 2 ? 'safety' : 'accuracy', passed, observedAt: new Date(now - (4 - i) * 86_400_000).toISOString(), source: 'redteam' };
      expect((await app.call('POST', '/v1/agents/mailer/evaluations', evaluation)).status).toBeLessThan(300);
    }
    browser = await launchChromium();
  }, 120_000);

  it.afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
  });

  /** A browser profile of its own, signed in as `user` with a link that user got from `/armalo console`. */
  async function signedInPage(user: string, device: Parameters<Browser['newContext']>[0] = { viewport: { width: 1200, height: 900 } }): Promise<Page> {
    const context = await browser.newContext(device);
    contexts.push(context);
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`${user}: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith(`${app.url}/`) && !r.url().startsWith('data:')) foreignRequests.push(`${user}: ${r.url()}`);
    });
    const { url } = await consoleLink(app, slack, user);
    expect(url.startsWith(app.url)).toBe(true);
    await page.goto(url);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${app.url}/console`);
    return page;
  }

  /** Whether the element lies wholly on the screen as first shown (no scrolling needed to read it). */
  const inView = async (locator: Locator) => {
    const box = await locator.boundingBox();
    const screen = locator.page().viewportSize()!;
    return box !== null && box.width > 0 && box.x >= 0 && box.y >= 0 && box.x + box.width <= screen.width && box.y + box.height <= screen.height;
  };

  async function shot(page: Page, name: string): Promise<void> {
    if (!SCREENSHOTS) return;
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  it('signs in from a Slack link, sees an agent, approves a request and the Slack card follows', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'underwriter', action: 'payments:transfer', context: { amount: 48_000 }, justification: 'settle the Q4 reinsurance invoice' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const page = await signedInPage('U0RISK');
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('Underwriting bot');
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('Approvals waiting on you (1)');
    await shot(page, 'overview');

    await page.getByRole('link', { name: 'Underwriting bot' }).first().click();
    await page.waitForURL(`${app.url}/console/agents/underwriter`);
    expect(await page.locator('h1').innerText()).toBe('Underwriting bot');
    expect(await page.locator('main').innerText()).toContain('payments:transfer');

    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    await page.waitForURL(`${app.url}/console/approvals`);
    expect(await page.locator('main').innerText()).toContain('settle the Q4 reinsurance invoice');
    await shot(page, 'approvals');
    await page.locator(`#approval-${id}`).getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('You approved payments:transfer for underwriter');
    expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.status).toBe('approved');
    await waitFor(() => slack.updates().some((u) => textOf(u.args).includes(id) && /approved/i.test(textOf(u.args))), 10_000, 'the Slack approval card updated to approved');
  });

  it('contains an agent: the decision API denies at once, the audit chain verifies', async () => {
    const page = await signedInPage('U0ONCALL1');
    await page.goto(`${app.url}/console/agents/mailer`);
    expect((await decisionOf(app, 'mailer', 'crm:write')).decision).toBe('allow');
    await shot(page, 'agent');
    const contain = page.locator('form[action="/console/agents/mailer/contain"]');
    await contain.getByLabel('Reason').fill('sending to unknown domains');
    await contain.getByRole('button', { name: 'Contain' }).click();
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('Contained mailer');
    expect((await decisionOf(app, 'mailer', 'crm:write')).decision).toBe('deny');

    await page.goto(`${app.url}/console/incidents`);
    expect(await page.locator('main').innerText()).toContain('sending to unknown domains');
    await shot(page, 'incidents');

    await page.goto(`${app.url}/console/audit`);
    await page.getByRole('button', { name: 'Verify the chain' }).click();
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('chain intact');
    expect(await page.locator('main').innerText()).toContain('console:slack:U0ONCALL1');
    await shot(page, 'audit');
  });

  it('a person without the role sees no contain button, and posting the form anyway is refused with 403', async () => {
    const page = await signedInPage('U0PROC');
    await page.goto(`${app.url}/console/agents/live-bot`);
    expect(await page.locator('h1').innerText()).toBe('Claims triage bot');
    expect(await page.getByRole('button', { name: 'Contain' }).count()).toBe(0);
    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    // The forged post goes out with the browser's own cookie, as a page script or a crafted form would.
    const forged = await page.request.post(`${app.url}/console/agents/live-bot/contain`, { form: { csrf, reason: 'forged' } });
    expect(forged.status()).toBe(403);
    expect((await app.call('GET', '/v1/agents/live-bot')).body.status).toBe('active');
  });

  it('an action in chat shows in an open console page within seconds, by itself', async () => {
    const page = await signedInPage('U0ONCALL2');
    await page.goto(`${app.url}/console/agents/live-bot`);
    expect(await page.locator('#live-head .status').first().innerText()).toBe('active');
    const res = await slashCommand(app, slack, 'U0ONCALL1', 'contain live-bot odd claims pattern');
    expect(textOf(res.body)).toContain('Contained live-bot');
    await expect.poll(() => page.locator('#live-head .status').first().innerText(), WAIT).toBe('contained');
    expect(page.url()).toBe(`${app.url}/console/agents/live-bot`);
  });

  it('keyboard only: Tab reaches the contain form, the focus is visible, Enter on the button contains the agent', async () => {
    const page = await signedInPage('U0ONCALL1');
    await page.goto(`${app.url}/console/agents/key-bot`);
    // Evaluated in the page (as text: this project's TypeScript has no DOM types).
    const focused = () =>
      page.evaluate<{ name: string; form: string; outline: string }>(`(() => {
        const el = document.activeElement;
        return { name: el?.getAttribute('name') ?? el?.textContent?.trim() ?? '', form: el?.closest('form')?.getAttribute('action') ?? '', outline: el ? getComputedStyle(el).outlineStyle : 'none' };
      })()`);
    const tabTo = async (want: (f: Awaited<ReturnType<typeof focused>>) => boolean, what: string) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        const f = await focused();
        if (want(f)) return f;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    const reason = await tabTo((f) => f.form === '/console/agents/key-bot/contain' && f.name === 'reason', 'the contain reason');
    expect(reason.outline).not.toBe('none');
    await page.keyboard.type('quotes far below the floor');
    const button = await tabTo((f) => f.form === '/console/agents/key-bot/contain' && f.name === 'Contain', 'the Contain button');
    expect(button.outline).not.toBe('none');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('main').innerText(), WAIT).toContain('Contained key-bot');
    expect((await app.call('GET', '/v1/agents/key-bot')).body.status).toBe('contained');
  });

  it('on a phone every page fits the screen: no sideways scrolling, the navigation and the status in view', async () => {
    const page = await signedInPage('U0CISO', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    for (const path of ['/console', '/console/agents/mailer', '/console/approvals', '/console/incidents', '/console/audit']) {
      await page.goto(`${app.url}${path}`);
      const fit = await page.evaluate<{ page: number; screen: number }>('({ page: document.documentElement.scrollWidth, screen: window.innerWidth })');
      expect(fit.page, path).toBeLessThanOrEqual(fit.screen);
      for (const link of ['Overview', 'Approvals', 'Incidents', 'Audit']) expect(await inView(page.getByRole('link', { name: link, exact: true })), `${path}: ${link}`).toBe(true);
    }
    await page.goto(`${app.url}/console/agents/mailer`);
    expect(await inView(page.locator('#live-head .status').first())).toBe(true);
  });

  it('no page logged an error (no CSP violation, no script error) or fetched anything from another origin', () => {
    expect(pageErrors).toEqual([]);
    expect(foreignRequests).toEqual([]);
  });
});
