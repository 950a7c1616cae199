/**
 * `pnpm tsx scripts/migrate.ts [--no-seed]`: brings the schema at DATABASE_URL up to date and
 * seeds the sample data into an empty database. Used by docker compose and by operators who
 * run the apps against their own servers.
 */
import { redactUrl } from '@walcache/config';
import { isSourceUnavailable } from '@walcache/core';
import { createDb, createPool, migrateToLatest, seedIfEmpty } from '@walcache/db';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write(
    'walcache migrate: DATABASE_URL is not set (e.g. postgres://user:pass@host:5432/db)\n',
  );
  process.exit(78);
}
// Why 60 × 1 s: Postgres refuses connections while it starts (a container's first start
// initialises its data directory, and its healthcheck can pass just before a restart); a
// minute covers that, and any other error, or one still there after it, is reported at once.
const attempts = 60;
const retryDelayMs = 1000;

const db = createDb(createPool({ connectionString: url, applicationName: 'walcache-migrate' }));
try {
  for (let attempt = 1; ; attempt++) {
    try {
      await db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
      break;
    } catch (error) {
      if (!isSourceUnavailable(error) || attempt === attempts) throw error;
      if (attempt === 1)
        process.stderr.write(`walcache migrate: waiting for ${redactUrl(url)} (${String(error)})\n`);
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
    }
  }
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
