import { startRedisCluster } from '@walcache/testkit';
import { describeConsistency } from '../core/consistency-suite.ts';

/**
 * The randomized consistency run with the cache and the queue on one Redis Cluster
 * (REDIS_URL = QUEUE_REDIS_URL = redis+cluster://…): every read judged against the bound
 * during the run, nothing stale after the drain. `npm test` runs the one-server suite's 200
 * operations per writer (fewer finished in 4 s on a quiet machine: too short for the 20
 * conclusive in-run checks each takes 2 s to make); WALCACHE_CLUSTER_FULL=1 runs 600.
 */
const OPS_PER_WRITER = process.env.WALCACHE_CLUSTER_FULL === '1' ? 600 : 200;

describeConsistency('Redis Cluster', OPS_PER_WRITER, async () => {
  const cluster = await startRedisCluster();
  return {
    redisOverrides: { REDIS_URL: cluster.url, QUEUE_REDIS_URL: cluster.url },
    stop: () => cluster.stop(),
  };
});
