/**
 * One pass of the tag-index sweeper over a warm index on one Redis, in CPU time (the Redis
 * server's and this process's) and wall time:
 *
 *   node --import tsx scripts/bench/micro/sweep.ts [other checkout] [tag sets]
 *
 * Each tag set holds three members, one of them with its value present (the others are
 * removed), and the sweep is paced as the invalidator's sweeper is (1 ms between calls at
 * least, and nine times as long as each batch call took; an older checkout ignores the
 * latter). With
 * another checkout (a `git worktree` of an older commit, dependencies installed) its
 * packages/core runs in turn with this one's, two rounds, each on its own client (the
 * commands are defined once per client). docs/benchmarks.md has the figures it gave.
 */
import { startRedis } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { cpuMicros } from '../sys.ts';
import { coresToCompare } from './cores.ts';

const [other, setsArg] = process.argv.slice(2);
const sets = Number(setsArg ?? 20_000);
if (!(sets >= 1)) {
  console.error('usage: node --import tsx scripts/bench/micro/sweep.ts [other checkout] [tag sets ≥ 1]');
  process.exit(2);
}
const cores = await coresToCompare(other);

const server = await startRedis();
try {
  for (const round of [1, 2]) {
    for (const [index, [name, core]] of cores.entries()) {
      const redis = new Redis(server.url);
      const keys = core.keyspace(`sweep${round}-${index}`);
      let fill = redis.pipeline();
      for (let s = 0; s < sets; s++) {
        for (let m = 0; m < 3; m++) fill.sadd(keys.tagSet(`row:t:${s}`), keys.value(`r:${s * 3 + m}`));
        fill.set(keys.value(`r:${s * 3}`), 'x');
        if (s % 500 === 499) {
          await fill.exec();
          fill = redis.pipeline();
        }
      }
      await fill.exec();
      const redisBefore = cpuMicros(server.pid ?? 0);
      const ownBefore = process.cpuUsage();
      const started = performance.now();
      const swept = await core.sweepTagIndex(redis, keys, { pauseMs: 1, restPerBusy: 9 });
      const own = process.cpuUsage(ownBefore);
      console.log(
        `round ${round} ${name}: ${swept.sets} sets, ${swept.members} members, ${swept.removed} removed ` +
          `in ${Math.round(performance.now() - started)} ms; Redis ${Math.round((cpuMicros(server.pid ?? 0) - redisBefore) / 1000)} ms CPU, ` +
          `sweeper ${Math.round((own.user + own.system) / 1000)} ms CPU`,
      );
      await redis.quit();
    }
  }
} finally {
  await server.stop();
}
