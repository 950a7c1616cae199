/**
 * The CDC kill suite (test/cdc/kill-run.ts) with the cache and the queue on one Redis Cluster
 * (REDIS_URL = QUEUE_REDIS_URL = redis+cluster://…): the CDC SIGKILLed while every master
 * refuses writes, restarted, again and again; no acknowledged change missing, nothing stale.
 *
 * CI-sized by default (4 kills, one of them before the CDC streams). With
 * WALCACHE_CLUSTER_FULL=1: the 10 kills of the one-server suite.
 */
import { startRedisCluster } from '@walcache/testkit';
import { describeCdcKill } from '../cdc/kill-run.ts';
import { startServers, testEnv } from '../support/stack.ts';

const FULL = process.env.WALCACHE_CLUSTER_FULL === '1';

describeCdcKill({
  where: 'a Redis Cluster',
  cycles: FULL ? 10 : 4,
  start: async () => {
    const [servers, cluster] = await Promise.all([startServers(), startRedisCluster()]);
    return {
      env: testEnv(servers, { REDIS_URL: cluster.url, QUEUE_REDIS_URL: cluster.url }),
      stop: async () => {
        await Promise.allSettled([cluster.stop(), servers.stop()]);
      },
    };
  },
});
