/**
 * `pnpm tsx scripts/migrate.ts [--no-seed]`: brings the schema at DATABASE_URL up to date and
 * seeds the sample data into an empty database. Used by docker compose and by operators who
 * run the apps against their own servers.
 */
import { redactUrl } from '@walcache/config';
import { createDb, createPool, migrateToLatest, seedIfEmpty } from '@walcache/db';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write(
    'walcache migrate: DATABASE_URL is not set (e.g. postgres://user:pass@host:5432/db)\n',
  );
  process.exit(78);
}
const db = createDb(createPool({ connectionString: url, applicationName: 'walcache-migrate' }));
try {
  const applied = await migrateToLatest(db);
  process.stdout.write(
    `${redactUrl(url)}: ${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'}\n`,
  );
  if (!process.argv.includes('--no-seed')) {
    process.stdout.write(
      (await seedIfEmpty(db)) ? 'seeded the sample data\n' : 'database has data; not seeding\n',
    );
  }
} catch (error) {
  process.stderr.write(`walcache migrate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
