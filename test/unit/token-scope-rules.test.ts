import { describe, expect, it } from 'vitest';
import type { TokenScope } from '../../src/config/env.js';
import { assertAgentInScope, assertRecordInScope, describeScope, scopeAllows, scopeRefusal, TokenAuthenticator } from '../../src/http/auth.js';
import { CodedError, ErrorCode } from '../../src/domain/errors.js';

const admin: TokenScope = { kind: 'admin' };
const platform: TokenScope = { kind: 'platform' };
const botA: TokenScope = { kind: 'agent', agentId: 'bot-a' };

describe('token scope rules', () => {
  it('admin reaches every route; platform and agent tokens only platform routes', () => {
    expect([scopeAllows(admin, 'admin'), scopeAllows(admin, 'platform'), scopeAllows(admin, true)]).toEqual([true, true, true]);
    expect([scopeAllows(platform, 'admin'), scopeAllows(platform, 'platform'), scopeAllows(platform, true)]).toEqual([false, true, false]);
    expect([scopeAllows(botA, 'admin'), scopeAllows(botA, 'platform'), scopeAllows(botA, true)]).toEqual([false, true, false]);
  });

  it('a refusal is a 403 naming the scope it has and the one it needs', () => {
    const err = scopeRefusal({ name: 'p', scope: platform }, 'PUT', '/v1/agents/{agentId}');
    expect(err).toBeInstanceOf(CodedError);
    expect(err.code).toBe(ErrorCode.Forbidden);
    expect(err.message).toBe('this token (scope platform) may not call PUT /v1/agents/{agentId}: it needs a token with scope admin');
    expect(describeScope(botA)).toBe('agent=bot-a');
    expect(describeScope(admin)).toBe('admin');
  });

  it('an agent token reaches its own agent only; other tokens every agent', () => {
    expect(() => assertAgentInScope({ name: 'b', scope: botA }, 'bot-a')).not.toThrow();
    expect(() => assertAgentInScope({ name: 'b', scope: botA }, 'bot-b')).toThrow('this token (scope agent=bot-a) may only be used for agent bot-a, not for agent bot-b');
    expect(() => assertAgentInScope({ name: 'p', scope: platform }, 'bot-b')).not.toThrow();
    expect(() => assertAgentInScope({ name: 'r', scope: admin }, 'bot-b')).not.toThrow();
    expect(() => assertAgentInScope(undefined, 'bot-b')).not.toThrow();
  });

  it('records by id: looked up for agent tokens only; unknown is the caller\'s 404', async () => {
    let lookups = 0;
    const of = (agentId: string | undefined) => async () => {
      lookups++;
      return agentId;
    };
    const unknown = () => new CodedError(ErrorCode.NotFound, 'unknown request');
    await assertRecordInScope({ name: 'p', scope: platform }, of('bot-b'), unknown);
    expect(lookups).toBe(0);
    await assertRecordInScope({ name: 'b', scope: botA }, of('bot-a'), unknown);
    await expect(assertRecordInScope({ name: 'b', scope: botA }, of('bot-b'), unknown)).rejects.toMatchObject({ code: ErrorCode.Forbidden });
    await expect(assertRecordInScope({ name: 'b', scope: botA }, of(undefined), unknown)).rejects.toThrow('unknown request');
    expect(lookups).toBe(3);
  });

  it('the authenticator answers the token\'s name and scope, and nothing for a wrong or malformed header', () => {
    const auth = new TokenAuthenticator([
      { name: 'root', token: 'tok_root_0123456789abcdef', scope: admin },
      { name: 'bot', token: 'tok_bot_0123456789abcdef', scope: botA },
    ]);
    expect(auth.authenticate('Bearer tok_bot_0123456789abcdef')).toEqual({ name: 'bot', scope: botA });
    expect(auth.authenticate('Bearer tok_bot_0123456789abcdef')).toEqual({ name: 'bot', scope: botA });
    expect(auth.authenticate('bearer tok_root_0123456789abcdef ')).toEqual({ name: 'root', scope: admin });
    expect(auth.authenticate('Bearer tok_bot_0123456789abcdeX')).toBeUndefined();
    expect(auth.authenticate('tok_bot_0123456789abcdef')).toBeUndefined();
    expect(auth.authenticate(undefined)).toBeUndefined();
  });
});
