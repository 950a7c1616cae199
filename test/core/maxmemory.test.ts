/**
 * Invariant 5 under a tiny `maxmemory`: the cache Redis on `volatile-lru` evicts cached
 * values (they carry TTLs) but never the sequence, a tag set or a version marker (they have
 * none), so eviction costs hits, never correctness. The queue lives on its own `noeviction`
 * Redis, as documented. Writers and readers run while values are being evicted; afterwards
 * no cached value and no read is stale.
 */

import { isCluster } from '@walcache/core';
import { type RedisServer, startRedis } from '@walcache/testkit';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { articleDetail, userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { type Pipeline, startPipeline } from './pipeline.ts';

const ARTICLES = 300;
const USERS = 30;
/** Why 3 MB: an empty Redis uses about 1 MB; 300 articles of ~8 KB need more than the rest. */
const MAXMEMORY = '3mb';

let servers: Servers;
let cacheRedis: RedisServer;
let p: Pipeline;

beforeAll(async () => {
  servers = await startServers({ users: USERS, articles: ARTICLES, tags: 6, commentsPerArticle: 1 });
  // Pad the bodies before the CDC starts (not part of the test's write stream): ~8 KB values.
  const c = new pg.Client({ connectionString: servers.pg.url });
  await c.connect();
  await c.query("update articles set body = rpad(body, 8000, ' filler')");
  await c.end();
  cacheRedis = await startRedis({ maxmemory: MAXMEMORY, maxmemoryPolicy: 'volatile-lru' });
  p = await startPipeline(servers, {
    overrides: { REDIS_URL: cacheRedis.url, QUEUE_REDIS_URL: servers.redis.url },
    sentinelUser: String(USERS),
  });
});

afterAll(async () => {
  await p?.stop();
  await cacheRedis?.stop();
  await servers?.stop();
});

/** The cache's one Redis server: this test gives it its own, never a cluster. */
const cacheNode = (): Redis => {
  if (isCluster(p.redis)) throw new Error('maxmemory.test runs its cache on one Redis server');
  return p.redis;
};

const stat = async (section: string, field: string) => {
  const info = await cacheNode().info(section);
  return Number(new RegExp(`${field}:(\\d+)`).exec(info)?.[1] ?? Number.NaN);
};

it('evicts values under memory pressure and never serves a stale one', async () => {
  const writer = new pg.Client({ connectionString: p.env.DATABASE_URL });
  await writer.connect();
  let writes = 0;
  let reads = 0;
  try {
    for (let round = 0; round < 3; round++) {
      // Change a slice of the articles and a few authors, then read every article (more than
      // fits) while those invalidations are still in flight: fills race them under eviction.
      for (let k = 0; k < 40; k++) {
        const id = 1 + ((round * 97 + k * 7) % ARTICLES);
        await writer.query('update articles set title = $1 where id = $2', [`round ${round} ${k}`, id]);
        if (k % 8 === 0)
          await writer.query('update users set name = $1 where id = $2', [
            `user ${round} ${k}`,
            1 + (k % (USERS - 1)),
          ]);
        writes += k % 8 === 0 ? 2 : 1;
        // Read the article right after its write: a fill races its own invalidation.
        await p.cache.get(articleDetail, { id: String(id) });
        reads += 1;
      }
      for (let id = 1; id <= ARTICLES; id++) {
        await p.cache.get(articleDetail, { id: String(id) });
        reads += 1;
      }
    }
  } finally {
    await writer.end();
  }
  await p.drain();

  const evicted = await stat('stats', 'evicted_keys');
  // What the non-evictable index costs: tag-set members, including those of evicted values.
  let tagSets = 0;
  let tagMembers = 0;
  let tagSetBytes = 0;
  let liveValues = 0;
  let cursor = '0';
  do {
    const [next, batch] = await cacheNode().scan(cursor, 'MATCH', `${p.cache.keys.prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const k of batch) {
      if (k.startsWith(`${p.cache.keys.prefix}:tag:`)) {
        tagSets += 1;
        tagMembers += await cacheNode().scard(k);
        tagSetBytes += Number(await cacheNode().memory('USAGE', k));
      } else if (k.endsWith('}')) liveValues += 1;
    }
  } while (cursor !== '0');
  let staleCached = 0;
  let staleReads = 0;
  let cached = 0;
  // First what survived in Redis (no reads: a fill would evict the next value), then reads.
  for (let id = 1; id <= ARTICLES; id++) {
    const held = await p.cached(`article:${id}`);
    if (held === null) continue;
    cached += 1;
    if (held !== JSON.stringify(await articleDetail.load(p.db, { id: String(id) }))) staleCached += 1;
  }
  for (let id = 1; id <= ARTICLES; id++) {
    const fresh = JSON.stringify(await articleDetail.load(p.db, { id: String(id) }));
    if ((await p.cache.get(articleDetail, { id: String(id) })).body.toString() !== fresh) staleReads += 1;
  }
  for (let id = 1; id <= USERS; id++) {
    const fresh = JSON.stringify(await userProfile.load(p.db, { id: String(id) }));
    if ((await p.cache.get(userProfile, { id: String(id) })).body.toString() !== fresh) staleReads += 1;
  }
  // The protocol's own keys survived: the sequence, and every marker still indexed.
  const keys = p.cache.keys;
  const markersIndexed = await cacheNode().zcard(keys.tagVersionExpiry);
  let markersPresent = 0;
  for (const tag of await cacheNode().zrange(keys.tagVersionExpiry, 0, -1))
    markersPresent += await cacheNode().exists(keys.tagVersion(tag));
  console.log(
    JSON.stringify({
      maxmemory: MAXMEMORY,
      reads,
      writes,
      evictedKeys: evicted,
      usedMemory: await stat('memory', 'used_memory'),
      liveValuesAfterDrain: liveValues,
      tagSets,
      tagMembers,
      tagSetBytes,
      valuesCachedAtEnd: cached,
      staleCached,
      staleReads,
      markersIndexed,
      markersPresent,
      fillRedisErrors: p.events.redisErrors,
    }),
  );
  expect(evicted).toBeGreaterThan(0);
  expect(cached).toBeGreaterThan(0);
  expect(staleCached).toBe(0);
  expect(staleReads).toBe(0);
  expect(Number(await cacheNode().get(keys.seq))).toBeGreaterThan(0);
  expect(markersPresent).toBe(markersIndexed);
});
