import { Auditor, readAuditorTotals } from '@walcache/auditor';
import { decodeEntry, encodeEntry, keyspace, QUEUE_PREFIX } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { Registry, silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceForKey } from '../support/blog.ts';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';
import { scrape, sum } from './helpers.ts';

let servers: Servers;
let redis: Redis;
let writer: pg.Client;

beforeAll(async () => {
  servers = await startServers();
  redis = new Redis(servers.redis.url);
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  redis?.disconnect();
  await servers?.stop();
});

async function stackReady(): Promise<Stack> {
  const stack = await startStack(servers);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  return stack;
}

/** Reads until the API answers from its cache (the very first read may BYPASS while Redis connects). */
async function cacheIt(stack: Stack, path: string): Promise<void> {
  await waitFor(async () => (await fetch(`${stack.api.url}${path}`)).headers.get('x-cache') === 'HIT', {
    what: `${path} to be cached`,
  });
}

describe('consistency auditor', () => {
  it('finds a value planted stale by hand (bypassing walcache), counts it and removes it', async () => {
    const stack = await stackReady();
    try {
      const keys = keyspace(stack.env.CACHE_PREFIX);
      for (const id of [31, 32, 33]) await cacheIt(stack, `/v1/articles/${id}`);
      // Rewrite article 32's cached body as if an invalidation had been lost: same header,
      // same tags and TTL, a title Postgres never had.
      const valueKey = keys.value('article:32');
      const raw = await redis.getBuffer(valueKey);
      expect(raw).not.toBeNull();
      const entry = decodeEntry(raw!);
      const body = { ...(JSON.parse(entry.body.toString()) as object), title: 'planted stale title' };
      const ttl = await redis.pttl(valueKey);
      await redis.set(
        valueKey,
        encodeEntry({ ...entry, body: Buffer.from(JSON.stringify(body)) }),
        'PX',
        ttl,
      );
      expect(
        ((await (await fetch(`${stack.api.url}/v1/articles/32`)).json()) as { title: string }).title,
      ).toBe('planted stale title');

      // The invalidator's own auditor (default pace) finds it.
      const metrics = () => scrape(`http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`);
      await waitFor(
        async () => sum(await metrics(), 'walcache_auditor_stale_total', { resource: 'article' }) >= 1,
        {
          what: 'the auditor to report the planted value',
          // Why 30 s: at 5 keys a second the auditor reaches any of the few cached keys within
          // seconds; the stale verdict waits for the CDC to acknowledge past the reload.
          timeoutMs: 30_000,
        },
      );
      const after = await metrics();
      expect(
        sum(after, 'walcache_auditor_stale_age_seconds_count', { resource: 'article' }),
      ).toBeGreaterThanOrEqual(1);
      expect(sum(after, 'walcache_auditor_repaired_total')).toBeGreaterThanOrEqual(1);
      const totals = await readAuditorTotals(redis, stack.env.CACHE_PREFIX);
      expect(totals.stale).toBeGreaterThanOrEqual(1);
      expect(totals.lastStaleKey).toBe('article:32');
      expect(totals.consistencyRate).toBeLessThan(1);
      // Repaired: the next read loads the real title again.
      const res = await fetch(`${stack.api.url}/v1/articles/32`);
      expect(((await res.json()) as { title: string }).title).not.toBe('planted stale title');
    } finally {
      await stack.stop();
    }
    // Why 90 s: its waits add up to 3 × 10 s (caching) + 30 s (the auditor's verdict).
  }, 90_000);

  it('counts nothing stale under a steady stream of writes (in-flight invalidations are not errors)', async () => {
    const stack = await stackReady();
    // A second, fast auditor on the same deployment: more checks in less time, racing the
    // writes on purpose. The invalidator's own auditor runs too.
    const pool = createPool({ connectionString: servers.pg.url, max: 2 });
    const queueRedis = new Redis(servers.redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(stack.env.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
    const registry = new Registry();
    const auditor = new Auditor(
      {
        resourceForKey,
        cacheRedis: redis,
        statsRedis: queueRedis,
        db: createDb(pool),
        queue,
        cachePrefix: stack.env.CACHE_PREFIX,
        slotName: stack.env.SLOT_NAME,
        logger: silentLogger(),
        registry,
      },
      // 20 ms pauses × 10 keys: hundreds of checks while the writes run.
      { intervalMs: 20, keysPerRound: 10 },
    );
    try {
      const ids = Array.from({ length: 12 }, (_, i) => 40 + i);
      for (const id of ids) await cacheIt(stack, `/v1/articles/${id}`);
      await cacheIt(stack, '/v1/articles?limit=10');
      await cacheIt(stack, '/v1/tags');
      auditor.start();
      // Writes interleaved with reads that refill what they invalidated, until the auditors
      // have checked plenty of values, many of them while their invalidation was in flight.
      let round = 0;
      const checked = async () => (await readAuditorTotals(redis, stack.env.CACHE_PREFIX)).checked;
      // Bounded by time, not rounds: the auditors check on a timer, so on a loaded machine a
      // fixed number of write rounds can end before they have checked enough values.
      const deadline = Date.now() + 90_000;
      while ((await checked()) < 300 && Date.now() < deadline) {
        const id = ids[round % ids.length]!;
        await writer.query('update articles set title = $1 where id = $2', [`title ${round}`, id]);
        if (round % 5 === 0)
          await writer.query('update users set name = $1 where id = $2', [`name ${round}`, (round % 9) + 1]);
        await fetch(`${stack.api.url}/v1/articles/${id}`);
        await fetch(`${stack.api.url}/v1/articles?limit=10`);
        round += 1;
      }
      await auditor.stop();
      const totals = await readAuditorTotals(redis, stack.env.CACHE_PREFIX);
      expect(totals.checked).toBeGreaterThanOrEqual(300);
      expect(totals.stale).toBe(0);
      // Some checks did catch a value whose invalidation was still in flight (dozens in a
      // typical run): the race was exercised, and resolved as pending, not stale.
      expect(totals.pending).toBeGreaterThan(0);
      expect(totals.unresolved).toBe(0);
      expect(totals.consistencyRate).toBe(1);
      expect(
        sum(
          await scrape(`http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`),
          'walcache_auditor_stale_total',
        ),
      ).toBe(0);
    } finally {
      await auditor.stop();
      await queue.close();
      queueRedis.disconnect();
      await pool.end();
      await stack.stop();
    }
    // Why 150 s: the write loop alone may run 90 s, after the stack start and 14 reads until
    // HIT; a test timeout below the loop's own deadline would cut it short with no message.
  }, 150_000);
});
