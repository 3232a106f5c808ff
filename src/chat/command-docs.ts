import { parse as parseYaml } from 'yaml';
import { COMMANDS, TEAMS_MENU_LIMIT, USAGE, teamsMenu, usageLines } from './command-parser.js';

/**
 * The documents that list the commands, rendered from the one grammar (COMMANDS in command-parser.ts):
 * the README's Slack and Teams command lists, the Slack manifest's slash command, the Teams manifest's
 * command menus and the menu sentence of the Teams setup guide. Pure: the file's current text in, its
 * text as it should be out. `npm run generate` writes them; test/command-docs.test.ts fails on drift.
 */

/** The command Slack's composer hints at while people type `/armalo`: the most urgent one. */
export const SLACK_USAGE_HINT_COMMAND = 'contain';

const cell = (s: string) => s.replace(/\|/g, '\\|');
const code = (s: string) => `\`${cell(s)}\``;
/** Markdown in summaries is backticks only; a table cell needs its pipes escaped. */
const summaryCell = (s: string) => cell(s);

const begin = (name: string) => `<!-- BEGIN generated:${name} (npm run generate, from COMMANDS in src/chat/command-parser.ts; do not edit) -->`;
const end = (name: string) => `<!-- END generated:${name} -->`;

/** Replaces the text between a block's markers; a file without them is an error, not a silent no-op. */
export function replaceBlock(text: string, name: string, body: string): string {
  const startRe = new RegExp(`<!-- BEGIN generated:${name}\\b[^\\n]*-->\\n`);
  const start = startRe.exec(text);
  const stop = text.indexOf(end(name));
  if (!start || stop === -1 || stop < start.index) throw new Error(`the generated block "${name}" is missing its markers (${begin(name)} … ${end(name)})`);
  return `${text.slice(0, start.index)}${begin(name)}\n${body.trimEnd()}\n${text.slice(stop)}`;
}

/** The names of the commands left out of the Teams menu, in help order. */
const offMenu = () => COMMANDS.filter((c) => c.name !== 'help' && !teamsMenu().includes(c)).map((c) => c.name);

const list = (words: string[]) => (words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`);

export function slackCommandsMarkdown(): string {
  return [
    '```',
    ...usageLines().map((u) => `/armalo ${u}`),
    '```',
    '',
    '| command | what it does |',
    '|---|---|',
    ...COMMANDS.map((c) => `| ${code(c.name)} | ${summaryCell(c.summary)} |`),
  ].join('\n');
}

export function teamsMenuSentence(): string {
  const menu = teamsMenu().map((c) => `\`${c.name}\``);
  return `The command menu Teams shows under the compose box lists the ${menu.length} most used commands (${menu.join(', ')}): Teams allows at most ${TEAMS_MENU_LIMIT} per scope. The others (${list(offMenu().map((n) => `\`${n}\``))}) are typed; \`help\`, or anything the bot does not understand, answers with the full list.`;
}

export function teamsCommandsMarkdown(): string {
  const inMenu = new Set(teamsMenu().map((c) => c.name));
  return [
    '| message | what it does | in the menu |',
    '|---|---|---|',
    ...COMMANDS.map((c) => `| ${code(c.usage)} | ${summaryCell(c.summary)} | ${inMenu.has(c.name) ? 'yes' : ''} |`),
    '',
    teamsMenuSentence(),
  ].join('\n');
}

export function renderReadme(text: string): string {
  return replaceBlock(replaceBlock(text, 'slack-commands', slackCommandsMarkdown()), 'teams-commands', teamsCommandsMarkdown());
}

export function renderTeamsReadme(text: string): string {
  return replaceBlock(text, 'teams-menu', teamsMenuSentence());
}

/** The slash command's description: what it is for and every command word. */
export function slackCommandDescription(): string {
  return `Incident response for AI agents: ${COMMANDS.filter((c) => c.name !== 'help')
    .map((c) => c.name)
    .join(', ')}. Try /armalo help.`;
}

/** A YAML scalar: plain when it reads back as the same string, else double-quoted. */
function yamlScalar(value: string): string {
  try {
    if (parseYaml(`v: ${value}`)?.v === value) return value;
  } catch {
    // not plain-safe
  }
  return JSON.stringify(value);
}

/** Rewrites the `/armalo` slash command's description and usage_hint lines, keeping every comment. */
export function renderSlackManifest(text: string): string {
  const hint = USAGE[SLACK_USAGE_HINT_COMMAND]!;
  let seen = 0;
  const out = text.replace(/^(\s+)(description|usage_hint): .*$/gm, (line, indent: string, key: string) => {
    // Only the slash command's keys (indented under `slash_commands`), not display_information's.
    if (indent.length < 6) return line;
    seen++;
    return `${indent}${key}: ${yamlScalar(key === 'usage_hint' ? hint : slackCommandDescription())}`;
  });
  if (seen !== 2) throw new Error(`manifests/slack/manifest.yaml: expected the slash command's description and usage_hint, found ${seen} of them`);
  return out;
}

/** Rewrites the bot's command lists (one per scope, the same menu in each). */
export function renderTeamsManifest(text: string): string {
  const manifest = JSON.parse(text) as { bots: { scopes: string[]; commandLists?: unknown }[] };
  const bot = manifest.bots[0]!;
  bot.commandLists = bot.scopes.map((scope) => ({ scopes: [scope], commands: teamsMenu().map((c) => ({ title: c.name, description: c.usage })) }));
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** Every generated command document: path from the repository root, and how to render it. */
export const COMMAND_DOCS: { file: string; render: (current: string) => string }[] = [
  { file: 'README.md', render: renderReadme },
  { file: 'manifests/teams/README.md', render: renderTeamsReadme },
  { file: 'manifests/slack/manifest.yaml', render: renderSlackManifest },
  { file: 'manifests/teams/manifest.json', render: renderTeamsManifest },
];
