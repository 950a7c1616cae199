/**
 * `node --import tsx scripts/migrate.ts [--example NAME] [--no-seed]`: puts an example's
 * schema and deterministic data (default: the blog) into the database at DATABASE_URL. Only
 * ever run by hand or by the compose file's example service: walcache itself never creates
 * tables in a database it is pointed at.
 */
import { redactUrl } from '@walcache/config';
import { isSourceUnavailable } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { examples } from '../examples/index.ts';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write(
    'walcache migrate: DATABASE_URL is not set (e.g. postgres://user:pass@host:5432/db)\n',
  );
  process.exit(78);
}
const flag = process.argv.indexOf('--example');
const name = (flag >= 0 ? process.argv[flag + 1] : undefined) ?? process.env.WALCACHE_EXAMPLE ?? 'blog';
const example = examples[name];
if (!example) {
  process.stderr.write(
    `walcache migrate: no example "${name}"; examples: ${Object.keys(examples).join(', ')}\n`,
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
  const { applied, seeded } = await example.setup(db, process.argv.includes('--no-seed') ? false : undefined);
  process.stdout.write(
    `${redactUrl(url)}: example ${name}: ${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'}; ${seeded ? 'seeded the sample data' : 'not seeded (has data, or --no-seed)'}\n`,
  );
} catch (error) {
  process.stderr.write(`walcache migrate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
