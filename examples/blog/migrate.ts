import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import * as m0001 from './migration-0001.ts';

/** Migrations are imported statically so they run the same from source, a bundle or a test. */
const migrations: Record<string, Migration> = {
  '0001_sample_schema': m0001,
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export class MigrationError extends Error {
  readonly code = 'WALCACHE_MIGRATION';
}

/** Brings the blog's sample schema up to date; returns the names of the migrations it applied. */
export async function migrateBlog<DB>(database: Kysely<DB>): Promise<string[]> {
  // Migrations are written against no particular schema type.
  const db = database as unknown as Kysely<unknown>;
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(
      `migration ${failed} failed: ${String(error instanceof Error ? error.message : error)}`,
      {
        cause: error,
      },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
