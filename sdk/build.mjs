// Builds the package: dist/index.js (one ESM bundle for Node 20, with the service's shared domain
// files inside: the local check runs the very code the server runs) and dist/index.d.ts (the
// declarations of sdk/src only; they must not point into the service's source tree). Then
// type-checks examples/ against dist the way a consumer would.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const typesOut = join(here, 'build', 'types');
const tsc = join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc');

rmSync(dist, { recursive: true, force: true });
rmSync(typesOut, { recursive: true, force: true });

await build({
  entryPoints: [join(here, 'src', 'index.ts')],
  outfile: join(dist, 'index.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  sourcesContent: false,
  legalComments: 'none',
  logLevel: 'warning',
});

execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
const declarations = join(typesOut, 'sdk', 'src');
mkdirSync(dist, { recursive: true });
for (const file of readdirSync(declarations)) {
  if (!file.endsWith('.d.ts')) continue;
  const text = readFileSync(join(declarations, file), 'utf8');
  if (/from '\.\.\//.test(text)) throw new Error(`${file}: a public declaration points outside sdk/src; keep public types in sdk/src/types.ts`);
  copyFileSync(join(declarations, file), join(dist, file));
}
rmSync(join(here, 'build'), { recursive: true, force: true });

execFileSync(process.execPath, [tsc, '-p', join(here, 'examples', 'tsconfig.json')], { stdio: 'inherit' });
process.stdout.write('built dist/index.js and dist/index.d.ts; examples type-check against them\n');
