import { keyspace } from '@walcache/core';
import { freePort, startRedisCluster } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import { articleDetail } from '../../../test/support/blog.ts';
import { programArgs } from '../../build.ts';
import { type Ctx, fillAll } from '../context.ts';
import { quantiles } from '../lag.ts';
import type { LoadResult } from '../load.ts';
import { type Child, progress, sleep, waitForHttp } from '../procs.ts';
import type { BenchResults, ClusterResult } from '../results.ts';
import { appEnv, pgClient, startApiChild } from '../stack.ts';
import { cpuMeter, type ProcessGroup } from '../sys.ts';

/** Names of its own: the bench's one-server stack keeps its slot, queue and keys. */
const CLUSTER_NAMES = {
  SLOT_NAME: 'walcache_bench_cluster',
  PUBLICATION_NAME: 'walcache_bench_cluster',
  QUEUE_NAME: 'bench-cluster-invalidate',
  CACHE_PREFIX: 'wcx',
} as const;
/** Articles the probes update; the hit runs read 1…hitIds, below them. */
const PROBE_IDS = 200;

/**
 * Scenario 11 (issue 16): cache and queue on a local Redis Cluster (3 masters + 3 replicas),
 * one CDC, two invalidators and two APIs, each its own process from its bundle. Hit
 * throughput with one and with two APIs, and commit → key deleted, next to the one-server
 * figures of the same run.
 */
export async function clusterScenario(ctx: Ctx, sameRun: BenchResults): Promise<ClusterResult> {
  const { profile, servers, children, load } = ctx;
  progress('cluster: starting a Redis Cluster (3 masters + 3 replicas)');
  const cluster = await startRedisCluster();
  const client = new Cluster(cluster.seeds);
  client.on('error', (err) => progress(`cluster client: ${err.message}`));
  const writer = await pgClient(servers.pg.url, 'walcache-bench-cluster-probe');
  const started: Child[] = [];
  try {
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const env = (api: number, invalidator: number) => ({
      ...appEnv(servers, { api, cdc: ports[0]!, invalidator }),
      REDIS_URL: cluster.url,
      QUEUE_REDIS_URL: cluster.url,
      ...CLUSTER_NAMES,
    });
    progress('cluster: starting cdc, 2 invalidators and 2 APIs on it');
    const cdc = children.spawn('cdc (cluster)', process.execPath, programArgs('cdc', 'bundle'), env(0, 0));
    started.push(cdc);
    await waitForHttp(cdc, `http://127.0.0.1:${ports[0]}/healthz`, (b) => b.includes('"streaming"'));
    const invalidatorPorts = [ports[1]!, ports[2]!];
    const invalidators = invalidatorPorts.map((port, i) =>
      children.spawn(
        `invalidator ${i + 1} (cluster)`,
        process.execPath,
        programArgs('invalidator', 'bundle'),
        env(0, port),
      ),
    );
    const [api1, api2] = await Promise.all([
      startApiChild(children, env(ports[3]!, invalidatorPorts[0]!), { name: 'api 1 (cluster)' }),
      startApiChild(children, env(ports[4]!, invalidatorPorts[1]!), { name: 'api 2 (cluster)' }),
      ...invalidators.map((c, i) => waitForHttp(c, `http://127.0.0.1:${invalidatorPorts[i]}/healthz`)),
    ]);
    const apis = [api1!, api2!];
    started.push(...invalidators, ...apis.map((a) => a.child));
    const cacheKeys = keyspace(CLUSTER_NAMES.CACHE_PREFIX);
    const articleKey = (id: string | number) =>
      cacheKeys.value(articleDetail.key(articleDetail.params.parse({ id: String(id) })));

    const articles = profile.seed.articles;
    const paths = Array.from({ length: profile.hitIds }, (_, i) => `/v1/articles/${i + 1}`);
    progress(`cluster: filling ${paths.length} articles through the first API`);
    await fillAll(api1!.url, client, paths, (path) => articleKey(path.split('/').at(-1)!));

    const apiGroups: ProcessGroup[] = apis.map((a, i) => ({
      name: `api ${i + 1}`,
      memory: 'rss',
      pids: () => [a.child.pid],
    }));
    const redisGroup: ProcessGroup = {
      name: 'redis cluster',
      memory: 'rss',
      pids: () => cluster.nodes.flatMap((n) => (n.server.pid ? [n.server.pid] : [])),
    };
    const hits = async (label: string, urls: string[]) => {
      const runs = urls.map((baseUrl, i) =>
        load.start({
          name: `cluster-${label}-${i}`,
          baseUrl,
          paths,
          connections: Math.max(1, Math.round(profile.connections / urls.length)),
          durationS: profile.runS,
        }),
      );
      await Promise.all(runs.map((r) => r.started));
      const meter = cpuMeter([...apiGroups, redisGroup]);
      const results: LoadResult[] = await Promise.all(runs.map((r) => r.result));
      const cpu = meter.stop();
      const rps = results.reduce((s, r) => s + r.rps, 0);
      const row = {
        label,
        apis: urls.length,
        rps,
        p50Ms: Math.max(...results.map((r) => r.p50Ms)),
        p99Ms: Math.max(...results.map((r) => r.p99Ms)),
        errors: results.reduce((s, r) => s + r.errors, 0),
        cpu,
      };
      progress(`cluster: ${label}: ${Math.round(rps)} req/s, p99 ${row.p99Ms.toFixed(1)} ms`);
      return row;
    };
    await hits('warm-up', [api1!.url]);
    const hitRows = [
      await hits('1 API', [api1!.url]),
      await hits(
        '2 APIs',
        apis.map((a) => a.url),
      ),
    ];

    // Commit → key deleted, probed one at a time with no other writes: the cluster's own cost,
    // next to the one-server probes at scenario 5's lowest rate.
    const latencies: number[] = [];
    let missing = 0;
    const probeCount = Math.max(20, Math.round(profile.invalidation.stepS * profile.invalidation.probeRate));
    progress(`cluster: ${probeCount} probes (read through an API, UPDATE, time until the key is gone)`);
    for (let n = 0; n < probeCount; n++) {
      const id = articles - PROBE_IDS + 1 + (n % PROBE_IDS);
      const key = articleKey(id);
      await (await fetch(`${apis[n % 2]!.url}/v1/articles/${id}`)).arrayBuffer();
      if ((await client.exists(key)) === 0) continue;
      const { rows } = await writer.query<{ at: number }>(
        `update articles set title = $1, updated_at = now() where id = $2
         returning (extract(epoch from clock_timestamp()) * 1000)::float8 as at`,
        [`Cluster probe ${n}`, id],
      );
      const commitMs = rows[0]?.at ?? Date.now();
      const deadline = Date.now() + 10_000;
      while ((await client.exists(key)) === 1 && Date.now() < deadline) await sleep(1);
      if (Date.now() >= deadline) missing += 1;
      else latencies.push(Date.now() - commitMs);
      await sleep(1000 / profile.invalidation.probeRate);
    }
    const oneServerHit = sameRun.http.find((r) => r.id === 'wc-detail');
    return {
      masters: 3,
      replicasPerMaster: 1,
      hits: hitRows,
      oneServerHitRps: oneServerHit?.rps,
      invalidation: { ...quantiles(latencies), missing },
      // The one-server probes at the lowest rate of scenario 5: the closest to an idle machine.
      oneServerInvalidation: sameRun.invalidation?.commitSteps[0]?.invalidation,
    };
  } finally {
    client.disconnect();
    await writer.end();
    // The APIs and invalidators first: they need the cluster and the queue to close cleanly.
    await Promise.all(started.slice(1).map((c) => children.stop(c)));
    if (started[0]) await children.stop(started[0]);
    await dropSlot(ctx);
    await cluster.stop();
  }
}

/** The cluster CDC's slot would hold WAL for the rest of the run. */
async function dropSlot(ctx: Ctx): Promise<void> {
  const c = await pgClient(ctx.servers.pg.url, 'walcache-bench-cluster-cleanup');
  try {
    await c.query(
      'select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active',
      [CLUSTER_NAMES.SLOT_NAME],
    );
  } finally {
    await c.end();
  }
}
