/**
 * A cache master killed (SIGKILL) under a write storm, its replica promoted: afterwards every
 * key reads what Postgres holds, and no API answer was a 5xx meanwhile. The queue stays on
 * one Redis here, so what fails over is the cache alone.
 *
 * CI-sized by default (20 articles, a storm of a few seconds around one kill). With
 * WALCACHE_CLUSTER_FULL=1: 100 articles, two masters killed one after the other, a longer
 * storm.
 */
import { decodeEntry, keyspace } from '@walcache/core';
import { type RedisCluster, startRedisCluster, waitFor } from '@walcache/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueBacklog } from '../support/cdc-harness.ts';
import { type LiveSystem, startLiveSystem } from '../support/stack.ts';

const FULL = process.env.WALCACHE_CLUSTER_FULL === '1';
const ARTICLES = FULL ? 100 : 20;
const KILLS = FULL ? 2 : 1;
/**
 * Commits the storm makes after each promotion, before the next kill or the end: counted, not
 * timed, so a loaded machine still writes through the promoted master (about 1.5 s, or 5 s
 * with WALCACHE_CLUSTER_FULL, on a quiet one).
 */
const WRITES_AFTER_PROMOTION = FULL ? 1_500 : 300;

let cluster: RedisCluster;
let live: LiveSystem;
let client: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  // The queue on the test's own single Redis, as said above: with QUEUE_REDIS_URL left to
  // default to the cluster, the queue's slot lay on the master whose replica the second test
  // stops in a third of the runs or so, and the CDC rightly held every commit (no replica
  // holds its job, docs/scaling.md) until the test timed out.
  live = await startLiveSystem((servers) => ({ REDIS_URL: cluster.url, QUEUE_REDIS_URL: servers.redis.url }));
  client = new Cluster(cluster.seeds);
});
afterAll(async () => {
  client?.disconnect();
  await live?.stop();
  await cluster?.stop();
});

const ids = Array.from({ length: ARTICLES }, (_, i) => i + 1);
const api = (path: string) => fetch(`${live.stack.api.url}${path}`);

describe('a cache master killed under a write storm', () => {
  it('leaves every key reading what Postgres holds, and no API answer was a 5xx', async () => {
    const keys = keyspace(live.stack.env.CACHE_PREFIX);
    // Warm: every article cached before the storm.
    for (const id of ids) expect((await api(`/v1/articles/${id}`)).status).toBe(200);

    const statuses = new Map<number, number>();
    let storming = true;
    let writes = 0;
    const writer = (async () => {
      while (storming) {
        const id = ids[writes % ids.length]!;
        writes += 1;
        await live.writer.query('update articles set title = $1 where id = $2', [`storm ${writes}`, id]);
      }
    })();
    const reader = async (offset: number) => {
      for (let n = offset; storming; n += 1) {
        const res = await api(`/v1/articles/${ids[n % ids.length]}`);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    const readers = [reader(0), reader(7), reader(13)];

    for (let kill = 0; kill < KILLS; kill += 1) {
      // The master of one of the storm's values (a different shard on the second kill).
      const victim = await cluster.masterFor(keys.value(`article:${ids[kill * 7]}`));
      const pid = victim.server.pid;
      expect(pid).toBeDefined();
      process.kill(pid as number, 'SIGKILL');
      await waitFor(
        async () => (await cluster.masterFor(keys.value(`article:${ids[kill * 7]}`))) !== victim,
        {
          what: 'a replica to be promoted',
          timeoutMs: 30_000,
        },
      );
      await cluster.waitHealthy();
      const promotedAt = writes;
      await waitFor(() => writes >= promotedAt + WRITES_AFTER_PROMOTION, {
        what: 'writes through the promoted master',
        timeoutMs: 60_000,
      });
    }
    storming = false;
    await Promise.all([writer, ...readers]);
    expect(writes).toBeGreaterThan(ids.length);

    // No 5xx while it happened: a shard without a master is a BYPASS (or a wait), not an error.
    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);

    // Every article answers what Postgres holds, and nothing cached differs from it.
    const truth = async () => {
      const { rows } = await live.writer.query<{ id: string; title: string }>(
        'select id::text, title from articles where id = any($1::bigint[])',
        [ids],
      );
      return new Map(rows.map((r) => [r.id, r.title]));
    };
    // Until a process has checked the new generation (and flushed), the API bypasses a cache
    // that may hold what the promoted replica missed; afterwards it serves from the cache again.
    await waitFor(
      async () => {
        const db = await truth();
        for (const id of ids) {
          const res = await api(`/v1/articles/${id}`);
          if (res.status !== 200 || res.headers.get('x-cache') === 'BYPASS') return false;
          if (((await res.json()) as { title: string }).title !== db.get(String(id))) return false;
          const raw = await client.getBuffer(keys.value(`article:${id}`));
          if (raw && JSON.parse(decodeEntry(raw).body.toString()).title !== db.get(String(id))) return false;
        }
        return true;
      },
      { what: 'every article to read (and be cached as) what Postgres holds', timeoutMs: 60_000 },
    );
  });

  it('a promoted replica that missed an acknowledged invalidation is flushed, not served', async () => {
    const keys = keyspace(live.stack.env.CACHE_PREFIX);
    // A shard that still has its replica (the test above may have used one up).
    let id = 0;
    let master: Awaited<ReturnType<RedisCluster['masterFor']>> | undefined;
    let replicaPort = 0;
    for (const candidate of ids) {
      const key = keys.value(`article:${candidate}`);
      const online = (await cluster.replicasOf(key)).find((r) => r.online);
      if (online) {
        [id, master, replicaPort] = [candidate, await cluster.masterFor(key), online.node.port];
        break;
      }
    }
    expect(master).toBeDefined();
    const replica = cluster.nodes.find((n) => n.port === replicaPort)!;
    const title = async () => ((await (await api(`/v1/articles/${id}`)).json()) as { title: string }).title;
    await api(`/v1/articles/${id}`);
    await waitFor(async () => (await client.exists(keys.value(`article:${id}`))) === 1, {
      what: 'the article to be cached (and replicated)',
      timeoutMs: 30_000,
    });
    const before = await title();

    // The replica stops taking the stream, and the master drops it: a tiny replica output
    // buffer, overrun by writes to the same slot once the socket buffers are full (bytes
    // already in the replica's socket buffer would otherwise still reach it on SIGCONT).
    process.kill(replica.server.pid!, 'SIGSTOP');
    let resumed = false;
    const onMaster = new Redis({ host: '127.0.0.1', port: master!.port });
    try {
      await onMaster.config('SET', 'client-output-buffer-limit', 'replica 1mb 1mb 0');
      const junk = 'x'.repeat(1 << 20);
      for (let n = 0; n < 64 && /connected_slaves:[1-9]/.test(await onMaster.info('replication')); n += 1)
        await onMaster.set(`junk{article:${id}}:${n}`, junk);
      expect(await onMaster.info('replication')).toMatch(/connected_slaves:0/);
      await live.writer.query('update articles set title = $1 where id = $2', ['after the failover', id]);
      // 60 s as the other waits here: the master is still taking 1 MB writes, and under the full
      // suite on a slow machine the invalidation passed 20 s twice (never alone).
      await waitFor(async () => (await title()) === 'after the failover', {
        what: 'the invalidation to complete on the master',
        timeoutMs: 60_000,
      }).catch(async (error: unknown) => {
        // What was left where, for a failure seen only under the full suite.
        const res = await api(`/v1/articles/${id}`);
        const { rows } = await live.writer.query(
          'select confirmed_flush_lsn::text, pg_current_wal_lsn()::text as current from pg_replication_slots where slot_name = $1',
          [live.stack.env.SLOT_NAME],
        );
        const state = {
          api: { cache: res.headers.get('x-cache'), body: await res.text() },
          cachedOnMaster: await onMaster.exists(keys.value(`article:${id}`)),
          slot: rows[0],
          queue: await queueBacklog(live.stack.invalidator.queue),
        };
        throw new Error(`${(error as Error).message}: ${JSON.stringify(state)}`, { cause: error });
      });
      // The master dies; the replica, which still holds the old value, takes over.
      process.kill(master!.server.pid!, 'SIGKILL');
      process.kill(replica.server.pid!, 'SIGCONT');
      resumed = true;
    } finally {
      onMaster.disconnect();
      if (!resumed) process.kill(replica.server.pid!, 'SIGCONT');
    }
    await waitFor(async () => (await cluster.masterFor(keys.value(`article:${id}`))).port === replicaPort, {
      what: 'the lagging replica to be promoted',
      timeoutMs: 30_000,
    });
    await cluster.waitHealthy();
    // The promoted replica really holds the value whose invalidation was acknowledged…
    const direct = new Redis({ host: '127.0.0.1', port: replicaPort });
    const held = await direct.getBuffer(keys.value(`article:${id}`)).finally(() => direct.disconnect());
    // …unless a process already flushed it: either way the API must never serve it again.
    if (held) expect(JSON.parse(decodeEntry(held).body.toString()).title).toBe(before);
    for (let n = 0; n < 20; n += 1) {
      const res = await api(`/v1/articles/${id}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { title: string }).title).toBe('after the failover');
    }
    // Its waits (30 s, 60 s, 30 s) bound it, not the suite's default 60 s.
  }, 150_000);
});
