import { type AnyResource, INVALIDATE_JOB_NAME, keyspace, rowTag } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { startRedis, waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { resourceForKey, userProfile } from '../support/blog.ts';
import { type LiveSystem, type Servers, type Stack, startLiveSystem, testEnv } from '../support/stack.ts';
import { apiCacheReady, has, type Sample, scrape, sum, value } from './helpers.ts';

let servers: Servers;
let stack: Stack;
let writer: pg.Client;
let live: LiveSystem;

beforeAll(async () => {
  // A low per-table tag limit, so one modest transaction is collapsed to a table invalidation.
  live = await startLiveSystem({}, { maxTagsPerTable: 10 });
  ({ servers, stack, writer } = live);
  await apiCacheReady(stack.api.url);
});

afterAll(async () => {
  await live?.stop();
});

const apiMetrics = () => scrape(`${stack.api.url}/metrics`);
const cdcMetrics = () => scrape(`http://127.0.0.1:${stack.cdc.metricsPort}/metrics`);
const invMetrics = () => scrape(`http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`);
const get = (path: string) => fetch(`${stack.api.url}${path}`);

/** Waits until `read` (a sum over fresh samples) exceeds `before`. */
async function grows(scrapeFn: () => Promise<Sample[]>, name: string, before: number, where = {}) {
  await waitFor(async () => sum(await scrapeFn(), name, where) > before, { what: `${name} to grow` });
}

describe('api metrics', () => {
  it('request duration by route and cache outcome, hits, misses and loads move with requests', async () => {
    const before = await apiMetrics();
    const route = { route: '/v1/articles/:id' };
    await get('/v1/articles/21');
    await get('/v1/articles/21');
    const after = await apiMetrics();
    expect(sum(after, 'walcache_api_request_duration_seconds_count', route)).toBe(
      sum(before, 'walcache_api_request_duration_seconds_count', route) + 2,
    );
    expect(
      sum(after, 'walcache_api_request_duration_seconds_count', { ...route, cache: 'HIT' }),
    ).toBeGreaterThan(sum(before, 'walcache_api_request_duration_seconds_count', { ...route, cache: 'HIT' }));
    for (const outcome of ['HIT', 'MISS']) {
      expect(sum(after, 'walcache_cache_requests_total', { resource: 'article', outcome })).toBe(
        sum(before, 'walcache_cache_requests_total', { resource: 'article', outcome }) + 1,
      );
    }
    expect(sum(after, 'walcache_cache_load_duration_seconds_count', { resource: 'article' })).toBe(
      sum(before, 'walcache_cache_load_duration_seconds_count', { resource: 'article' }) + 1,
    );
  });

  it('a fill the protocol refuses (another process holds the lease) is counted', async () => {
    const before = sum(await apiMetrics(), 'walcache_cache_fills_refused_total', { reason: 'lease-held' });
    // Another process's lease, planted by hand: the API must load without caching.
    await redisCommand(['SET', keyspace(stack.env.CACHE_PREFIX).lease('article:22'), 'other', 'PX', '10000']);
    expect((await get('/v1/articles/22')).status).toBe(200);
    expect(sum(await apiMetrics(), 'walcache_cache_fills_refused_total', { reason: 'lease-held' })).toBe(
      before + 1,
    );
  });
});

describe('cdc and invalidator metrics', () => {
  it('a committed change moves the CDC counters, the job histograms and the invalidation latency', async () => {
    await get('/v1/articles/23'); // cached, so the invalidation deletes a key
    const [cdc, inv] = await Promise.all([cdcMetrics(), invMetrics()]);
    await writer.query("update articles set title = 'metrics test' where id = 23");
    await grows(
      invMetrics,
      'walcache_invalidation_latency_seconds_count',
      sum(inv, 'walcache_invalidation_latency_seconds_count'),
    );
    const [cdc2, inv2] = await Promise.all([cdcMetrics(), invMetrics()]);
    for (const name of [
      'walcache_cdc_transactions_total',
      'walcache_cdc_changes_total',
      'walcache_cdc_tags_total',
      'walcache_cdc_jobs_enqueued_total',
      'walcache_cdc_batch_transactions_count',
      'walcache_cdc_batch_tags_count',
      'walcache_cdc_enqueue_duration_seconds_count',
      'walcache_cdc_last_stored_lsn',
    ])
      expect(sum(cdc2, name), name).toBeGreaterThan(sum(cdc, name));
    await grows(cdcMetrics, 'walcache_cdc_last_acked_lsn', sum(cdc, 'walcache_cdc_last_acked_lsn'));
    expect(sum(cdc2, 'walcache_cdc_connected')).toBe(1);
    expect(sum(inv2, 'walcache_invalidator_jobs_total', { outcome: 'completed' })).toBeGreaterThan(
      sum(inv, 'walcache_invalidator_jobs_total', { outcome: 'completed' }),
    );
    expect(sum(inv2, 'walcache_invalidator_keys_deleted_total')).toBeGreaterThan(
      sum(inv, 'walcache_invalidator_keys_deleted_total'),
    );
    expect((await get('/v1/articles/23')).headers.get('x-cache')).toBe('MISS');
  });

  it('heartbeats report replication lag; slot lag is exported by the CDC and, from Postgres, by the invalidator', async () => {
    await waitFor(async () => has(await cdcMetrics(), 'walcache_cdc_replication_lag_seconds'), {
      what: 'a heartbeat',
    });
    const cdc = await cdcMetrics();
    expect(value(cdc, 'walcache_cdc_slot_lag_bytes')).toBeGreaterThanOrEqual(0);
    const inv = await invMetrics();
    const slot = { slot: stack.env.SLOT_NAME };
    expect(sum(inv, 'walcache_replication_slot_exists', slot)).toBe(1);
    expect(sum(inv, 'walcache_replication_slot_active', slot)).toBe(1);
    expect(value(inv, 'walcache_replication_slot_lag_bytes', slot)).toBeGreaterThanOrEqual(0);
    expect(sum(inv, 'walcache_replication_slot_retained_wal_bytes', slot)).toBeGreaterThan(0);
  });

  it('a refresh-policy key is refreshed, and the BullMQ queue counts are exported', async () => {
    await get('/v1/users/7');
    const before = await invMetrics();
    await writer.query("update users set bio = 'metrics' where id = 7");
    await grows(
      invMetrics,
      'walcache_invalidator_keys_refreshed_total',
      sum(before, 'walcache_invalidator_keys_refreshed_total'),
    );
    expect((await get('/v1/users/7')).headers.get('x-cache')).toBe('HIT');
    const inv = await invMetrics();
    const queue = stack.env.QUEUE_NAME;
    expect(
      sum(inv, 'walcache_queue_jobs', { queue, state: 'completed' }),
      JSON.stringify(
        inv.filter((s) => s.name.startsWith('walcache_queue') || s.name.startsWith('walcache_ops')),
      ),
    ).toBeGreaterThanOrEqual(2);
    for (const state of ['waiting', 'active', 'delayed', 'failed'])
      expect(inv.some((s) => s.name === 'walcache_queue_jobs' && s.labels.state === state)).toBe(true);
    expect(value(inv, 'walcache_queue_oldest_pending_age_seconds', { queue })).toBeGreaterThanOrEqual(0);
  });

  it('the auditor counts its checks', async () => {
    await get('/v1/articles/24');
    await waitFor(async () => sum(await invMetrics(), 'walcache_auditor_checked_total') > 0, {
      what: 'the auditor to check a cached value',
      timeoutMs: 20_000,
    });
    expect(sum(await invMetrics(), 'walcache_auditor_stale_total')).toBe(0);
  });

  it('a failing refresh is retried, then falls back to a table-wide invalidation and fails', async () => {
    // A second deployment on the same servers whose user loads fail: its invalidator retries.
    const env = testEnv(servers);
    const failingUser: AnyResource<Db> = {
      ...userProfile,
      load: async () => {
        throw new Error('simulated database failure');
      },
    };
    const api = await startApi(env, silentLogger());
    const inv = await startInvalidator(env, silentLogger(), {
      auditor: false,
      resourceForKey: (key) => (key.startsWith('user:') ? failingUser : resourceForKey(key)),
    });
    try {
      // The first read may BYPASS while the API's Redis connection comes up: read until cached.
      await waitFor(async () => (await fetch(`${api.url}/v1/users/3`)).headers.get('x-cache') === 'HIT', {
        what: 'user 3 to be cached',
      });
      const now = Date.now();
      await inv.queue.add(
        INVALIDATE_JOB_NAME,
        {
          v: 1,
          tags: [rowTag('users', 3)],
          lsnFrom: '0/1',
          lsnTo: '0/1',
          firstCommitMs: now,
          lastCommitMs: now,
          transactions: 1,
          enqueuedMs: now,
        },
        // Two quick attempts instead of the production eight with backoff.
        { jobId: 'refresh-fails', attempts: 2, backoff: { type: 'fixed', delay: 10 } },
      );
      const metrics = () => scrape(`http://127.0.0.1:${inv.metricsPort}/metrics`);
      await grows(metrics, 'walcache_invalidator_fallbacks_total', 0);
      await grows(metrics, 'walcache_invalidator_jobs_total', 0, { outcome: 'failed' });
      expect(sum(await metrics(), 'walcache_invalidator_retries_total')).toBeGreaterThanOrEqual(1);
      await waitFor(async () => sum(await metrics(), 'walcache_queue_jobs', { state: 'failed' }) >= 1, {
        what: 'the failed job in the queue gauge',
      });
    } finally {
      await Promise.allSettled([api.close(), inv.close()]);
    }
  });

  it('a transaction changing many rows of a table is counted as a table-wide invalidation', async () => {
    const before = sum(await cdcMetrics(), 'walcache_cdc_table_invalidations_total', { table: 'comments' });
    await writer.query("update comments set body = body || '.' where article_id <= 20");
    await grows(cdcMetrics, 'walcache_cdc_table_invalidations_total', before, { table: 'comments' });
  });

  it('a second CDC waits as a standby while the first holds the slot', async () => {
    const standby = await startCdc(stack.env, silentLogger(), { metricsPort: 0 });
    try {
      await waitFor(
        async () =>
          sum(await scrape(`http://127.0.0.1:${standby.metricsPort}/metrics`), 'walcache_cdc_standby') === 1,
        { what: 'the second CDC to report standby' },
      );
      expect(sum(await cdcMetrics(), 'walcache_cdc_connected')).toBe(1);
    } finally {
      await standby.close();
    }
  });

  it('a dropped connection counts a reconnect; a lost slot counts a recreation and a cache flush', async () => {
    const before = await cdcMetrics();
    // Drop the walsender and the slot together, as a failover to a replica without it would.
    await waitFor(
      async () => {
        await writer.query(
          'select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null',
          [stack.env.SLOT_NAME],
        );
        const { rows } = await writer.query<{ dropped: boolean }>(
          `select count(*) = 0 as dropped from pg_replication_slots where slot_name = $1`,
          [stack.env.SLOT_NAME],
        );
        if (rows[0]?.dropped) return true;
        await writer
          .query('select pg_drop_replication_slot($1)', [stack.env.SLOT_NAME])
          .catch((error: unknown) => expect(String(error)).toMatch(/is active|does not exist/));
        return false;
      },
      { what: 'the slot to be dropped' },
    );
    await grows(cdcMetrics, 'walcache_cdc_reconnects_total', sum(before, 'walcache_cdc_reconnects_total'));
    await grows(
      cdcMetrics,
      'walcache_cdc_slot_recreations_total',
      sum(before, 'walcache_cdc_slot_recreations_total'),
    );
    await grows(
      cdcMetrics,
      'walcache_cdc_cache_flushes_total',
      sum(before, 'walcache_cdc_cache_flushes_total'),
    );
    await waitFor(async () => sum(await cdcMetrics(), 'walcache_cdc_connected') === 1, {
      what: 'the CDC to reconnect',
    });
  });

  it('a Redis outage turns reads into BYPASS and counts the Redis errors', async () => {
    // An API of its own on a Redis of its own: killing the shared one would stall the others.
    const redis = await startRedis();
    const api = await startApi(testEnv(servers, { REDIS_URL: redis.url }), silentLogger());
    try {
      const metrics = () => scrape(`${api.url}/metrics`);
      await waitFor(
        async () => (await fetch(`${api.url}/v1/articles/25`)).headers.get('x-cache') !== 'BYPASS',
        {
          what: 'the API to reach its Redis',
        },
      );
      const before = await metrics();
      await redis.kill();
      const res = await fetch(`${api.url}/v1/articles/25`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('BYPASS');
      const after = await metrics();
      expect(sum(after, 'walcache_cache_redis_errors_total')).toBeGreaterThan(
        sum(before, 'walcache_cache_redis_errors_total'),
      );
      expect(sum(after, 'walcache_cache_requests_total', { outcome: 'BYPASS' })).toBeGreaterThan(
        sum(before, 'walcache_cache_requests_total', { outcome: 'BYPASS' }),
      );
    } finally {
      await api.close();
      await redis.stop();
    }
  });
});

/** One command on the test Redis over a short-lived connection. */
async function redisCommand(args: string[]): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(servers.redis.url);
  try {
    await redis.call(args[0]!, ...args.slice(1));
  } finally {
    redis.disconnect();
  }
}
