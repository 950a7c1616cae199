/**
 * The consistency holes of issue 11, at the cache engine's level: each test forces one
 * interleaving (barriers at the fill's hooks, real server actions: a restart, an ACL change,
 * a full `maxmemory`) and checks that no stale value is left cached or handed out.
 */
import { decodeEntry, invalidateTags, ReadThroughCache, type Resource, rowTag } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { type Db, userProfile } from '@walcache/resources';
import { type RedisServer, startRedis } from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Servers, startServers } from '../support/stack.ts';
import { Parking } from './support.ts';

let servers: Servers;
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let writer: pg.Client;
let prefixes = 0;

beforeAll(async () => {
  servers = await startServers({ users: 30, articles: 10, tags: 3, commentsPerArticle: 1 });
  pool = createPool({ connectionString: servers.pg.url, max: 4 });
  db = createDb(pool);
  redis = new Redis(servers.redis.url);
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

const fresh = async <P, V>(resource: Resource<Db, P, V>, params: P) =>
  JSON.stringify(await resource.load(db, params));

async function cachedBody(client: Redis, valueKey: string): Promise<string | null> {
  const raw = await client.getBuffer(valueKey);
  return raw ? decodeEntry(raw).body.toString() : null;
}

describe('item 7: the cache Redis restarts empty in the middle of a fill', () => {
  let cacheRedis: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    cacheRedis = await startRedis();
    client = new Redis(cacheRedis.url);
    client.on('error', () => {});
  });
  afterAll(async () => {
    client?.disconnect();
    await cacheRedis?.stop();
  });

  it('a fill that began before the restart cannot cache the row it loaded before the commit', async () => {
    const parking = new Parking();
    const prefix = `hole7-${++prefixes}`;
    const cache = new ReadThroughCache({ redis: client, db, prefix, hooks: parking.hooks });
    // Some history: the sequence is at 5 before the restart.
    for (let i = 0; i < 5; i++) await invalidateTags(client, cache.keys, [rowTag('users', 99)]);
    const params = { id: '3' };
    const between = parking.park('withinStep1', 'user:3');
    const loaded = parking.park('afterLoad', 'user:3');
    const reader = cache.get(userProfile, params);
    await between.arrived; // the first read of step 1 is done
    await cacheRedis.kill();
    await cacheRedis.startServer(); // empty: no sequence, no lease
    between.release();
    await loaded.arrived; // the old row is loaded
    await writer.query('update users set name = $1 where id = 3', ['renamed (item 7)']);
    await invalidateTags(client, cache.keys, [rowTag('users', 3)]); // seq 1 on the empty Redis
    loaded.release();
    await reader;

    const held = await cachedBody(client, cache.keys.value('user:3'));
    expect(held === null || held === (await fresh(userProfile, params))).toBe(true);
  });
});

describe('item 8: in-process single-flight', () => {
  it('a request that starts after an invalidation completed is not handed a value loaded before it', async () => {
    const parking = new Parking();
    const prefix = `hole8-${++prefixes}`;
    const cache = new ReadThroughCache({ redis, db, prefix, hooks: parking.hooks });
    const params = { id: '4' };
    const loaded = parking.park('afterLoad', 'user:4');
    const first = cache.get(userProfile, params);
    await loaded.arrived; // the first request holds the old row
    await writer.query('update users set name = $1 where id = 4', ['renamed (item 8)']);
    await invalidateTags(redis, cache.keys, [rowTag('users', 4)]); // completed
    // A second request, after the invalidation: it misses and finds the first fill in flight.
    const joined = parking.park('joined', 'user:4');
    const second = cache.get(userProfile, params);
    await joined.arrived;
    joined.release();
    loaded.release();
    await first; // its own answer predates the commit: bounded staleness, allowed
    expect((await second).body.toString()).toBe(await fresh(userProfile, params));
  });
});

describe('item 6: half-applied cleanup', () => {
  it("a retried invalidation still reaches the keys when an attempt's cleanup only half landed", async () => {
    const prefix = `hole6-${++prefixes}`;
    const cache = new ReadThroughCache({ redis, db, prefix });
    const params = { id: '6' };
    await cache.get(userProfile, params);
    const valueKey = cache.keys.value('user:6');
    expect(await redis.exists(valueKey)).toBe(1);
    await writer.query('update users set name = $1 where id = 6', ['renamed (item 6)']);
    // An invalidator whose cleanup fails after its SREMs (a real server refusal, like a
    // crash or a failover between the commands): its user may not UNLINK.
    await redis.call('ACL', 'SETUSER', 'hole6', 'on', '>hole6', '~*', '&*', '+@all', '-unlink');
    const invalidator = new Redis(servers.redis.url, { username: 'hole6', password: 'hole6' });
    try {
      await expect(invalidateTags(invalidator, cache.keys, [rowTag('users', 6)])).rejects.toThrow();
      await redis.call('ACL', 'SETUSER', 'hole6', '+unlink');
      await invalidateTags(invalidator, cache.keys, [rowTag('users', 6)]); // the job's retry
    } finally {
      invalidator.disconnect();
      await redis.call('ACL', 'DELUSER', 'hole6');
    }
    expect(await redis.exists(valueKey)).toBe(0);
    expect((await cache.get(userProfile, params)).body.toString()).toBe(await fresh(userProfile, params));
  });
});
