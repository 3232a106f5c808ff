import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Ajv04Module from 'ajv-draft-04';
import type { ErrorObject, ValidateFunction } from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';
import { strFromU8, unzipSync } from 'fflate';
import { parseCommand, USAGE } from '../src/chat/command-parser.js';
import { BRAND_COLOR, crc32, drawColorIcon, drawOutlineIcon, encodePng, type RgbaImage } from '../scripts/teams-icons.js';
import { buildTeamsPackage, PLACEHOLDER_APP_ID, PLACEHOLDER_HOST, validateTeamsManifest } from '../scripts/teams-package.js';

/**
 * The Teams app package: manifests/teams/manifest.json against Microsoft's JSON Schema for the manifest
 * version it declares (the copy shipped in @microsoft/app-manifest, so offline), against the code it has
 * to match (the /armalo grammar), the two icons Teams requires, and `npm run teams:package`.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEAMS_DIR = join(ROOT, 'manifests', 'teams');
const MANIFEST_PATH = join(TEAMS_DIR, 'manifest.json');
const SCOPES = ['personal', 'team', 'groupChat'];
/** Teams' limits on a bot's command lists (also in the schema). */
const MAX_COMMANDS = 10;
const MAX_TITLE = 32;
const MAX_DESCRIPTION = 128;
/** `help` is what the bot answers to anything it does not understand; it needs no menu entry. */
const MENU_COMMANDS = Object.keys(USAGE).filter((c) => c !== 'help');

// Both are CommonJS modules; under NodeNext their default import is `module.exports`, whose `.default`
// is the class or plugin (the same value at run time).
const Ajv04 = Ajv04Module.default;
const addFormats = addFormatsModule.default;

function loadManifest(): any {
  return JSON.parse(readFileSync(MANIFEST_PATH, 'utf8'));
}

/** node_modules/@microsoft/app-manifest/build/json-schemas/teams/v<manifestVersion>/MicrosoftTeams.schema.json */
function schemaPath(manifestVersion: string): string {
  const pkg = dirname(createRequire(import.meta.url).resolve('@microsoft/app-manifest/package.json'));
  const path = join(pkg, 'build', 'json-schemas', 'teams', `v${manifestVersion}`, 'MicrosoftTeams.schema.json');
  if (!existsSync(path)) throw new Error(`@microsoft/app-manifest ships no Teams schema v${manifestVersion} (expected ${path})`);
  return path;
}

function compileSchema(manifestVersion: string): ValidateFunction {
  const schema = JSON.parse(readFileSync(schemaPath(manifestVersion), 'utf8')) as { $schema: string };
  // Microsoft's Teams schemas are draft-04 (every version the package ships), which Ajv 8 handles only
  // through its draft-04 build. Strict mode stays on; strictTypes and strictRequired are off for two
  // harmless quirks of the schema (`additionalProperties` without `type` at the root, an undeclared
  // property under `dependencies`).
  expect(schema.$schema).toBe('http://json-schema.org/draft-04/schema#');
  const ajv = new Ajv04({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
  addFormats(ajv);
  return ajv.compile(schema);
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`).join('\n');
}

// ------------------------------------------------------------------------------------------------
// A PNG reader written independently of the encoder under test: chunks and their CRCs, IHDR, the
// inflated IDAT stream, all five scanline filters.

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** zlib.crc32 exists from Node 20.15; older Node 20 releases check with the script's own CRC-32. */
const referenceCrc32: (data: Uint8Array) => number = typeof zlib.crc32 === 'function' ? (d) => zlib.crc32(d) : crc32;

interface DecodedPng extends RgbaImage {
  bitDepth: number;
  colorType: number;
  interlace: number;
  chunkTypes: string[];
}

function decodePng(file: Buffer): DecodedPng {
  if (!file.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('no PNG signature');
  const chunks: { type: string; data: Buffer }[] = [];
  for (let off = 8; off < file.length; ) {
    const length = file.readUInt32BE(off);
    const type = file.toString('latin1', off + 4, off + 8);
    const data = file.subarray(off + 8, off + 8 + length);
    const crc = file.readUInt32BE(off + 8 + length);
    if (referenceCrc32(file.subarray(off + 4, off + 8 + length)) !== crc) throw new Error(`bad CRC on chunk ${type}`);
    chunks.push({ type, data });
    off += 12 + length;
  }
  const types = chunks.map((c) => c.type);
  if (types[0] !== 'IHDR' || types.at(-1) !== 'IEND') throw new Error(`chunks out of order: ${types.join(' ')}`);
  const ihdr = chunks[0]!.data;
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  const [bitDepth, colorType, , , interlace] = [ihdr[8]!, ihdr[9]!, ihdr[10]!, ihdr[11]!, ihdr[12]!];
  if (bitDepth !== 8 || colorType !== 6 || interlace !== 0) return { width, height, bitDepth, colorType, interlace, chunkTypes: types, data: new Uint8Array(0) };

  const raw = zlib.inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  const bpp = 4;
  const stride = width * bpp;
  if (raw.length !== (stride + 1) * height) throw new Error(`IDAT inflates to ${raw.length} bytes, expected ${(stride + 1) * height}`);
  const data = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? data[y * stride + x - bpp]! : 0;
      const b = y > 0 ? data[(y - 1) * stride + x]! : 0;
      const c = x >= bpp && y > 0 ? data[(y - 1) * stride + x - bpp]! : 0;
      let predictor: number;
      if (filter === 0) predictor = 0;
      else if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`unknown filter ${filter} on row ${y}`);
      data[y * stride + x] = (line[x]! + predictor) & 0xff;
    }
  }
  return { width, height, bitDepth, colorType, interlace, chunkTypes: types, data };
}

function pixels(image: RgbaImage): [number, number, number, number][] {
  const out: [number, number, number, number][] = [];
  for (let i = 0; i < image.data.length; i += 4) out.push([image.data[i]!, image.data[i + 1]!, image.data[i + 2]!, image.data[i + 3]!]);
  return out;
}

const hexToRgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

// ------------------------------------------------------------------------------------------------

describe('Teams app manifest', () => {
  let manifest: any;
  let validate: ValidateFunction;

  beforeAll(() => {
    manifest = loadManifest();
    validate = compileSchema(manifest.manifestVersion);
  });

  it('declares a current schema version, and its $schema is that version', () => {
    const [major, minor] = String(manifest.manifestVersion).split('.').map(Number);
    expect(major).toBe(1);
    expect(minor).toBeGreaterThanOrEqual(17);
    expect(manifest.$schema).toBe(`https://developer.microsoft.com/json-schemas/teams/v${manifest.manifestVersion}/MicrosoftTeams.schema.json`);
  });

  it("is valid against Microsoft's schema for the version it declares", () => {
    const ok = validate(manifest);
    if (!ok) console.error(`manifests/teams/manifest.json does not match the Teams schema:\n${describeErrors(validate.errors)}`);
    expect(describeErrors(validate.errors)).toBe('');
    expect(ok).toBe(true);
    // The packaging script's validator agrees.
    expect(validateTeamsManifest(manifest)).toEqual([]);
  });

  it('carries the documented placeholders: app id, bot id and host', () => {
    expect(manifest.id).toBe(PLACEHOLDER_APP_ID);
    expect(manifest.bots.map((b: any) => b.botId)).toEqual([PLACEHOLDER_APP_ID]);
    expect(manifest.developer.name).toBe('Armalo');
    const urls = ['websiteUrl', 'privacyUrl', 'termsOfUseUrl'].map((k) => new URL(manifest.developer[k]));
    expect(new Set(urls.map((u) => u.protocol))).toEqual(new Set(['https:']));
    expect(new Set(urls.map((u) => u.host))).toEqual(new Set([PLACEHOLDER_HOST]));
    expect(manifest.validDomains).toEqual([PLACEHOLDER_HOST]);
    expect(readFileSync(join(TEAMS_DIR, 'README.md'), 'utf8')).toContain(PLACEHOLDER_APP_ID);
  });

  it('is a conversational bot in personal chats, teams and group chats, without files', () => {
    expect(manifest.bots).toHaveLength(1);
    const [bot] = manifest.bots;
    expect([...bot.scopes].sort()).toEqual([...SCOPES].sort());
    expect(bot.supportsFiles).toBe(false);
    expect(bot.isNotificationOnly).toBe(false);
    expect(manifest.permissions).toEqual(['identity', 'messageTeamMembers']);
    expect(manifest.icons).toEqual({ color: 'color.png', outline: 'outline.png' });
    // The colour icon's background is the accent colour.
    expect(manifest.accentColor.toLowerCase()).toBe(BRAND_COLOR.toLowerCase());
  });

  it('lists the commands of the /armalo grammar, one list per scope, within Teams limits', () => {
    const lists = manifest.bots[0].commandLists as { scopes: string[]; commands: { title: string; description: string }[] }[];
    expect(lists.flatMap((l) => l.scopes).sort()).toEqual([...SCOPES].sort());
    for (const list of lists) {
      const where = `command list for ${list.scopes.join(', ')}`;
      expect(list.scopes, where).toHaveLength(1);
      const titles = list.commands.map((c) => c.title);
      expect(titles.filter((t) => !MENU_COMMANDS.includes(t)), `${where}: commands not in USAGE (or help)`).toEqual([]);
      expect(new Set(titles).size, `${where}: a command is listed twice`).toBe(titles.length);
      expect(list.commands.length, `${where}: Teams shows at most ${MAX_COMMANDS}`).toBeLessThanOrEqual(MAX_COMMANDS);
      // As many as Teams allows: every command while they fit.
      expect(list.commands.length, `${where}: lists fewer commands than fit`).toBe(Math.min(MAX_COMMANDS, MENU_COMMANDS.length));
      for (const { title, description } of list.commands) {
        expect(title.length, `${title}: title too long`).toBeLessThanOrEqual(MAX_TITLE);
        expect(description.length, `${title}: description too long`).toBeLessThanOrEqual(MAX_DESCRIPTION);
        expect(description, `${title}: description is its usage line`).toBe(USAGE[title]);
        // Teams puts the title into the compose box: it must be a command word the parser knows.
        const parsed = parseCommand(title);
        if (!parsed.ok) expect(parsed.error).not.toMatch(/unknown command/);
      }
    }
  });

  describe('the validator rejects broken manifests', () => {
    const rejects = (mutate: (m: any) => void): ErrorObject[] => {
      const copy = structuredClone(manifest);
      mutate(copy);
      expect(validate(copy)).toBe(false);
      const errors = validate.errors ?? [];
      expect(validateTeamsManifest(copy).length).toBeGreaterThan(0);
      return errors;
    };

    it('a scope spelled the way people write it (groupchat, not groupChat)', () => {
      const errors = rejects((m) => {
        m.bots[0].scopes = ['personal', 'team', 'groupchat'];
      });
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'enum', instancePath: '/bots/0/scopes/2' }));
    });

    it('a misspelled key, and a missing required one', () => {
      const errors = rejects((m) => {
        m.bots[0].commandList = m.bots[0].commandLists;
        delete m.bots[0].commandLists;
        delete m.developer.privacyUrl;
      });
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'additionalProperties', instancePath: '/bots/0', params: { additionalProperty: 'commandList' } }));
      expect(errors).toContainEqual(expect.objectContaining({ keyword: 'required', instancePath: '/developer', params: { missingProperty: 'privacyUrl' } }));
    });

    it('an eleventh command, a title over 32 characters, an id that is not a GUID', () => {
      let longTitle = -1;
      const errors = rejects((m) => {
        const list = m.bots[0].commandLists[0];
        longTitle = list.commands.push({ title: 'x'.repeat(MAX_TITLE + 1), description: 'too many' }) - 1;
        while (list.commands.length <= MAX_COMMANDS) list.commands.push({ title: `extra${list.commands.length}`, description: 'too many' });
        m.id = 'armalo';
      });
      expect(errors.map((e) => `${e.instancePath} ${e.keyword}`)).toEqual(
        expect.arrayContaining(['/bots/0/commandLists/0/commands maxItems', `/bots/0/commandLists/0/commands/${longTitle}/title maxLength`, '/id pattern']),
      );
    });

    it('a manifestVersion that does not match the schema', () => {
      const errors = rejects((m) => {
        m.manifestVersion = '1.5';
      });
      expect(errors).toContainEqual(expect.objectContaining({ instancePath: '/manifestVersion' }));
    });
  });
});

describe('Teams icons', () => {
  it('the CRC-32 is the standard one', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const sample = Buffer.from('IEND');
    expect(crc32(sample)).toBe(0xae426082);
    if (typeof zlib.crc32 === 'function') expect(crc32(sample)).toBe(zlib.crc32(sample));
  });

  it('color.png is a 192×192 RGBA PNG: the brand colour edge to edge, a white shape in the middle', () => {
    const png = decodePng(readFileSync(join(TEAMS_DIR, 'color.png')));
    expect({ width: png.width, height: png.height, colorType: png.colorType, bitDepth: png.bitDepth, interlace: png.interlace }).toEqual({ width: 192, height: 192, colorType: 6, bitDepth: 8, interlace: 0 });
    const px = pixels(png);
    expect(px.every((p) => p[3] === 255), 'fully opaque').toBe(true);
    const brand = [...hexToRgb(BRAND_COLOR), 255];
    for (const i of [0, 191, 191 * 192, 192 * 192 - 1]) expect(px[i], 'corner pixel').toEqual(brand);
    expect(px.filter((p) => p[0] === 255 && p[1] === 255 && p[2] === 255).length, 'white pixels').toBeGreaterThan(192 * 192 * 0.1);
  });

  it('outline.png is a 32×32 RGBA PNG with only opaque white and fully transparent pixels', () => {
    const png = decodePng(readFileSync(join(TEAMS_DIR, 'outline.png')));
    expect({ width: png.width, height: png.height, colorType: png.colorType, bitDepth: png.bitDepth, interlace: png.interlace }).toEqual({ width: 32, height: 32, colorType: 6, bitDepth: 8, interlace: 0 });
    const px = pixels(png);
    const white = px.filter((p) => p.join() === '255,255,255,255').length;
    const clear = px.filter((p) => p.join() === '0,0,0,0').length;
    expect(white + clear, 'pixels other than white or transparent').toBe(32 * 32);
    expect(white).toBeGreaterThan(50);
    expect(clear).toBeGreaterThan(32 * 32 / 2);
  });

  it('the committed icons are what scripts/teams-icons.ts draws (regenerate with: npx tsx scripts/teams-icons.ts)', () => {
    for (const [file, draw] of [
      ['color.png', drawColorIcon],
      ['outline.png', drawOutlineIcon],
    ] as const) {
      const committed = decodePng(readFileSync(join(TEAMS_DIR, file)));
      const drawn = draw();
      expect(Buffer.from(committed.data).equals(Buffer.from(drawn.data)), `${file} differs from the drawing`).toBe(true);
      // The encoder's output decodes back to the same pixels (compressed bytes may differ between zlib builds).
      expect(Buffer.from(decodePng(encodePng(drawn)).data).equals(Buffer.from(drawn.data))).toBe(true);
    }
  });
});

describe('npm run teams:package', () => {
  const appId = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'armalo-teams-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const runScript = (env: Record<string, string>, out: string) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const name of ['TEAMS_APP_ID', 'ARMALO_PUBLIC_HOST']) if (!(name in env)) delete childEnv[name];
    return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/teams-package.ts', '--out', out], { cwd: ROOT, env: childEnv, encoding: 'utf8', timeout: 30_000 });
  };

  it('zips exactly manifest.json, color.png and outline.png, with TEAMS_APP_ID filled in', () => {
    const out = join(dir, 'armalo-teams.zip');
    const run = runScript({ TEAMS_APP_ID: appId }, out);
    expect(run.status, run.stderr).toBe(0);
    // The host stays the placeholder, and the script says so.
    expect(run.stderr).toMatch(/ARMALO_PUBLIC_HOST is not set/);
    const entries = unzipSync(readFileSync(out));
    expect(Object.keys(entries).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
    const packaged = JSON.parse(strFromU8(entries['manifest.json']!));
    expect(packaged.id).toBe(appId);
    expect(packaged.bots[0].botId).toBe(appId);
    expect(JSON.stringify(packaged)).not.toContain(PLACEHOLDER_APP_ID);
    expect(packaged.validDomains).toEqual([PLACEHOLDER_HOST]);
    // Apart from the id, the manifest is the checked-in one.
    expect({ ...packaged, id: PLACEHOLDER_APP_ID, bots: [{ ...packaged.bots[0], botId: PLACEHOLDER_APP_ID }] }).toEqual(loadManifest());
    for (const icon of ['color.png', 'outline.png']) expect(Buffer.from(entries[icon]!).equals(readFileSync(join(TEAMS_DIR, icon))), icon).toBe(true);
  });

  it('fills in ARMALO_PUBLIC_HOST too, and the result is still valid', () => {
    const result = buildTeamsPackage({ appId, host: 'chatops.example.org' });
    expect(result.ok ? [] : result.errors).toEqual([]);
    if (!result.ok) return;
    expect(result.warnings).toEqual([]);
    const text = JSON.stringify(result.manifest);
    expect(text).not.toContain(PLACEHOLDER_HOST);
    expect(text).not.toContain(PLACEHOLDER_APP_ID);
    expect(result.manifest.validDomains).toEqual(['chatops.example.org']);
    expect(new URL((result.manifest.developer as any).privacyUrl).host).toBe('chatops.example.org');
    expect(Object.keys(unzipSync(result.zip)).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
  });

  it('refuses a host with a scheme or path', () => {
    const result = buildTeamsPackage({ appId, host: 'https://chatops.example.org/api' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.join('\n')).toMatch(/ARMALO_PUBLIC_HOST must be a bare host name/);
  });

  it('without TEAMS_APP_ID keeps the placeholder and warns', () => {
    const result = buildTeamsPackage({});
    expect(result.ok).toBe(true);
    expect(result.warnings.join('\n')).toMatch(/TEAMS_APP_ID is not set/);
    if (result.ok) expect(result.manifest.id).toBe(PLACEHOLDER_APP_ID);
  });

  it('prints the schema errors and exits 1 when the manifest would be invalid, leaving no package behind', () => {
    const out = join(dir, 'stale.zip');
    writeFileSync(out, 'an old package');
    const run = runScript({ TEAMS_APP_ID: 'not-a-guid' }, out);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/TEAMS_APP_ID must be the Microsoft App ID/);
    expect(run.stderr).toMatch(/manifest\.json: \/id must match pattern/);
    expect(run.stderr).toMatch(/manifest\.json: \/bots\/0\/botId must match pattern/);
    expect(existsSync(out)).toBe(false);
  });
});
