import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PG_BASE } from './support/database.js';
import { ConfigError, DEV_API_TOKEN, loadConfig } from '../src/config/env.js';

const root = new URL('..', import.meta.url).pathname;
const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');

describe('what a fresh machine runs', () => {
  it('docker-compose.yml wires postgres, redis, a one-shot migrate and the app with healthchecks', () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as any;
    expect(compose.name).toBeUndefined();
    // What `docker compose up` starts; the Jaeger trace viewer only with `--profile tracing`.
    expect(Object.keys(compose.services).filter((s) => !compose.services[s].profiles).sort()).toEqual(['app', 'migrate', 'postgres', 'redis']);
    expect(compose.services.jaeger?.profiles).toEqual(['tracing']);
    for (const svc of ['postgres', 'redis', 'app']) expect(compose.services[svc].healthcheck?.test, svc).toBeDefined();
    expect(compose.services.migrate.command).toEqual(['node', 'dist/src/cli/migrate.js']);
    expect(compose.services.migrate.depends_on.postgres.condition).toBe('service_healthy');
    expect(compose.services.app.depends_on.migrate.condition).toBe('service_completed_successfully');
    expect(compose.services.app.command).toEqual(['node', '--enable-source-maps', 'dist/src/main.js']);
    expect(compose.volumes).toHaveProperty('postgres-data');
    // The files those commands run are what the build produces from these sources.
    for (const src of ['src/cli/migrate.ts', 'src/main.ts']) expect(existsSync(new URL(`../${src}`, import.meta.url))).toBe(true);
    expect(read('Dockerfile')).toMatch(/CMD \["node", "--enable-source-maps", "dist\/src\/main.js"\]/);
  });

  it('the quick start still starts under NODE_ENV=production: compose sets ARMALO_INSECURE_DEV_DEFAULTS and binds loopback only', () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as any;
    const app = compose.services.app;
    // What `docker compose up` hands the app with nothing in .env: ${VAR:-default} takes the default,
    // bare names (pass-through) are absent. The image adds NODE_ENV=production.
    const env: Record<string, string> = {};
    for (const entry of app.environment as string[]) {
      const i = entry.indexOf('=');
      if (i === -1) continue;
      env[entry.slice(0, i)] = entry.slice(i + 1).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
    }
    expect(read('Dockerfile')).toMatch(/^ENV NODE_ENV=production$/m);
    expect(env.ARMALO_INSECURE_DEV_DEFAULTS).toBe('1');
    expect(app.ports).toEqual(['127.0.0.1:3000:3000']);
    const config = loadConfig({ ...env, NODE_ENV: 'production' });
    expect(config.insecureDevDefaults).toBe(true);
    expect(config.apiTokens).toEqual([{ name: 'dev', token: DEV_API_TOKEN, scope: { kind: 'admin' } }]);
    // The README's curl examples use the same token.
    expect(read('README.md')).toContain(`Authorization: Bearer ${DEV_API_TOKEN}`);
    // Without the flag, production refuses that token, naming the variable and not the value.
    const { ARMALO_INSECURE_DEV_DEFAULTS: _flag, ...strict } = env;
    expect(() => loadConfig({ ...strict, NODE_ENV: 'production' })).toThrow(/ARMALO_API_TOKENS \(entry 1\): is the public development token/);
    try {
      loadConfig({ ...strict, NODE_ENV: 'production' });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain(DEV_API_TOKEN);
    }
  });

  it('docker-compose.yml passes `docker-compose config` where that validator is installed', () => {
    const probe = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
    if (probe.error) return; // not installed on this machine: the structural test above still holds
    const res = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('the README gives the two commands: run it, test it', () => {
    const readme = read('README.md');
    expect(readme).toContain('\ndocker compose up\n');
    expect(readme).toContain('\nnpm ci && npm test\n');
    const pkg = JSON.parse(read('package.json'));
    for (const script of ['start', 'test', 'migrate', 'typecheck', 'lint', 'bench', 'policy:check']) expect(pkg.scripts[script], script).toBeDefined();
  });

  it('`npm run migrate` creates the database when it does not exist, then migrates it', async () => {
    const name = `armalo_test_cli_${Date.now().toString(36)}`;
    const env = { PATH: process.env.PATH ?? '', DATABASE_URL: `${PG_BASE}/${name}` };
    try {
      const first = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts'], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
      expect(first.status, first.stderr).toBe(0);
      expect(first.stdout).toContain(`created database`);
      expect(first.stdout).toContain('applied 0001_initial: Success');
      const second = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts'], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
      expect(second.stdout).toContain('database is up to date');
    } finally {
      const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
      await admin.connect();
      await admin.query(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });
});
