import { loadConfig, ConfigError } from '../config/env.js';
import { createDb, ensureDatabaseExists } from '../db/database.js';
import { createMigrator } from '../db/migrator.js';
import { redactUrl } from '../observability/logger.js';

/** `npm run migrate` (to latest) and `npm run migrate -- down` (one step back). */
async function main(): Promise<number> {
  let databaseUrl: string;
  try {
    databaseUrl = loadConfig({ ...process.env, REDIS_URL: process.env.REDIS_URL ?? 'redis://unused' }).databaseUrl;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
  const direction = process.argv[2] ?? 'latest';
  if (direction !== 'latest' && direction !== 'down') {
    console.error('usage: npm run migrate [-- latest|down]');
    return 2;
  }
  if (await ensureDatabaseExists(databaseUrl)) console.log(`created database ${redactUrl(databaseUrl)}`);
  const db = createDb(databaseUrl, { max: 1 });
  try {
    const migrator = createMigrator(db);
    const { error, results } = direction === 'down' ? await migrator.migrateDown() : await migrator.migrateToLatest();
    for (const r of results ?? []) console.log(`${r.direction === 'Up' ? 'applied' : 'reverted'} ${r.migrationName}: ${r.status}`);
    if (error) {
      console.error(`migration failed: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    if (!results?.length) console.log('database is up to date');
    return 0;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main();
