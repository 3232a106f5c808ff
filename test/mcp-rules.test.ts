import { describe, expect, it } from 'vitest';
import { originAllowed, sessionAgent } from '../src/mcp/mcp.routes.js';
import { canonicalJson, toolAction } from '../src/mcp/tools.js';
import { parsePolicyText } from '../src/policy/load-policy.js';

/** The MCP server's pure rules: tool → action mapping, the policy's `mcp` block, origins, which agent a token acts for. */
describe('request_permission: tool name → action', () => {
  it('without a mapping: tool: + the name lower-cased, characters outside a-z0-9_.- as _', () => {
    expect(toolAction({}, 'Bash')).toBe('tool:bash');
    expect(toolAction({}, 'mcp__github__create_issue')).toBe('tool:mcp__github__create_issue');
    expect(toolAction({}, 'Web Fetch/v2:x')).toBe('tool:web_fetch_v2_x');
    expect(toolAction({}, 'Ünïcode')).toBe('tool:_n_code');
  });

  it('the first matching glob of mcp.toolActions wins, in file order', () => {
    const policy = parsePolicyText('mcp:\n  toolActions:\n    "mcp__github__*": github:write\n    "mcp__*": mcp:any\n    Bash: shell:exec\n');
    expect(toolAction(policy.mcp.toolActions, 'mcp__github__create_issue')).toBe('github:write');
    expect(toolAction(policy.mcp.toolActions, 'mcp__slack__post')).toBe('mcp:any');
    expect(toolAction(policy.mcp.toolActions, 'Bash')).toBe('shell:exec');
    // Globs match the name as given (case-sensitive): "bash" is not "Bash".
    expect(toolAction(policy.mcp.toolActions, 'bash')).toBe('tool:bash');
  });

  it('the policy refuses a mapping to something that is not a concrete action', () => {
    expect(() => parsePolicyText('mcp:\n  toolActions:\n    Bash: "shell:*"\n')).toThrow(/mcp.toolActions.Bash: expected a concrete action/);
    expect(() => parsePolicyText('mcp:\n  toolActions:\n    Bash: Shell\n')).toThrow(/expected a concrete action/);
    expect(() => parsePolicyText('mcp:\n  toolMap: {}\n')).toThrow(/unknown key/);
    expect(parsePolicyText('{}').mcp).toEqual({ toolActions: {} });
  });

  it('input hashes do not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
  });
});

describe('origins', () => {
  it('no Origin (an MCP client, not a browser) passes', () => {
    expect(originAllowed(undefined, 'armalo.example.com', undefined)).toBe(true);
  });
  it('without ARMALO_PUBLIC_URL the Origin must be the Host (host and port)', () => {
    expect(originAllowed('http://127.0.0.1:3000', '127.0.0.1:3000', undefined)).toBe(true);
    expect(originAllowed('http://127.0.0.1:4000', '127.0.0.1:3000', undefined)).toBe(false);
    expect(originAllowed('https://evil.example', '127.0.0.1:3000', undefined)).toBe(false);
    expect(originAllowed('null', '127.0.0.1:3000', undefined)).toBe(false);
    expect(originAllowed('not a url', '127.0.0.1:3000', undefined)).toBe(false);
    expect(originAllowed('http://x', undefined, undefined)).toBe(false);
  });
  it('with ARMALO_PUBLIC_URL the Origin must be exactly its origin', () => {
    const pub = 'https://armalo.example.com/base';
    expect(originAllowed('https://armalo.example.com', 'internal:3000', pub)).toBe(true);
    expect(originAllowed('http://armalo.example.com', 'armalo.example.com', pub)).toBe(false);
    expect(originAllowed('https://armalo.example.com:8443', 'armalo.example.com', pub)).toBe(false);
  });
});

describe('which agent a session acts for', () => {
  const q = (s: string) => new URLSearchParams(s);
  const agentToken = { name: 'bot', scope: { kind: 'agent', agentId: 'pay-bot' } } as const;
  const platform = { name: 'svc', scope: { kind: 'platform' } } as const;
  it('an agent token fixes it; naming another agent is 403', () => {
    expect(sessionAgent(agentToken, q(''))).toEqual({ agentId: 'pay-bot' });
    expect(sessionAgent(agentToken, q('agentId=pay-bot'))).toEqual({ agentId: 'pay-bot' });
    expect(sessionAgent(agentToken, q('agentId=other'))).toMatchObject({ status: 403 });
  });
  it('a platform token names it on the URL; missing or malformed is 400', () => {
    expect(sessionAgent(platform, q('agentId=other'))).toEqual({ agentId: 'other' });
    expect(sessionAgent(platform, q(''))).toMatchObject({ status: 400 });
    expect(sessionAgent(platform, q('agentId=../x'))).toMatchObject({ status: 400 });
  });
});
