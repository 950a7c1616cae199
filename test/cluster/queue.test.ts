import { keyspace, QUEUE_PREFIX } from '@walcache/core';
import { type RedisCluster, startRedisCluster, waitFor } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/main.ts';
import { type LiveSystem, startLiveSystem } from '../support/stack.ts';

// The queue (BullMQ jobs, the read-your-writes watermark) on a Redis Cluster, the cache on one
// Redis: what QUEUE_REDIS_URL=redis+cluster://… runs today (docs/scaling.md).
const OPS_TOKEN = 'cluster-ops-token-123';
let cluster: RedisCluster;
let live: LiveSystem;
let writer: pg.Client;
/** The tags of every store attempt by the CDC (a refused batch is attempted again). */
const attempts: (readonly string[])[] = [];

beforeAll(async () => {
  // No test here needs a quick failover: a busy master is not replaced mid-test.
  cluster = await startRedisCluster({ nodeTimeoutMs: 5_000 });
  live = await startLiveSystem(
    { QUEUE_REDIS_URL: cluster.url, OPS_TOKEN },
    {
      // A refused store is retried after a short backoff: the replica test below waits
      // for a second attempt, and the default backoff grows to seconds after a few.
      maxBackoffMs: 500,
      beforeStore: (batch: { tags: readonly string[] }) => {
        attempts.push(batch.tags);
      },
    },
  );
  writer = live.writer;
});
afterAll(async () => {
  await live?.stop();
  await cluster?.stop();
});

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${live.stack.api.url}${path}`, { headers });

describe('the invalidation queue on a Redis Cluster', () => {
  it('a plain UPDATE reaches the cache through CDC → BullMQ on the cluster → invalidator', async () => {
    expect((await get('/v1/articles/7')).headers.get('x-cache')).toBe('MISS');
    expect((await get('/v1/articles/7')).headers.get('x-cache')).toBe('HIT');
    await writer.query(`update articles set title = 'on a cluster queue' where id = 7`);
    await waitFor(
      async () =>
        ((await (await get('/v1/articles/7')).json()) as { title: string }).title === 'on a cluster queue',
      { what: 'the new title', timeoutMs: 20_000 },
    );
  });

  it('the watermark advances on the cluster under its hash-tagged keys, and a token waits for it', async () => {
    const client = new Cluster(cluster.seeds);
    try {
      const keys = keyspace(live.stack.env.CACHE_PREFIX);
      const [watermarkKey, doneKey] = keys.watermarkKeys(true);
      expect(await client.cluster('KEYSLOT', watermarkKey)).toBe(await client.cluster('KEYSLOT', doneKey));
      const before = await client.get(watermarkKey);
      expect(before).not.toBeNull();
      // A write, then its token: the read waits for W to pass it and sees the write.
      const { rows } = await writer.query<{ lsn: string }>(
        `update articles set title = 'token read' where id = 8 returning pg_current_wal_lsn()::text as lsn`,
      );
      const token = rows[0]?.lsn ?? '';
      const res = await get('/v1/articles/8', { 'x-walcache-after': token });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { title: string }).title).toBe('token read');
      await waitFor(async () => BigInt((await client.get(watermarkKey)) ?? '0') > BigInt(before ?? '0'), {
        what: 'W to advance on the cluster',
      });
    } finally {
      client.disconnect();
    }
  });

  it('a commit is acknowledged to Postgres only once its job is on a replica: a failover cannot lose it', async () => {
    // First everything before this test acknowledged: a store of an earlier test that a slow
    // replica made fail (WAIT answers 0 after 2 s on a loaded machine) is replayed until it
    // succeeds, and with the replicas stopped below it would be replayed forever, ahead of
    // this test's commit.
    const { rows: before } = await writer.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    await waitFor(
      async () => {
        const { rows: slot } = await writer.query<{ caughtUp: boolean }>(
          'select confirmed_flush_lsn >= $1::pg_lsn as "caughtUp" from pg_replication_slots where slot_name = $2',
          [before[0]?.lsn, live.stack.env.SLOT_NAME],
        );
        return slot[0]?.caughtUp === true;
      },
      { what: 'the CDC to acknowledge every earlier commit', timeoutMs: 30_000 },
    );
    // Every replica the queue's master has: one left running would acknowledge the job.
    const pids = (await cluster.replicasOf(`${QUEUE_PREFIX}:any`)).map((r) => r.node.server.pid);
    expect(pids.length).toBeGreaterThan(0);
    expect(pids.every((pid) => pid !== undefined)).toBe(true);
    // The replicas stop answering (as if partitioned): the master still takes the job.
    for (const pid of pids) process.kill(pid as number, 'SIGSTOP');
    try {
      const { rows } = await writer.query<{ lsn: string }>(
        `update articles set title = 'held by the replica' where id = 9 returning pg_current_wal_insert_lsn()::text as lsn`,
      );
      // A second attempt for the batch: the first was refused, no replica had the job.
      const ofThisCommit = () => attempts.filter((tags) => tags.includes('row:articles:9')).length;
      await waitFor(() => ofThisCommit() >= 2, {
        what: 'the CDC to retry the store',
        timeoutMs: 30_000,
      }).catch(async (error: unknown) => {
        // Seen once under the full suite, never alone: say where the CDC was stuck.
        const { rows: slot } = await writer.query(
          'select active_pid, confirmed_flush_lsn::text as confirmed from pg_replication_slots where slot_name = $1',
          [live.stack.env.SLOT_NAME],
        );
        const stream = live.stack.cdc.stream;
        throw new Error(
          `${(error as Error).message}; store attempts ${attempts.length}, of this commit ${ofThisCommit()}; ` +
            `CDC ${stream.state}, last received ${stream.lastReceivedLsn}; slot ${JSON.stringify(slot[0])}`,
          { cause: error },
        );
      });
      const { rows: slot } = await writer.query<{ behind: boolean }>(
        'select confirmed_flush_lsn < $1::pg_lsn as behind from pg_replication_slots where slot_name = $2',
        [rows[0]?.lsn, live.stack.env.SLOT_NAME],
      );
      expect(slot[0]?.behind).toBe(true);
    } finally {
      for (const pid of pids) process.kill(pid as number, 'SIGCONT');
    }
    await waitFor(
      async () => {
        const { rows: slot } = await writer.query<{ lsn: string }>(
          'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
          [live.stack.env.SLOT_NAME],
        );
        const title = ((await (await get('/v1/articles/9')).json()) as { title: string }).title;
        return slot.length === 1 && title === 'held by the replica';
      },
      { what: 'the job replicated, the commit acknowledged and the cache invalidated', timeoutMs: 30_000 },
    );
  });

  it('the CLI reads the queue and the watermark on the cluster (walcache status)', async () => {
    const e = live.stack.env;
    let out = '';
    let err = '';
    const io = {
      out: (text: string) => {
        out += text;
      },
      err: (text: string) => {
        err += text;
      },
      interactive: false,
      ask: async () => '',
    };
    const code = await run(['status', '--json'], io, {
      DATABASE_URL: e.DATABASE_URL,
      REDIS_URL: e.REDIS_URL,
      QUEUE_REDIS_URL: cluster.url,
      CACHE_PREFIX: e.CACHE_PREFIX,
      QUEUE_NAME: e.QUEUE_NAME,
      SLOT_NAME: e.SLOT_NAME,
      PUBLICATION_NAME: e.PUBLICATION_NAME,
    });
    expect(err).toBe('');
    expect(code).toBe(0);
    const doc = JSON.parse(out) as {
      queue: { name: string; completed?: number };
      watermark: { lsn: string | null };
    };
    expect(doc.queue.name).toBe(e.QUEUE_NAME);
    expect(doc.watermark.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('the ops routes read the queue on the cluster: /ops/status and the queue dashboard', async () => {
    const headers = { authorization: `Bearer ${OPS_TOKEN}` };
    const status = (await (await get('/ops/status', headers)).json()) as {
      queue: { name: string; counts: { completed: number } };
      watermark: { lsn: string | null };
    };
    expect(status.queue.name).toBe(live.stack.env.QUEUE_NAME);
    expect(status.queue.counts.completed).toBeGreaterThanOrEqual(1);
    expect(status.watermark.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const dashboard = await get(`/ops/queues/api/queues`, headers);
    expect(dashboard.status).toBe(200);
    expect(JSON.stringify(await dashboard.json())).toContain(live.stack.env.QUEUE_NAME);
  });
});
