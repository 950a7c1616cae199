/**
 * One invalidation job's cost on one Redis, in CPU time (the Redis server's and this
 * process's, per job) rather than in wall time, which a busy shared machine moves most:
 *
 *   node --import tsx scripts/bench/micro/invalidate.ts [other checkout] [tags per job] [jobs]
 *
 * With another checkout (a `git worktree` of an older commit, dependencies installed) its
 * packages/core runs in turn with this one's, three rounds, each against the same private
 * Redis. Each job first registers one value under its first tag (one SADD), as a real job
 * finds the values it deletes. docs/benchmarks.md has the figures it gave.
 */
import { startRedis } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { cpuMicros } from '../sys.ts';
import { coresToCompare } from './cores.ts';

const [other, tagsArg, jobsArg] = process.argv.slice(2);
const tagsPerJob = Number(tagsArg ?? 15);
const jobs = Number(jobsArg ?? 3000);
if (!(tagsPerJob >= 1 && jobs >= 1)) {
  console.error(
    'usage: node --import tsx scripts/bench/micro/invalidate.ts [other checkout] [tags per job ≥ 1] [jobs ≥ 1]',
  );
  process.exit(2);
}
const cores = await coresToCompare(other);

const server = await startRedis();
try {
  for (const round of [1, 2, 3]) {
    for (const [index, [name, core]] of cores.entries()) {
      // Its own client: the walcache commands are defined once per client.
      const redis = new Redis(server.url);
      const keys = core.keyspace(`micro${round}-${index}`);
      let tag = 0;
      const redisBefore = cpuMicros(server.pid ?? 0);
      const ownBefore = process.cpuUsage();
      const started = performance.now();
      for (let job = 0; job < jobs; job++) {
        const tags = Array.from({ length: tagsPerJob }, () => `row:articles:${tag++ % 5000}`);
        await redis.sadd(keys.tagSet(tags[0] as string), keys.value(`article:${job}`));
        await core.invalidateTags(redis, keys, tags);
      }
      const own = process.cpuUsage(ownBefore);
      console.log(
        `round ${round} ${name}: Redis ${((cpuMicros(server.pid ?? 0) - redisBefore) / jobs).toFixed(0)} µs/job, ` +
          `invalidator ${((own.user + own.system) / jobs).toFixed(0)} µs/job, ${((performance.now() - started) / jobs).toFixed(3)} ms/job ` +
          `(${tagsPerJob} tags)`,
      );
      await redis.quit();
    }
  }
} finally {
  await server.stop();
}
