import { verifySlackRequest } from '@slack/bolt';
import { describe, expect, it } from 'vitest';
import { signSlackRequest } from './support/slack-requests.js';
import { slackSignature, verifySlackSignature } from '../src/slack/slack-request-guard.js';

// Slack's own published example, from "Verifying requests from Slack".
const SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const TIMESTAMP = 1531420618;
const BODY =
  'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
const EXPECTED = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';

describe("Slack's published request-signing example", () => {
  it('our test signer produces exactly the published signature', () => {
    expect(signSlackRequest(SECRET, TIMESTAMP, BODY)).toBe(EXPECTED);
  });

  it('our verifier (the guard in front of Bolt) computes it and accepts the request at its time', () => {
    expect(slackSignature(SECRET, TIMESTAMP, BODY)).toBe(EXPECTED);
    expect(verifySlackSignature(SECRET, BODY, String(TIMESTAMP), EXPECTED, TIMESTAMP + 30)).toEqual({ ok: true });
  });

  it('our verifier refuses it with one changed byte, the wrong secret, or outside five minutes either way', () => {
    expect(verifySlackSignature(SECRET, BODY.replace('text=', 'text=x'), String(TIMESTAMP), EXPECTED, TIMESTAMP)).toMatchObject({ ok: false });
    expect(verifySlackSignature(`${SECRET}0`, BODY, String(TIMESTAMP), EXPECTED, TIMESTAMP)).toMatchObject({ ok: false });
    expect(verifySlackSignature(SECRET, BODY, String(TIMESTAMP), EXPECTED, TIMESTAMP + 301)).toMatchObject({ ok: false });
    // Dated in the future (our clock is behind the request by more than five minutes).
    expect(verifySlackSignature(SECRET, BODY, String(TIMESTAMP), EXPECTED, TIMESTAMP - 301)).toMatchObject({ ok: false });
    expect(verifySlackSignature(SECRET, BODY, String(TIMESTAMP), EXPECTED, TIMESTAMP - 299)).toEqual({ ok: true });
  });

  it("Bolt's own verifier (behind our guard) accepts the same vector", () => {
    expect(() =>
      verifySlackRequest({ signingSecret: SECRET, body: BODY, headers: { 'x-slack-signature': EXPECTED, 'x-slack-request-timestamp': TIMESTAMP }, nowMilliseconds: (TIMESTAMP + 30) * 1000 }),
    ).not.toThrow();
  });
});
