import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Ajv04Module from 'ajv-draft-04';
import type { ErrorObject, ValidateFunction } from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';
import { strToU8, zipSync } from 'fflate';
import { ICON_SPECS, PNG_COLOR_TYPE_RGBA, readPngHeader } from './teams-icons.js';

/**
 * Builds the Microsoft Teams app package (the zip uploaded to Teams or the Teams admin center):
 *
 *   TEAMS_APP_ID=<bot app id> ARMALO_PUBLIC_HOST=chatops.example.org npm run teams:package
 *   npm run teams:package -- --out /tmp/armalo-teams.zip      # another output path
 *
 * Reads manifests/teams/manifest.json and fills in its placeholders:
 * - the GUID 00000000-0000-0000-0000-000000000000 (app `id` and `bots[0].botId`) with TEAMS_APP_ID, the
 *   Microsoft App ID of the Azure Bot. Unset: the placeholder stays and a warning says the package cannot
 *   reach a bot.
 * - the host armalo.example.com (developer URLs, validDomains) with ARMALO_PUBLIC_HOST, if set.
 * Then validates the result against Microsoft's JSON Schema for the manifest version it declares (the
 * copy shipped in the @microsoft/app-manifest package, so no network is needed), checks the icons, and
 * writes build/armalo-teams.zip with manifest.json, color.png and outline.png at the root of the zip.
 * Any error is printed and the exit code is 1; no package is left behind then.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MANIFEST_DIR = join(ROOT, 'manifests', 'teams');
export const DEFAULT_OUT = join(ROOT, 'build', 'armalo-teams.zip');
export const PLACEHOLDER_APP_ID = '00000000-0000-0000-0000-000000000000';
export const PLACEHOLDER_HOST = 'armalo.example.com';

const GUID = /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;
/** A bare DNS name: no scheme, port or path (validDomains and the https URLs are built from it). */
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i;
/** Zip entries get a fixed date, so the same inputs give the same package. */
const ZIP_MTIME = new Date('2000-01-01T00:00:00Z');

// Both are CommonJS modules; under NodeNext their default import is `module.exports`, whose `.default`
// is the class or plugin (the same value at run time).
const Ajv04 = Ajv04Module.default;
const addFormats = addFormatsModule.default;

export type TeamsManifest = Record<string, unknown> & { $schema?: unknown; manifestVersion?: unknown };

/**
 * The local file of a Teams manifest schema, from its `$schema` URL
 * (https://developer.microsoft.com/[en-us/]json-schemas/teams/v1.NN/MicrosoftTeams.schema.json), inside
 * node_modules/@microsoft/app-manifest/build/json-schemas/teams/. Throws when the URL is not one, or when
 * the installed package does not ship that version.
 */
export function schemaPathFor(schemaUrl: unknown): string {
  if (typeof schemaUrl !== 'string') throw new Error('the manifest has no "$schema" (the URL of the Teams manifest schema it follows)');
  let url: URL;
  try {
    url = new URL(schemaUrl);
  } catch {
    throw new Error(`"$schema" is not a URL: ${schemaUrl}`);
  }
  const m = /^(?:\/[a-z]{2}(?:-[a-z]{2})?)?\/json-schemas\/teams\/(v1\.\d+|vDevPreview)\/MicrosoftTeams\.schema\.json$/i.exec(url.pathname);
  if (url.protocol !== 'https:' || url.hostname !== 'developer.microsoft.com' || !m) {
    throw new Error(`"$schema" is not a Teams manifest schema URL (https://developer.microsoft.com/json-schemas/teams/v1.NN/MicrosoftTeams.schema.json): ${schemaUrl}`);
  }
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('@microsoft/app-manifest/package.json'));
  const path = join(pkg, 'build', 'json-schemas', 'teams', m[1]!, 'MicrosoftTeams.schema.json');
  if (!existsSync(path)) {
    const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
    throw new Error(`@microsoft/app-manifest ${version} has no Teams schema ${m[1]} (looked for ${path})`);
  }
  return path;
}

const compiled = new Map<string, ValidateFunction>();

/**
 * Microsoft's Teams schemas are JSON Schema draft-04, hence ajv-draft-04 (Ajv 8's draft-04 build).
 * Strict mode stays on, so an unknown keyword fails loudly. strictTypes and strictRequired are off: the
 * schemas use `additionalProperties` without `type: "object"` at the root and list a property under
 * `dependencies` that they never declare; both are harmless and not ours to fix.
 */
export function compileTeamsSchema(schemaPath: string): ValidateFunction {
  let validate = compiled.get(schemaPath);
  if (!validate) {
    const ajv = new Ajv04({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
    addFormats(ajv);
    validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
    compiled.set(schemaPath, validate);
  }
  return validate;
}

export function describeSchemaErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}

/** Schema errors of a manifest against the version it declares; [] when it is valid. */
export function validateTeamsManifest(manifest: TeamsManifest): string[] {
  let validate: ValidateFunction;
  try {
    validate = compileTeamsSchema(schemaPathFor(manifest.$schema));
  } catch (err) {
    return [(err as Error).message];
  }
  return validate(manifest) ? [] : describeSchemaErrors(validate.errors);
}

/** Replaces `from` with `to` in every string of a JSON value. */
function replaceStrings(value: unknown, from: string, to: string): unknown {
  if (typeof value === 'string') return value.split(from).join(to);
  if (Array.isArray(value)) return value.map((v) => replaceStrings(v, from, to));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceStrings(v, from, to)]));
  return value;
}

export interface PackageSettings {
  /** TEAMS_APP_ID: the Azure Bot's Microsoft App ID. */
  appId?: string | undefined;
  /** ARMALO_PUBLIC_HOST: the public host name of the service. */
  host?: string | undefined;
}

export type PackageResult =
  | { ok: true; manifest: TeamsManifest; zip: Uint8Array; warnings: string[] }
  | { ok: false; errors: string[]; warnings: string[] };

/** Reads the manifest and icons from `dir`, fills in the placeholders, validates, and zips. */
export function buildTeamsPackage(settings: PackageSettings, dir: string = MANIFEST_DIR): PackageResult {
  const warnings: string[] = [];
  const errors: string[] = [];
  let manifest: TeamsManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as TeamsManifest;
  } catch (err) {
    return { ok: false, errors: [`cannot read ${join(dir, 'manifest.json')}: ${(err as Error).message}`], warnings };
  }

  const appId = settings.appId?.trim();
  if (!appId) {
    warnings.push(`TEAMS_APP_ID is not set: the package keeps the placeholder id ${PLACEHOLDER_APP_ID}, which reaches no bot. Set it to the Microsoft App ID of your Azure Bot.`);
  } else if (!GUID.test(appId)) {
    errors.push(`TEAMS_APP_ID must be the Microsoft App ID of your Azure Bot, a GUID such as 12345678-abcd-4ef0-9876-0123456789ab; got "${appId}"`);
  }
  if (appId) manifest = replaceStrings(manifest, PLACEHOLDER_APP_ID, appId) as TeamsManifest;

  const host = settings.host?.trim();
  if (!host) {
    warnings.push(`ARMALO_PUBLIC_HOST is not set: developer URLs and validDomains keep the placeholder host ${PLACEHOLDER_HOST}.`);
  } else if (!HOST_NAME.test(host)) {
    errors.push(`ARMALO_PUBLIC_HOST must be a bare host name such as chatops.example.org (no https://, port or path); got "${host}"`);
  } else {
    manifest = replaceStrings(manifest, PLACEHOLDER_HOST, host.toLowerCase()) as TeamsManifest;
  }

  errors.push(...validateTeamsManifest(manifest).map((e) => `manifest.json: ${e}`));

  // The icons the manifest names, checked the way Teams checks them on upload.
  const files: Record<string, Uint8Array> = {};
  const icons = (manifest.icons ?? {}) as Record<string, unknown>;
  for (const [kind, spec] of Object.entries(ICON_SPECS)) {
    const name = icons[kind];
    if (name !== spec.file) {
      errors.push(`manifest.json: icons.${kind} must be "${spec.file}" (the file at the root of the package); got ${JSON.stringify(name)}`);
      continue;
    }
    const path = join(dir, spec.file);
    try {
      const png = readFileSync(path);
      const header = readPngHeader(png);
      if (header.width !== spec.size || header.height !== spec.size) errors.push(`${spec.file}: must be ${spec.size}×${spec.size}, is ${header.width}×${header.height}`);
      if (header.colorType !== PNG_COLOR_TYPE_RGBA) errors.push(`${spec.file}: expected an RGBA PNG (colour type 6), got colour type ${header.colorType}`);
      files[spec.file] = png;
    } catch (err) {
      errors.push(`${spec.file}: ${(err as Error).message} (regenerate with: npx tsx scripts/teams-icons.ts)`);
    }
  }

  if (errors.length) return { ok: false, errors, warnings };
  const zip = zipSync(
    {
      'manifest.json': strToU8(`${JSON.stringify(manifest, null, 2)}\n`),
      [ICON_SPECS.color.file]: files[ICON_SPECS.color.file]!,
      [ICON_SPECS.outline.file]: files[ICON_SPECS.outline.file]!,
    },
    { level: 9, mtime: ZIP_MTIME },
  );
  return { ok: true, manifest, zip, warnings };
}

function outPath(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--out' && argv[i + 1]) return resolve(argv[i + 1]!);
    if (arg.startsWith('--out=')) return resolve(arg.slice('--out='.length));
  }
  if (argv.length) throw new Error(`usage: tsx scripts/teams-package.ts [--out <file.zip>]; unexpected ${argv.join(' ')}`);
  return DEFAULT_OUT;
}

function main(): number {
  let out: string;
  try {
    out = outPath(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  const result = buildTeamsPackage({ appId: process.env.TEAMS_APP_ID, host: process.env.ARMALO_PUBLIC_HOST });
  for (const w of result.warnings) console.error(`warning: ${w}`);
  const shown = relative(process.cwd(), out) || out;
  if (!result.ok) {
    // No package is better than a stale one uploaded by mistake.
    rmSync(out, { force: true });
    console.error(`The Teams app package was not built (${result.errors.length} error${result.errors.length === 1 ? '' : 's'}):`);
    for (const e of result.errors) console.error(`  ${e}`);
    return 1;
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, result.zip);
  process.stdout.write(`Wrote ${shown}: manifest.json (Teams manifest ${String(result.manifest.manifestVersion)}, app id ${String(result.manifest.id)}), ${ICON_SPECS.color.file}, ${ICON_SPECS.outline.file}.\n`);
  process.stdout.write('Upload it in Teams: Apps → Manage your apps → Upload an app → Upload a custom app.\n');
  return 0;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  process.exitCode = main();
}
