/**
 * What one lookup costs Postgres, prepared (the apps' pools, @walcache/db createPool) and
 * unprepared (a plain pg pool, on which the statement's name is only a comment): the backend's
 * CPU time per call, read from /proc, which a busy shared machine moves less than wall time.
 *
 *   node --import tsx scripts/bench/micro/prepared.ts [calls]
 *
 * On a private Postgres with the blog's schema and 2 000 articles; three rounds, the two
 * pools alternating. docs/benchmarks.md has the figures it gave.
 */
import { createDb, createPool } from '@walcache/db';
import { startPostgres } from '@walcache/testkit';
import pg from 'pg';
import { blogExample } from '../../../examples/blog/index.ts';
import { articleDetail, compileBlog } from '../../../test/support/blog.ts';
import { cpuMicros } from '../sys.ts';

const calls = Number(process.argv[2] ?? 3000);
if (!(calls >= 1)) {
  console.error('usage: node --import tsx scripts/bench/micro/prepared.ts [calls ≥ 1]');
  process.exit(2);
}

const server = await startPostgres();
try {
  const setup = createPool({ connectionString: server.url });
  await blogExample.setup(createDb(setup), { users: 100, articles: 2000, tags: 10, commentsPerArticle: 3 });
  await compileBlog(setup);
  await setup.end();
  // One connection each, so one backend does every call.
  const pools = {
    prepared: createPool({ connectionString: server.url, max: 1 }),
    unprepared: new pg.Pool({ connectionString: server.url, max: 1 }),
  };
  // The server's stop may reach a backend whose client is still closing.
  pools.unprepared.on('error', () => undefined);
  for (const round of [1, 2, 3]) {
    for (const [name, pool] of Object.entries(pools)) {
      const db = createDb(pool);
      const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
      const backend = rows[0]?.pid ?? 0;
      await articleDetail.load(db, { id: '1' }); // the first call parses either way
      const before = cpuMicros(backend);
      const started = performance.now();
      for (let i = 0; i < calls; i++) await articleDetail.load(db, { id: String(1 + (i % 2000)) });
      console.log(
        `round ${round} ${name}: Postgres ${((cpuMicros(backend) - before) / calls).toFixed(0)} µs/lookup, ` +
          `${(((performance.now() - started) * 1000) / calls).toFixed(0)} µs/lookup wall (article detail)`,
      );
    }
  }
  await Promise.all(Object.values(pools).map((p) => p.end()));
} finally {
  await server.stop();
}
