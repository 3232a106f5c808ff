import { parseDuration } from '../domain/duration.js';
import { SCOPE_PATTERN } from '../domain/scope.js';
import { AGENT_STATUSES, RISK_TIERS, type AgentStatus, type RiskTier } from '../domain/agent.js';
import { CHAT_SELECTOR_KEYS, type FleetSelector } from '../domain/fleet-selector.js';
import { decodeCursor, type CursorKind } from '../core/cursor.js';

/**
 * The `/armalo` grammar, shared by every chat platform (Slack slash command text, a message to the
 * bot in Teams). Pure: text in, a command or a specific error with the usage line out.
 */

export const MAX_TTL_MS = 30 * 24 * 3600 * 1000;
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Every command of the grammar, in the order `help` lists them: its usage line (what the parser
 * accepts), one sentence on what it does, and its place in the Teams command menu. This list is the
 * one source of the `help` answer, the usage line of a refusal, the README's command lists, the Slack
 * manifest's usage hint and the Teams manifest's command menus (`npm run generate` rewrites the
 * documents; test/command-docs.test.ts fails when they drift).
 */
export interface CommandSpec {
  /** The command word. */
  name: string;
  /** What follows the command prefix: `/armalo <usage>` in Slack, `<usage>` as a message in Teams. */
  usage: string;
  /** What it does, in one sentence (README tables, Teams menu tooltips are the usage line). */
  summary: string;
  /**
   * Place in the Teams command menu (1 first). Teams shows at most 10 commands per scope: the ten
   * most used in an incident are listed; the others are typed (help lists every command).
   */
  menu?: number;
}

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'help', usage: 'help', summary: 'Lists every command (also the answer to anything the bot does not understand).' },
  { name: 'status', usage: 'status <agent>', summary: "The agent's status, each grant's state, its open incident and its last actions.", menu: 1 },
  {
    name: 'contain',
    usage: 'contain <agent>|<selector> [--ttl 2h] [--dry-run] [reason…]',
    summary:
      'Suspends every grant except those kept in containment; `--ttl` lifts it by itself, `--dry-run` only shows what would change. A selector (`scope:payments:*`, `owner:<email>`, `risk:<tier>`, combined with AND) contains every matching agent as one fleet incident.',
    menu: 2,
  },
  { name: 'narrow', usage: 'narrow <agent>|<selector> <scope>[,<scope>…] [--ttl 2h] [--dry-run] [reason…]', summary: 'Suspends the grants matching the scopes (globs such as `payments:*`), of one agent or of every agent a selector matches.', menu: 3 },
  { name: 'revoke', usage: 'revoke <agent> [reason…]', summary: 'The kill switch: every grant stops. Asks the requester to confirm within 5 minutes.', menu: 6 },
  {
    name: 'restore',
    usage: 'restore <agent>|<selector> [reason…]',
    summary: 'Gives back the grants held before the incident; a second person confirms when the policy says so. By a selector: lifts exactly what the fleet action with that selector holds.',
    menu: 7,
  },
  { name: 'audit', usage: 'audit <agent> | audit verify', summary: "The agent's latest audit entries; `audit verify` checks the whole hash chain.", menu: 10 },
  { name: 'approvals', usage: 'approvals', summary: 'The approval requests waiting on you, each with approve and deny, and those decided recently.', menu: 4 },
  { name: 'score', usage: 'score <agent>', summary: "The agent's trust score and tier.", menu: 9 },
  { name: 'subscribe', usage: 'subscribe <agent|*> [scores|incidents|approvals|all]', summary: 'Posts score changes, incidents or approval cards of an agent (`*`: every agent) in this channel.' },
  { name: 'packet', usage: 'packet <agent> [for <company>] [workflow <name>] | packet verify <id>', summary: 'Builds a trust packet (JSON, Markdown, PDF) to share; `packet verify` checks one by its id.' },
  { name: 'unsubscribe', usage: 'unsubscribe <agent|*> [scores|incidents|approvals|all]', summary: 'Stops those posts in this channel.' },
  { name: 'agents', usage: 'agents [all|active|narrowed|contained|revoked]', summary: 'Lists agents, optionally of one status, a page at a time.', menu: 8 },
  { name: 'incidents', usage: 'incidents', summary: 'Lists the open incidents, newest first.', menu: 5 },
  { name: 'console', usage: 'console', summary: 'Sends you, privately, a one-time link (5 minutes) that signs you in to the web console for 8 hours.' },
];

/** Teams shows at most this many commands per command list (scope) of a bot. */
export const TEAMS_MENU_LIMIT = 10;

/** The usage line of each command, by command word. */
export const USAGE: Record<string, string> = Object.fromEntries(COMMANDS.map((c) => [c.name, c.usage]));

/** The commands of the Teams command menu, in menu order (at most TEAMS_MENU_LIMIT). */
export function teamsMenu(): CommandSpec[] {
  return COMMANDS.filter((c) => c.menu !== undefined)
    .sort((a, b) => a.menu! - b.menu!)
    .slice(0, TEAMS_MENU_LIMIT);
}

/** Commands of the grammar that later capabilities provide; they answer that they are not available yet. */
export const NOT_YET = [] as const;
export const SUBSCRIPTION_KINDS = ['scores', 'incidents', 'approvals'] as const;

export type ChatCommand =
  | { kind: 'help' }
  | { kind: 'approvals' }
  /** A private one-time sign-in link to the web console. */
  | { kind: 'console' }
  | { kind: 'score'; agentId: string }
  | { kind: 'packet'; agentId: string; audience?: string; workflow?: string }
  | { kind: 'packet-verify'; packetId: string }
  | { kind: 'subscribe' | 'unsubscribe'; agentPattern: string; kinds: (typeof SUBSCRIPTION_KINDS)[number][] }
  | { kind: 'status'; agentId: string }
  /** A page of agents (every status unless one is named); `after` is the cursor a "more" button carries. */
  | { kind: 'agents'; status?: AgentStatus; after?: string }
  /** A page of open incidents, newest first. */
  | { kind: 'incidents'; after?: string }
  | { kind: 'audit'; agentId: string }
  | { kind: 'audit-verify' }
  | { kind: 'contain'; agentId: string; ttlMs?: number; dryRun: boolean; reason: string }
  | { kind: 'narrow'; agentId: string; scopes: string[]; ttlMs?: number; dryRun: boolean; reason: string }
  | { kind: 'revoke'; agentId: string; dryRun: boolean; reason: string }
  | { kind: 'restore'; agentId: string; dryRun: boolean; reason: string; breakGlass?: true }
  /** A contain, narrow or restore of every agent a selector matches (one fleet incident). */
  | { kind: 'fleet'; action: 'contain' | 'narrow' | 'restore'; selector: FleetSelector; scopes?: string[]; ttlMs?: number; dryRun: boolean; reason: string };

export type ParseResult = { ok: true; command: ChatCommand } | { ok: false; error: string; usage: string };

/** The emergency form of restore (policy `permissions.breakGlass`), listed in the help after the usage lines. */
export const BREAK_GLASS_USAGE = 'restore <agent> --break-glass <reason of 20+ characters>  (emergency: alone, announced loudly)';

/** Every usage line, in help order: each command's, then the emergency form of restore. */
export function usageLines(): string[] {
  return [...COMMANDS.map((c) => c.usage), BREAK_GLASS_USAGE];
}

/** Everything the bot understands, one line per command (the answer to `help` and to a bad command). */
export function usageText(prefix = '/armalo'): string {
  return usageLines()
    .map((u) => (prefix ? `${prefix} ${u}` : u))
    .join('\n');
}

const fail = (error: string, sub?: string): ParseResult => ({
  ok: false,
  error,
  usage: sub && USAGE[sub] ? `/armalo ${USAGE[sub]}${sub === 'restore' ? `\n/armalo ${BREAK_GLASS_USAGE}` : ''}` : usageText(),
});

/** Whitespace that separates words: JavaScript's `\s` without U+FEFF (see tokenize). */
const SEPARATOR = /[^\S\uFEFF]/u;

/**
 * Splits on whitespace, keeping quoted runs together. Chat clients turn straight quotes into
 * typographic ones (“ ” ‘ ’), so those count as quotes too. An unclosed quote runs to the end.
 * U+FEFF (the byte-order mark) is whitespace to JavaScript's `\s` but invisible in chat: it stays inside
 * the word, so `contain \uFEFFbot` names no valid agent and is refused instead of acting on `bot`.
 */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const closing: Record<string, string> = { '"': '"', "'": "'", '“': '”', '”': '”', '‘': '’', '’': '’' };
  let i = 0;
  const s = text.normalize('NFC');
  while (i < s.length) {
    while (i < s.length && SEPARATOR.test(s[i]!)) i++;
    if (i >= s.length) break;
    let token = '';
    while (i < s.length && !SEPARATOR.test(s[i]!)) {
      const ch = s[i]!;
      const close = closing[ch];
      if (close) {
        const end = s.indexOf(close, i + 1);
        const stop = end === -1 ? s.length : end;
        token += s.slice(i + 1, stop);
        i = end === -1 ? s.length : end + 1;
      } else {
        token += ch;
        i++;
      }
    }
    tokens.push(token);
  }
  return tokens;
}

interface Flags {
  ttlMs?: number;
  dryRun: boolean;
  breakGlass?: true;
  rest: string[];
}

/** A break-glass restore must say why the second person was skipped: at least this many characters. */
export const BREAK_GLASS_MIN_REASON = 20;

function takeFlags(tokens: string[], sub: string, allowed: { ttl: boolean; dryRun: boolean; breakGlass?: boolean }): Flags | ParseResult {
  const flags: Flags = { dryRun: false, rest: [] };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '--') {
      flags.rest.push(...tokens.slice(i + 1));
      break;
    }
    // Chat clients turn `--` into an em or en dash; accept those too.
    const normalized = t.replace(/^[—–]/, '--');
    if (!normalized.startsWith('--')) {
      flags.rest.push(t);
      continue;
    }
    const [name, inline] = normalized.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (name === 'dry-run' && allowed.dryRun) {
      if (inline !== undefined) return fail('--dry-run takes no value', sub);
      flags.dryRun = true;
    } else if (name === 'break-glass' && allowed.breakGlass) {
      if (inline !== undefined) return fail('--break-glass takes no value; the reason follows the agent', sub);
      flags.breakGlass = true;
    } else if (name === 'ttl' && allowed.ttl) {
      const value = inline ?? tokens[++i];
      if (value === undefined) return fail('--ttl needs a duration, e.g. --ttl 2h', sub);
      const ms = parseDuration(value);
      if (ms === undefined || ms > MAX_TTL_MS) return fail(`--ttl ${value}: expected a duration such as 30m, 2h or 1d (at most 30d)`, sub);
      flags.ttlMs = ms;
    } else {
      const known = [allowed.ttl && '--ttl', allowed.dryRun && '--dry-run', allowed.breakGlass && '--break-glass'].filter(Boolean).join(', ');
      return fail(`unknown option --${name} for ${sub}${known ? ` (options: ${known})` : ' (it takes no options)'}`, sub);
    }
  }
  return flags;
}

function agentArg(tokens: string[], sub: string): { agentId: string } | ParseResult {
  const agentId = tokens[0];
  if (!agentId) return fail(`${sub} needs an agent`, sub);
  if (!AGENT_ID.test(agentId)) return fail(`"${agentId.slice(0, 80)}" is not an agent id (letters, digits, ".", "-", "_")`, sub);
  return { agentId };
}

const isResult = (v: object): v is ParseResult => 'ok' in v;

export function parseCommand(text: string): ParseResult {
  const tokens = tokenize(text);
  const sub = tokens.shift()?.toLowerCase();
  if (!sub || sub === 'help') return { ok: true, command: { kind: 'help' } };
  if ((NOT_YET as readonly string[]).includes(sub)) {
    return fail(`\`${sub}\` is not available yet; it arrives with a later release of the bot`);
  }
  if (!USAGE[sub]) return fail(`unknown command "${sub.slice(0, 40)}"`);

  switch (sub) {
    case 'approvals':
      if (tokens.length) return fail(`approvals takes nothing more; unexpected "${tokens[0]}"`, sub);
      return { ok: true, command: { kind: 'approvals' } };
    case 'console':
      if (tokens.length) return fail(`console takes nothing more; unexpected "${tokens[0]!.slice(0, 40)}"`, sub);
      return { ok: true, command: { kind: 'console' } };
    case 'packet': {
      if (tokens[0]?.toLowerCase() === 'verify') {
        const id = tokens[1];
        if (!id || !/^[0-9a-f-]{36}$/i.test(id) || tokens.length > 2) return fail('packet verify needs a packet id', sub);
        return { ok: true, command: { kind: 'packet-verify', packetId: id.toLowerCase() } };
      }
      const a = agentArg(tokens, sub);
      if (isResult(a)) return a;
      let audience: string | undefined;
      let workflow: string | undefined;
      const rest = tokens.slice(1);
      for (let i = 0; i < rest.length; ) {
        const word = rest[i]!.toLowerCase();
        const next = rest.slice(i + 1);
        const stop = next.findIndex((t) => ['for', 'workflow'].includes(t.toLowerCase()));
        const value = (stop === -1 ? next : next.slice(0, stop)).join(' ').trim();
        if ((word !== 'for' && word !== 'workflow') || !value) return fail(`expected "for <company>" or "workflow <name>", got "${rest.slice(i).join(' ').slice(0, 60)}"`, sub);
        if (word === 'for') audience = value.slice(0, 200);
        else workflow = value.slice(0, 200);
        i += 1 + (stop === -1 ? next.length : stop);
      }
      return { ok: true, command: { kind: 'packet', agentId: a.agentId, ...(audience ? { audience } : {}), ...(workflow ? { workflow } : {}) } };
    }
    case 'score': {
      const a = agentArg(tokens, sub);
      if (isResult(a)) return a;
      if (tokens.length > 1) return fail(`score takes only an agent; unexpected "${tokens[1]}"`, sub);
      return { ok: true, command: { kind: 'score', agentId: a.agentId } };
    }
    case 'subscribe':
    case 'unsubscribe': {
      const target = tokens[0];
      if (!target) return fail(`${sub} needs an agent or * (every agent)`, sub);
      if (target !== '*') {
        const a = agentArg(tokens, sub);
        if (isResult(a)) return a;
      }
      const words = tokens.slice(1).map((t) => t.toLowerCase());
      if (words.length > 1) return fail(`${sub} takes one kind; unexpected "${words[1]}"`, sub);
      const kind = words[0] ?? 'all';
      if (kind !== 'all' && !(SUBSCRIPTION_KINDS as readonly string[]).includes(kind)) return fail(`unknown kind "${kind}" (scores, incidents, approvals or all)`, sub);
      const kinds = kind === 'all' ? [...SUBSCRIPTION_KINDS] : [kind as (typeof SUBSCRIPTION_KINDS)[number]];
      return { ok: true, command: { kind: sub, agentPattern: target, kinds } };
    }
    case 'agents':
    case 'incidents':
      return parseListing(sub, tokens);
    case 'status': {
      const a = agentArg(tokens, sub);
      if (isResult(a)) return a;
      if (tokens.length > 1) return fail(`status takes only an agent; unexpected "${tokens[1]}"`, sub);
      return { ok: true, command: { kind: 'status', agentId: a.agentId } };
    }
    case 'audit': {
      if (tokens[0]?.toLowerCase() === 'verify' && tokens.length === 1) return { ok: true, command: { kind: 'audit-verify' } };
      const a = agentArg(tokens, sub);
      if (isResult(a)) return a;
      if (tokens.length > 1) return fail(`audit takes only an agent (or "verify"); unexpected "${tokens[1]}"`, sub);
      return { ok: true, command: { kind: 'audit', agentId: a.agentId } };
    }
    case 'contain':
    case 'narrow':
    case 'revoke':
    case 'restore': {
      const timed = sub === 'contain' || sub === 'narrow';
      const flags = takeFlags(tokens, sub, { ttl: timed, dryRun: true, breakGlass: sub === 'restore' });
      if (isResult(flags as object)) return flags as ParseResult;
      const { rest, ttlMs, dryRun, breakGlass } = flags as Flags;
      if (sub !== 'revoke' && rest[0]?.includes(':')) {
        if (breakGlass) return fail('--break-glass restores one agent; a restore by selector follows the policy', sub);
        return parseFleet(sub, rest, { ttlMs, dryRun });
      }
      const a = agentArg(rest, sub);
      if (isResult(a)) return a;
      let words = rest.slice(1);
      if (sub === 'narrow') {
        const list = words[0];
        if (!list) return fail('narrow needs the scopes to suspend, e.g. payments:* or crm:write,mail:send', sub);
        const scopes = [...new Set(list.split(',').map((s) => s.trim()).filter(Boolean))];
        const bad = scopes.find((s) => !SCOPE_PATTERN.test(s) || s.length > 200);
        if (bad !== undefined || scopes.length === 0) {
          return fail(`"${(bad ?? list).slice(0, 80)}" is not a scope (lowercase segments separated by ":", "*" as a wildcard)`, sub);
        }
        if (scopes.length > 50) return fail('narrow takes at most 50 scopes at once', sub);
        words = words.slice(1);
        const reason = words.join(' ').trim() || 'no reason given';
        return { ok: true, command: { kind: 'narrow', agentId: a.agentId, scopes, ttlMs, dryRun, reason: reason.slice(0, 2000) } };
      }
      const reason = (words.join(' ').trim() || 'no reason given').slice(0, 2000);
      if (sub === 'contain') return { ok: true, command: { kind: 'contain', agentId: a.agentId, ttlMs, dryRun, reason } };
      if (breakGlass) {
        if (dryRun) return fail('--break-glass cannot be combined with --dry-run: preview with a plain --dry-run first', sub);
        const said = words.join(' ').trim();
        if (said.length < BREAK_GLASS_MIN_REASON) {
          return fail(`--break-glass needs a reason of at least ${BREAK_GLASS_MIN_REASON} characters: why the second person cannot be reached and why now (you gave ${said.length})`, sub);
        }
        return { ok: true, command: { kind: 'restore', agentId: a.agentId, dryRun: false, reason: said.slice(0, 2000), breakGlass: true } };
      }
      return { ok: true, command: { kind: sub, agentId: a.agentId, dryRun, reason } };
    }
  }
  return fail(`unknown command "${sub}"`);
}

const SELECTOR_TOKEN = /^([A-Za-z][A-Za-z-]*):(.*)$/s;

/**
 * `contain|narrow|restore <selector…> …`: leading `key:value` tokens (`scope:`, `owner:`, `risk:`),
 * combined with AND. An unknown key is refused (never read as part of the reason: a typo must not
 * widen the set); for narrow the selector ends where the scope list begins.
 */
function parseFleet(sub: 'contain' | 'narrow' | 'restore', tokens: string[], flags: { ttlMs?: number; dryRun: boolean }): ParseResult {
  const selector: FleetSelector = {};
  let i = 0;
  for (; i < tokens.length; i++) {
    const m = SELECTOR_TOKEN.exec(tokens[i]!);
    if (!m) break;
    const word = m[1]!.toLowerCase();
    const field = Object.hasOwn(CHAT_SELECTOR_KEYS, word) ? CHAT_SELECTOR_KEYS[word] : undefined;
    if (!field) {
      if (sub === 'narrow' && i > 0) break;
      return fail(`unknown selector key "${word.slice(0, 40)}:" (use scope:<glob>, owner:<email> or risk:<tier>)`, sub);
    }
    if (selector[field] !== undefined) return fail(`selector key ${word}: is given twice (keys combine with AND, each once)`, sub);
    const value = m[2]!;
    if (!value) return fail(`selector ${word}: needs a value, e.g. scope:payments:*, owner:dev@example.com or risk:high`, sub);
    if (field === 'scope') {
      if (!SCOPE_PATTERN.test(value) || value.length > 200) return fail(`"${value.slice(0, 80)}" is not a scope glob (lowercase segments separated by ":", "*" as a wildcard)`, sub);
      selector.scope = value;
    } else if (field === 'owner') {
      if (value.length > 320) return fail('owner: is at most 320 characters', sub);
      selector.owner = value;
    } else {
      const tier = value.toLowerCase();
      if (!(RISK_TIERS as readonly string[]).includes(tier)) return fail(`risk:${value.slice(0, 40)} is not a risk tier (${RISK_TIERS.join(', ')})`, sub);
      selector.riskTier = tier as RiskTier;
    }
  }
  let words = tokens.slice(i);
  let scopes: string[] | undefined;
  if (sub === 'narrow') {
    const list = words[0];
    if (!list) return fail('narrow needs the scopes to suspend after the selector, e.g. narrow scope:payments:* payments:transfer', sub);
    scopes = [...new Set(list.split(',').map((x) => x.trim()).filter(Boolean))];
    const bad = scopes.find((x) => !SCOPE_PATTERN.test(x) || x.length > 200);
    if (bad !== undefined || scopes.length === 0) return fail(`"${(bad ?? list).slice(0, 80)}" is not a scope (lowercase segments separated by ":", "*" as a wildcard)`, sub);
    if (scopes.length > 50) return fail('narrow takes at most 50 scopes at once', sub);
    words = words.slice(1);
  }
  const reason = (words.join(' ').trim() || 'no reason given').slice(0, 2000);
  return { ok: true, command: { kind: 'fleet', action: sub, selector, ...(scopes ? { scopes } : {}), ...(flags.ttlMs !== undefined ? { ttlMs: flags.ttlMs } : {}), dryRun: flags.dryRun, reason } };
}

/**
 * `agents [status] [--after <cursor>]` and `incidents [--after <cursor>]`. The cursor is the one the
 * previous page's "more" button (or its "next page" line) carries; a bad one is refused here.
 */
function parseListing(sub: 'agents' | 'incidents', tokens: string[]): ParseResult {
  let status: AgentStatus | 'all' | undefined;
  let after: string | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const normalized = token.replace(/^[—–]/, '--');
    if (normalized === '--after' || normalized.startsWith('--after=')) {
      const value = normalized === '--after' ? tokens[++i] : normalized.slice('--after='.length);
      if (!value) return fail('--after needs the cursor of the previous page', sub);
      if (after !== undefined) return fail('--after is given twice', sub);
      const decoded = decodeCursor(sub as CursorKind, value);
      if (!decoded.ok) return fail(`--after: ${decoded.error}`, sub);
      after = value;
    } else if (normalized.startsWith('--')) {
      return fail(`unknown option ${normalized.slice(0, 40)} for ${sub} (options: --after)`, sub);
    } else if (sub === 'agents' && status === undefined && ['all', ...AGENT_STATUSES].includes(token.toLowerCase())) {
      status = token.toLowerCase() as AgentStatus | 'all';
    } else {
      return fail(sub === 'agents' ? `"${token.slice(0, 40)}" is not a status to list (all, active, narrowed, contained or revoked)` : `incidents lists the open incidents and takes nothing more; unexpected "${token.slice(0, 40)}"`, sub);
    }
  }
  if (sub === 'incidents') return { ok: true, command: { kind: 'incidents', ...(after ? { after } : {}) } };
  return { ok: true, command: { kind: 'agents', ...(status && status !== 'all' ? { status } : {}), ...(after ? { after } : {}) } };
}
