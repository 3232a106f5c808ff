import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { COMMAND_DOCS, renderReadme, renderTeamsManifest, replaceBlock, SLACK_USAGE_HINT_COMMAND } from '../src/chat/command-docs.js';
import { COMMANDS, parseCommand, TEAMS_MENU_LIMIT, teamsMenu, USAGE, usageLines, usageText } from '../src/chat/command-parser.js';

/**
 * The command lists people read (the README's Slack and Teams lists, the Slack manifest's slash
 * command, the Teams manifest's command menus, the Teams setup guide, the `help` answer) all come
 * from the one grammar, COMMANDS in src/chat/command-parser.ts. Change the grammar and run
 * `npm run generate`; this test fails until the checked-in documents match.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

const block = (text: string, name: string) => {
  const start = text.indexOf(`<!-- BEGIN generated:${name}`);
  const end = text.indexOf(`<!-- END generated:${name} -->`);
  expect(start, `block ${name}`).toBeGreaterThan(-1);
  return text.slice(start, end);
};

describe('command lists generated from the grammar', () => {
  it.each(COMMAND_DOCS.map((d) => [d.file, d] as const))('%s is up to date (else: npm run generate)', (file, doc) => {
    const current = read(file);
    expect(doc.render(current), `${file} differs from what the grammar generates: run npm run generate`).toBe(current);
  });

  it('the README lists every command for Slack and for Teams, and no longer calls working commands unavailable', () => {
    const readme = read('README.md');
    const slack = block(readme, 'slack-commands');
    for (const line of usageLines()) expect(slack).toContain(`/armalo ${line}`);
    const teams = block(readme, 'teams-commands');
    for (const c of COMMANDS) expect(teams).toContain(`\`${c.usage.replace(/\|/g, '\\|')}\``);
    expect(readme).not.toMatch(/not available yet/);
  });

  it('help answers with every usage line of the grammar', () => {
    expect(parseCommand('help')).toEqual({ ok: true, command: { kind: 'help' } });
    expect(usageText().split('\n')).toEqual(usageLines().map((u) => `/armalo ${u}`));
    expect(usageLines().slice(0, COMMANDS.length)).toEqual(COMMANDS.map((c) => c.usage));
    expect(Object.keys(USAGE)).toEqual(COMMANDS.map((c) => c.name));
  });

  it('every command word of the grammar is one the parser knows', () => {
    for (const c of COMMANDS) {
      const parsed = parseCommand(c.name);
      if (!parsed.ok) expect(parsed.error, c.name).not.toMatch(/unknown command/);
    }
  });

  it("the Slack manifest's usage hint and description come from the grammar", () => {
    const command = parseYaml(read('manifests/slack/manifest.yaml')).features.slash_commands[0];
    expect(command.usage_hint).toBe(USAGE[SLACK_USAGE_HINT_COMMAND]);
    for (const c of COMMANDS.filter((c) => c.name !== 'help')) expect(command.description).toContain(c.name);
  });

  it("the Teams manifest's menus are the grammar's most used commands, at most ten, the same in every scope", () => {
    const menu = teamsMenu();
    expect(menu.length).toBe(Math.min(TEAMS_MENU_LIMIT, COMMANDS.filter((c) => c.menu !== undefined).length));
    expect(menu.length).toBeLessThanOrEqual(10);
    const lists = JSON.parse(read('manifests/teams/manifest.json')).bots[0].commandLists as { commands: { title: string; description: string }[] }[];
    for (const list of lists) expect(list.commands).toEqual(menu.map((c) => ({ title: c.name, description: c.usage })));
    // The guide says which commands are in the menu and which are typed.
    const guide = read('manifests/teams/README.md');
    for (const c of COMMANDS.filter((c) => c.name !== 'help')) expect(block(guide, 'teams-menu')).toContain(`\`${c.name}\``);
  });

  it('a hand edit inside a generated block, or a removed marker, is caught', () => {
    const readme = read('README.md');
    const edited = readme.replace('/armalo incidents\n', '');
    expect(edited).not.toBe(readme);
    expect(renderReadme(edited)).toBe(readme);
    expect(() => replaceBlock(readme.replace('<!-- END generated:slack-commands -->', ''), 'slack-commands', 'x')).toThrow(/missing its markers/);
    const manifest = read('manifests/teams/manifest.json');
    const stale = JSON.parse(manifest);
    stale.bots[0].commandLists[0].commands.pop();
    expect(renderTeamsManifest(`${JSON.stringify(stale, null, 2)}\n`)).toBe(manifest);
  });
});
