import { startRedisCluster } from '@walcache/testkit';
import { describeConsistency } from '../core/consistency-suite.ts';

/**
 * The randomized consistency run with the cache and the queue on one Redis Cluster
 * (REDIS_URL = QUEUE_REDIS_URL = redis+cluster://…): every read judged against the bound
 * during the run, nothing stale after the drain. `npm test` runs 60 operations per writer
 * (six Redis nodes, Postgres and every app share the machine's cores);
 * WALCACHE_CLUSTER_FULL=1 runs the one-server suite's 200.
 */
const OPS_PER_WRITER = process.env.WALCACHE_CLUSTER_FULL === '1' ? 200 : 60;

describeConsistency('Redis Cluster', OPS_PER_WRITER, async () => {
  const cluster = await startRedisCluster();
  return {
    redisOverrides: { REDIS_URL: cluster.url, QUEUE_REDIS_URL: cluster.url },
    stop: () => cluster.stop(),
  };
});
