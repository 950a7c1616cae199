/**
 * Issue 11, item 3: the tag index is bounded. Every value registers a member under each of
 * its tags, and nothing but an invalidation of that tag removed it: a request for an id that
 * does not exist left its members (the id's row tag, the tables' epoch tags) for good after
 * its negative entry expired. The sweeper removes the members whose value is gone, and never
 * one whose fill is still in flight.
 */
import { invalidateTags, ReadThroughCache, rowTag, sweepTagIndex } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { createLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TagSweeper } from '../../apps/invalidator/src/sweeper.ts';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { Parking } from './support.ts';

/** Random ids requested in all (WALCACHE_TAG_INDEX_REQUESTS=100000 for the figure, about a minute). */
const REQUESTS = Number(process.env.WALCACHE_TAG_INDEX_REQUESTS ?? 20_000);
const ROUNDS = 5;
const CONCURRENCY = 64;

let servers: Servers;
let pool: pg.Pool;
let db: Db;
let redis: Redis;

beforeAll(async () => {
  servers = await startServers({ users: 20, articles: 10, tags: 3, commentsPerArticle: 1 });
  pool = createPool({ connectionString: servers.pg.url, max: 8 });
  db = createDb(pool);
  redis = new Redis(servers.redis.url);
});

afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

/** Members in every tag set of a prefix. */
async function indexMembers(prefix: string): Promise<number> {
  let total = 0;
  let cursor = '0';
  do {
    const [next, sets] = await redis.scan(cursor, 'MATCH', `${prefix}:tag:*`, 'COUNT', 1000);
    cursor = next;
    for (const set of sets) total += await redis.scard(set);
  } while (cursor !== '0');
  return total;
}

/** Resolves once every cached value of a prefix has expired (their members are then dead). */
async function valuesExpired(prefix: string): Promise<void> {
  await waitFor(
    async () => {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:{*`, 'COUNT', 10_000);
        if (keys.length > 0) return false;
        cursor = next;
      } while (cursor !== '0');
      return true;
    },
    { timeoutMs: 30_000, what: `the cached values of ${prefix} to expire` },
  );
}

async function usedMemory(): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
}

describe('the tag index under requests for ids that do not exist', () => {
  it(`stays flat over ${REQUESTS} random-id requests: the sweeper removes the members of expired values`, async () => {
    const prefix = 'tag-index';
    // Negative entries live one second here (30 s by default), so rounds expire them quickly.
    const cache = new ReadThroughCache({ redis, db, prefix, maxNegativeTtlSeconds: 1 });
    await cache.verifyGeneration();
    const before = await usedMemory();
    const perRound = Math.ceil(REQUESTS / ROUNDS);
    const rounds: { members: number; memory: number; removed: number }[] = [];
    let nextId = 1_000_000;
    for (let round = 0; round < ROUNDS; round++) {
      const ids = Array.from({ length: perRound }, () => nextId++);
      let i = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (i < ids.length) {
            const id = ids[i++];
            const answer = await cache.get(userProfile, { id: String(id) });
            if (answer.found) throw new Error(`id ${id} exists`);
          }
        }),
      );
      if (round === 0) expect(await indexMembers(prefix)).toBeGreaterThanOrEqual(perRound); // the leak's size
      await valuesExpired(prefix); // the round's negative entries
      const { removed } = await sweepTagIndex(redis, cache.keys);
      rounds.push({ members: await indexMembers(prefix), memory: await usedMemory(), removed });
    }
    console.log(
      `tag index over ${REQUESTS} random-id requests (${ROUNDS} rounds): ` +
        rounds.map((r) => `${r.members} members, +${((r.memory - before) / 1024).toFixed(0)} KiB`).join('; '),
    );
    // Every round's members are removed: nothing accumulates from one round to the next.
    for (const r of rounds) {
      expect(r.members).toBe(0);
      expect(r.removed).toBeGreaterThanOrEqual(perRound);
    }
    // Unswept, each request keeps about 550 bytes; swept, memory ends where it began (± 2 MiB
    // of allocator noise, against the ~50 MiB the unswept index would hold at 100 000).
    const last = rounds.at(-1)?.memory ?? 0;
    expect(last - before).toBeLessThan(2 * 1024 * 1024);
  }, 600_000);

  it('keeps the member of a fill in flight (its lease stands): the invalidation still finds the value', async () => {
    const parking = new Parking();
    const prefix = 'tag-index-race';
    const cache = new ReadThroughCache({ redis, db, prefix, hooks: parking.hooks });
    const params = { id: '5' };
    const parked = parking.park('beforeCas', 'user:5');
    const reader = cache.get(userProfile, params);
    await parked.arrived; // registered under its tags, value not written yet
    await sweepTagIndex(redis, cache.keys);
    parked.release();
    await reader;
    const valueKey = cache.keys.value('user:5');
    expect(await redis.exists(valueKey)).toBe(1);
    const writer = new pg.Client({ connectionString: servers.pg.url });
    await writer.connect();
    try {
      await writer.query('update users set name = $1 where id = 5', ['renamed (tag index)']);
    } finally {
      await writer.end();
    }
    await invalidateTags(redis, cache.keys, [rowTag('users', 5)]);
    expect(await redis.exists(valueKey)).toBe(0);
  });

  it('one invalidator sweeps at a time: a second one skips the round while the first holds the lock', async () => {
    const prefix = 'tag-index-lock';
    const cache = new ReadThroughCache({ redis, db, prefix, maxNegativeTtlSeconds: 1 });
    await cache.get(userProfile, { id: '900001' });
    const counted = { sweeps: 0, removed: 0 };
    const metrics = {
      sweeps: {
        inc: () => {
          counted.sweeps++;
        },
      },
      membersRemoved: {
        inc: (n: number) => {
          counted.removed += n;
        },
      },
    };
    const logger = createLogger('invalidator', { level: 'silent' });
    const first = new TagSweeper(redis, cache.keys, logger, metrics, 60_000);
    const second = new TagSweeper(redis, cache.keys, logger, metrics, 60_000);
    await redis.set(cache.keys.sweepLock, 'held by another invalidator', 'PX', 60_000);
    expect(await second.sweepOnce()).toBeUndefined();
    await redis.del(cache.keys.sweepLock);
    await valuesExpired(prefix);
    const swept = await first.sweepOnce();
    expect(swept?.removed).toBeGreaterThan(0);
    expect(counted).toEqual({ sweeps: 1, removed: swept?.removed });
    expect(await redis.exists(cache.keys.sweepLock)).toBe(0);
  });
});
