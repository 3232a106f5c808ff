import { describe, expect, it } from 'vitest';
import { escapeHtml, html, path, raw } from '../../src/console/html.js';
import { auditCsv, csvField, renderText } from '../../src/console/console-pages.js';
import { Redis } from 'ioredis';
import { csrfFor, csrfMatches, SharedSignInLimiter, SignInLimiter, type ConsoleSession } from '../../src/console/console-sessions.js';

describe('console templates escape by default', () => {
  it('escapes every interpolated value, in text and in attributes', () => {
    const name = `<img src=x onerror="alert('x')">&\``;
    expect(html`<p title="${name}">${name}</p>`.value).toBe(
      '<p title="&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;&#96;">&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;&#96;</p>',
    );
  });

  it('inserts only explicit raw fragments and nested templates as markup; arrays join; nothing for null, undefined and booleans', () => {
    expect(html`<ul>${['<a>', 'b'].map((x) => html`<li>${x}</li>`)}</ul>`.value).toBe('<ul><li>&lt;a&gt;</li><li>b</li></ul>');
    expect(html`${raw('<svg></svg>')}${null}${undefined}${false}${true}${0}`.value).toBe('<svg></svg>0');
    expect(escapeHtml('a&b')).toBe('a&amp;b');
  });

  it('encodes path segments', () => {
    expect(path`/console/agents/${'a/../b?x=1'}`).toBe('/console/agents/a%2F..%2Fb%3Fx%3D1');
  });

  it('renders reply spans without letting their text become markup', () => {
    expect(renderText(['<b>', { strong: '<i>' }, { code: 'x"y' }]).value).toBe('&lt;b&gt;<strong>&lt;i&gt;</strong><code>x&quot;y</code>');
  });
});

describe('audit CSV', () => {
  it('quotes every field and neutralises spreadsheet formulas', () => {
    expect(csvField('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvField('+1')).toBe(`"'+1"`);
    expect(csvField('plain, text')).toBe('"plain, text"');
    const csv = auditCsv([{ seq: '7', at: new Date('2026-12-01T00:00:00Z'), actor: 'console:slack:U1', action: 'agent.contain', subject: 'pay-bot', payload: { reason: 'a "b"' }, prev_hash: 'p', hash: 'h' }]);
    expect(csv).toBe('seq,at,actor,action,subject,payload,prev_hash,hash\r\n"7","2026-12-01T00:00:00.000Z","console:slack:U1","agent.contain","pay-bot","{""reason"":""a \\""b\\""""}","p","h"\r\n');
  });
});

describe('console sessions: CSRF and the sign-in limit', () => {
  it('binds the CSRF token to the session token', () => {
    const session = { id: 's', who: { platform: 'slack', userId: 'U1', emails: [] }, expiresAt: new Date(), csrf: csrfFor('a'.repeat(43)) } as ConsoleSession;
    expect(csrfMatches(session, csrfFor('a'.repeat(43)))).toBe(true);
    expect(csrfMatches(session, csrfFor('b'.repeat(43)))).toBe(false);
    expect(csrfMatches(session, undefined)).toBe(false);
    expect(csrfMatches(session, '')).toBe(false);
  });

  it('blocks an address after the limit of failures within the window, and forgets them after it', () => {
    const limiter = new SignInLimiter(3, 1000);
    for (let i = 0; i < 3; i++) {
      expect(limiter.blocked('1.2.3.4', 0)).toBe(false);
      limiter.failed('1.2.3.4', 0);
    }
    expect(limiter.blocked('1.2.3.4', 999)).toBe(true);
    expect(limiter.blocked('5.6.7.8', 999)).toBe(false);
    expect(limiter.blocked('1.2.3.4', 1000)).toBe(false);
  });

  it('the shared limiter still limits on this replica when Redis cannot be reached, without an error', async () => {
    // A client that refuses at once: nothing listens on port 1, and nothing is queued.
    const redis = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      const limiter = new SharedSignInLimiter(redis, 'unit-test', 3, 60_000);
      for (let i = 0; i < 3; i++) {
        expect(await limiter.blocked('1.2.3.4')).toBe(false);
        await limiter.failed('1.2.3.4');
      }
      expect(await limiter.blocked('1.2.3.4')).toBe(true);
      expect(await limiter.blocked('5.6.7.8')).toBe(false);
    } finally {
      redis.disconnect();
    }
  });
});
