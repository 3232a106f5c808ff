import pg from 'pg';
import { expect } from 'vitest';
import type { TestApp } from './app.js';
import { responseTo, slashCommand, textOf } from './drive.js';
import type { FakeSlack } from './fake-slack.js';

/**
 * Driving the web console as a person does: ask for a link with a signed `/armalo console`, open it,
 * post the sign-in form, then GET pages and post forms with the session cookie.
 */

export const LINK_PATTERN = /\/console\/login\?t=([A-Za-z0-9_-]{43})/;

/** `/armalo console` typed by `user` in Slack (signed); returns the one-time token and the private answer. */
export async function consoleLink(app: TestApp, slack: FakeSlack, user: string): Promise<{ token: string; url: string; answer: string; ephemeral: boolean }> {
  const res = await slashCommand(app, slack, user, 'console');
  // The answer is the command's acknowledgement (private) or, if Bolt deferred it, its response_url.
  const body = res.body && typeof res.body === 'object' && 'blocks' in res.body ? res.body : await responseTo(slack, res.responseId);
  const answer = textOf(body);
  const match = /https?:\/\/[^"\s<>|\\]*\/console\/login\?t=[A-Za-z0-9_-]{43}/.exec(answer);
  expect(match, `a sign-in link in ${answer.slice(0, 400)}`).not.toBeNull();
  return { token: LINK_PATTERN.exec(match![0])![1]!, url: match![0], answer, ephemeral: (body as { response_type?: string }).response_type === 'ephemeral' };
}

export interface ConsoleAnswer {
  status: number;
  text: string;
  headers: Headers;
}

async function answer(res: Response): Promise<ConsoleAnswer> {
  return { status: res.status, text: await res.text(), headers: res.headers };
}

export async function consoleGet(app: TestApp, path: string, cookie?: string): Promise<ConsoleAnswer> {
  return answer(await fetch(app.url + path, { redirect: 'manual', headers: cookie ? { cookie } : {} }));
}

export async function consolePost(app: TestApp, path: string, fields: Record<string, string>, cookie?: string, headers: Record<string, string> = {}): Promise<ConsoleAnswer> {
  return answer(
    await fetch(app.url + path, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}), ...headers },
      body: new URLSearchParams(fields).toString(),
    }),
  );
}

/** Posts the sign-in form; returns the session cookie (`armalo_session=…`) and the raw Set-Cookie header. */
export async function signIn(app: TestApp, token: string): Promise<{ cookie: string; setCookie: string }> {
  const res = await consolePost(app, '/console/login', { t: token });
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  const setCookie = res.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0]!, setCookie };
}

/** A link from Slack and a session, in one step. */
export async function signInFromSlack(app: TestApp, slack: FakeSlack, user: string): Promise<string> {
  const { token } = await consoleLink(app, slack, user);
  return (await signIn(app, token)).cookie;
}

/** The CSRF token a page's forms carry. */
export function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  expect(m, 'a CSRF field on the page').not.toBeNull();
  return m![1]!;
}

/** One SQL statement on a database of its own connection (tests move timestamps back to stand in for time passing). */
export async function sqlAt(databaseUrl: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}
