import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { SLACK_EVENTS_PATH, SLASH_COMMAND } from '../src/slack/slack-app.js';
import { USAGE } from '../src/chat/command-parser.js';

/**
 * The Slack app manifest (manifests/slack/manifest.yaml) against Slack's own published JSON Schema
 * (draft-07, from the slackapi/manifest-schema project), and against the code it has to match.
 * Offline: the schema is vendored in schemas/slack/ with its MIT licence.
 */

const SCHEMA_URL = new URL('../schemas/slack/app-manifest.v1.schema.json', import.meta.url);
const MANIFEST_URL = new URL('../manifests/slack/manifest.yaml', import.meta.url);

/** Bot scopes the code cannot work without: slash command, chat.postMessage/chat.update, users.lookupByEmail. */
const REQUIRED_BOT_SCOPES = ['commands', 'chat:write', 'users:read.email'];
/**
 * Everything the manifest may ask for. Beyond the required ones: chat:write.public (post into the
 * incidents channel without an invitation), users:read (Slack grants users:read.email only with it), and the
 * history scopes plus im:write, with which a retried post finds a notice a dead worker may have posted
 * (conversations.history / replies / open; without them a retry may post a duplicate).
 * A new scope is a new permission every workspace admin must grant: add it here on purpose, with the call
 * that needs it.
 */
const ALLOWED_BOT_SCOPES = [...REQUIRED_BOT_SCOPES, 'chat:write.public', 'users:read', 'channels:history', 'groups:history', 'im:history', 'im:write'];

// ajv-formats is a CommonJS module; under NodeNext its default import is `module.exports`, whose
// `.default` is the plugin (the same function at run time).
const addFormats = addFormatsModule.default;

function loadSchema(): Record<string, unknown> {
  const path = fileURLToPath(SCHEMA_URL);
  if (!existsSync(path)) {
    throw new Error(
      `Slack's app manifest schema is missing: expected ${path} (a vendored copy of Slack's published schema).`,
    );
  }
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function compileSchema(): ValidateFunction {
  // Strict mode stays on, so a keyword nobody knows fails loudly instead of being skipped. Slack's schema
  // uses two keywords of its own, declared here: `_note`, a comment, and `regex` (on
  // display_information.background_color), which Slack means as a pattern and which is enforced as one.
  // strictTypes is off: the schema puts `minItems` on string-typed items in the external auth providers
  // section (harmless, and not ours to fix), which strictTypes would log on every run.
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  // The only format in the schema is `uri` (on a top-level `$schema` property); ajv-formats knows it.
  addFormats(ajv);
  ajv.addKeyword({ keyword: '_note' });
  ajv.addKeyword({
    keyword: 'regex',
    type: 'string',
    schemaType: 'string',
    validate: (pattern: string, data: string) => new RegExp(pattern, 'u').test(data),
    error: { message: 'must match the regex of the schema' },
  });
  return ajv.compile(loadSchema());
}

function loadManifest(): any {
  return parse(readFileSync(MANIFEST_URL, 'utf8'));
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`).join('\n');
}

describe('Slack app manifest', () => {
  let validate: ValidateFunction;
  let manifest: any;

  beforeAll(() => {
    validate = compileSchema();
    manifest = loadManifest();
  });

  it("is valid against Slack's manifest schema", () => {
    const ok = validate(manifest);
    if (!ok) console.error(`manifests/slack/manifest.yaml does not match Slack's schema:\n${describeErrors(validate.errors)}`);
    expect(describeErrors(validate.errors)).toBe('');
    expect(ok).toBe(true);
    expect(manifest._metadata).toEqual({ major_version: 1, minor_version: 1 });
  });

  it('declares the slash command the code answers, at the path the code serves', () => {
    const commands = manifest.features.slash_commands as any[];
    expect(commands.map((c) => c.command)).toEqual([SLASH_COMMAND]);
    const [command] = commands;
    expect(new URL(command.url).pathname).toBe(SLACK_EVENTS_PATH);
    expect(command.should_escape).toBe(false);
    // The hint is a real usage line of the grammar (without the command name).
    expect(Object.values(USAGE)).toContain(command.usage_hint);
  });

  it('sends interactivity (the confirm and cancel buttons) to the same path', () => {
    const { interactivity } = manifest.settings;
    expect(interactivity.is_enabled).toBe(true);
    expect(new URL(interactivity.request_url).pathname).toBe(SLACK_EVENTS_PATH);
  });

  it('uses HTTP mode with HTTPS URLs on one host, which the README says to replace', () => {
    expect(manifest.settings.socket_mode_enabled).toBe(false);
    // Token rotation would expire SLACK_BOT_TOKEN after 12 hours; the service never refreshes it.
    expect(manifest.settings.token_rotation_enabled).toBe(false);
    const urls = [...manifest.features.slash_commands.map((c: any) => c.url), manifest.settings.interactivity.request_url].map((u: string) => new URL(u));
    expect(new Set(urls.map((u) => u.protocol))).toEqual(new Set(['https:']));
    expect(new Set(urls.map((u) => u.host))).toEqual(new Set(['armalo.example.com']));
    // No events are handled yet; if they are subscribed later, they go to the same endpoint.
    const events = manifest.settings.event_subscriptions;
    if (events?.request_url) expect(new URL(events.request_url).pathname).toBe(SLACK_EVENTS_PATH);
  });

  it('asks for every bot scope the code needs, and nothing outside the allow-list', () => {
    const bot = manifest.oauth_config.scopes.bot as string[];
    for (const scope of REQUIRED_BOT_SCOPES) expect(bot, `missing bot scope ${scope}`).toContain(scope);
    expect(bot.filter((s) => !ALLOWED_BOT_SCOPES.includes(s)), 'bot scopes outside the allow-list').toEqual([]);
    expect(new Set(bot).size, 'a bot scope is listed twice').toBe(bot.length);
    // users:read.email is granted only with users:read.
    if (bot.includes('users:read.email')) expect(bot).toContain('users:read');
    // No user token is used: the bot acts as itself.
    expect(manifest.oauth_config.scopes.user ?? []).toEqual([]);
  });

  describe('the validator rejects broken manifests', () => {
    const rejects = (mutate: (m: any) => void): ErrorObject[] => {
      const copy = structuredClone(manifest);
      mutate(copy);
      expect(validate(copy)).toBe(false);
      return validate.errors ?? [];
    };

    it('a misspelled key', () => {
      const errors = rejects((m) => {
        m.features.slash_command = m.features.slash_commands;
        delete m.features.slash_commands;
      });
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'additionalProperties', instancePath: '/features', params: { additionalProperty: 'slash_command' } }));
    });

    it('a missing required field', () => {
      const errors = rejects((m) => {
        delete m.display_information.name;
      });
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'required', instancePath: '/display_information', params: { missingProperty: 'name' } }));
    });

    it('a slash command without its leading slash, and a request URL that is not http(s)', () => {
      const errors = rejects((m) => {
        m.features.slash_commands[0].command = 'armalo';
        m.settings.interactivity.request_url = 'armalo.example.com/slack/events';
      });
      expect(errors.map((e) => `${e.instancePath} ${e.keyword}`)).toEqual(
        expect.arrayContaining(['/features/slash_commands/0/command pattern', '/settings/interactivity/request_url pattern']),
      );
    });

    it("Slack's own `regex` keyword is enforced (background_color)", () => {
      const errors = rejects((m) => {
        m.display_information.background_color = 'black';
      });
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'regex', instancePath: '/display_information/background_color' }));
    });
  });
});
