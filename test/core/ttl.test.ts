/**
 * TTLs as Redis applies them: values get their resource's TTL shortened by up to the jitter
 * fraction (keys filled together do not expire together), a cached "not found" gets the short
 * negative TTL, and the protocol's own keys (sequence, tag sets, markers) get none, which is
 * what keeps them out of `volatile-lru` eviction.
 */
import { invalidateTags, ReadThroughCache, timings } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { articleDetail, ttl } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';

let servers: Servers;
let db: Db;
let redis: Redis;
let cache: ReadThroughCache<Db>;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 60, tags: 3, commentsPerArticle: 1 });
  db = createDb(createPool({ connectionString: servers.pg.url, max: 4 }));
  redis = new Redis(servers.redis.url);
  cache = new ReadThroughCache({ redis, db, prefix: 'ttl' });
});

afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

it('values get a jittered TTL, "not found" the negative TTL, protocol keys none', async () => {
  const ttls: number[] = [];
  for (let id = 1; id <= 50; id++) {
    await cache.get(articleDetail, { id: String(id) });
    ttls.push(await redis.pttl(cache.keys.value(`article:${id}`)));
  }
  for (const t of ttls) {
    expect(t).toBeLessThanOrEqual(ttl.entity * 1000);
    expect(t).toBeGreaterThan(ttl.entity * 1000 * (1 - timings.ttlJitter) - 5_000);
  }
  // Spread, not one expiry instant: 50 fills within a second land on many distinct seconds.
  expect(new Set(ttls.map((t) => Math.round(t / 1000))).size).toBeGreaterThan(25);

  const missing = await cache.get(articleDetail, { id: '999999' });
  expect(missing.found).toBe(false);
  const negative = await redis.pttl(cache.keys.value('article:999999'));
  expect(negative).toBeGreaterThan(0);
  expect(negative).toBeLessThanOrEqual(ttl.negative * 1000);
  expect((await cache.get(articleDetail, { id: '999999' })).status).toBe('HIT');

  await invalidateTags(redis, cache.keys, ['row:users:1']);
  expect(await redis.pttl(cache.keys.seq)).toBe(-1);
  expect(await redis.pttl(cache.keys.tagSet('row:articles:1'))).toBe(-1);
  expect(await redis.pttl(cache.keys.tagVersion('row:users:1'))).toBe(-1);
  expect(await redis.pttl(cache.keys.tagVersionExpiry)).toBe(-1);
});

it("deployment-wide caps (CACHE_TTL_SECONDS, NEGATIVE_TTL_SECONDS) shorten the resources' TTLs", async () => {
  const capped = new ReadThroughCache({
    redis,
    db,
    prefix: 'ttlcap',
    maxTtlSeconds: 120,
    maxNegativeTtlSeconds: 5,
  });
  await capped.get(articleDetail, { id: '1' });
  await capped.get(articleDetail, { id: '999999' });
  const value = await redis.pttl(capped.keys.value('article:1'));
  const negative = await redis.pttl(capped.keys.value('article:999999'));
  expect(value).toBeGreaterThan(0);
  expect(value).toBeLessThanOrEqual(120_000);
  expect(negative).toBeGreaterThan(0);
  expect(negative).toBeLessThanOrEqual(5_000);
});

it('version markers are deleted once their window has passed, by a later invalidation', async () => {
  // Windows on Redis' clock: one already over (1 ms, and we wait past it) and one that is not.
  const tags = Array.from({ length: 1500 }, (_, i) => `row:prune:${i}`);
  await invalidateTags(redis, cache.keys, tags, { windowMs: 1 });
  await invalidateTags(redis, cache.keys, ['row:kept:1'], { windowMs: 3_600_000 });
  await new Promise((r) => setTimeout(r, 20));
  // By the next invalidation all 1 500 are pruned (more than one prune batch); the others stay.
  await invalidateTags(redis, cache.keys, ['row:other:2']);
  expect(
    await redis.exists(cache.keys.tagVersion('row:prune:0'), cache.keys.tagVersion('row:prune:1499')),
  ).toBe(0);
  expect(await redis.exists(cache.keys.tagVersion('row:kept:1'))).toBe(1);
  expect(await redis.exists(cache.keys.tagVersion('row:other:2'))).toBe(1);
});
