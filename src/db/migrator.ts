import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Migrator, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';

/** The migrations folder sits at the top level, beside src/ (and beside dist/src/ once built). */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/**
 * Kysely's FileMigrationProvider imports by bare path, which breaks for .ts files under vitest and
 * on Windows; importing by file URL works for .ts (tsx, vitest) and .js (built) alike.
 */
class FolderMigrationProvider implements MigrationProvider {
  constructor(private readonly folder: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await fs.readdir(this.folder))
      .filter((f) => /^\d{4}_[\w-]+\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
      .sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const mod = (await import(pathToFileURL(path.join(this.folder, file)).href)) as Migration;
      migrations[file.replace(/\.(ts|js)$/, '')] = { up: mod.up, down: mod.down };
    }
    return migrations;
  }
}

// Migrations are typed against no schema (they describe how the schema came to be), so the
// migrator accepts a Kysely instance of any schema, as Kysely's own docs do.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyKysely = Kysely<any>;

export function createMigrator(db: AnyKysely): Migrator {
  return new Migrator({ db, provider: new FolderMigrationProvider(MIGRATIONS_DIR) });
}

export async function migrateToLatest(db: AnyKysely): Promise<MigrationResultSet> {
  return createMigrator(db).migrateToLatest();
}

/** Names of migrations not yet applied; empty when the schema is current. */
export async function pendingMigrations(db: AnyKysely): Promise<string[]> {
  const all = await createMigrator(db).getMigrations();
  return all.filter((m) => !m.executedAt).map((m) => m.name);
}
