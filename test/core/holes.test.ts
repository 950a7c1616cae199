/**
 * The consistency holes of issue 11, at the cache engine's level: each test forces one
 * interleaving (barriers at the fill's hooks, real server actions: a restart, an ACL change,
 * a full `maxmemory`) and checks that no stale value is left cached or handed out.
 */
import {
  CircuitBreaker,
  decodeEntry,
  flushNamespace,
  invalidateTags,
  ReadThroughCache,
  type Resource,
  rowTag,
} from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { type RedisServer, startRedis, waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { userProfile } from '../support/blog.ts';
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

describe('item 5: a cache Redis restored older', () => {
  let primary: RedisServer;
  let replica: RedisServer | undefined;
  let client: Redis;
  beforeAll(async () => {
    primary = await startRedis();
    client = new Redis(primary.url);
    client.on('error', () => {});
  });
  afterAll(async () => {
    client?.disconnect();
    await replica?.stop();
    await primary?.stop();
  });

  it('a restart from an RDB snapshot taken before an invalidation serves nothing the invalidation removed', async () => {
    const flushes: number[] = [];
    const cache = new ReadThroughCache({
      redis: client,
      db,
      prefix: `hole5-${++prefixes}`,
      events: { generationFlushed: (deleted) => flushes.push(deleted) },
    });
    const params = { id: '7' };
    expect((await cache.get(userProfile, params)).status).toBe('MISS');
    expect((await cache.get(userProfile, params)).status).toBe('HIT');
    flushes.length = 0; // the namespace's first use recorded its generation
    await client.call('SAVE'); // the snapshot holds the value as it is now
    await writer.query('update users set name = $1 where id = 7', ['renamed (item 5, rdb)']);
    await invalidateTags(client, cache.keys, [rowTag('users', 7)]); // completed
    await primary.kill();
    await primary.startServer(); // loads dump.rdb: the old value, the old seq
    await waitFor(async () => (await client.ping().catch(() => '')) === 'PONG', { timeoutMs: 10_000 });
    expect(await cachedBody(client, cache.keys.value('user:7'))).not.toBeNull(); // restored, stale

    const answer = await cache.get(userProfile, params);
    expect(answer.body.toString()).toBe(await fresh(userProfile, params));
    expect(flushes).toHaveLength(1);
    const held = await cachedBody(client, cache.keys.value('user:7'));
    expect(held === null || held === (await fresh(userProfile, params))).toBe(true);
    // The same server again (a reconnect, no restart): no second flush.
    await client.call('CLIENT', 'KILL', 'TYPE', 'normal');
    await waitFor(async () => (await client.ping().catch(() => '')) === 'PONG', { timeoutMs: 10_000 });
    await cache.get(userProfile, params);
    expect(flushes).toHaveLength(1);
  });

  it('a replica promoted after its master died, lagging behind an invalidation, serves nothing it removed', async () => {
    const prefix = `hole5-${++prefixes}`;
    const onPrimary = new ReadThroughCache({ redis: client, db, prefix });
    const params = { id: '8' };
    await onPrimary.get(userProfile, params);
    replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
    const replicaClient = new Redis(replica.url);
    try {
      await waitFor(async () => /master_link_status:up/.test(await replicaClient.info('replication')), {
        timeoutMs: 10_000,
      });
      await waitFor(async () => (await replicaClient.exists(onPrimary.keys.value('user:8'))) === 1, {
        timeoutMs: 10_000,
      });
      // The replica falls behind (cut off), then the primary runs an invalidation and dies.
      await replicaClient.call('REPLICAOF', 'NO', 'ONE');
      await writer.query('update users set name = $1 where id = 8', ['renamed (item 5, failover)']);
      await invalidateTags(client, onPrimary.keys, [rowTag('users', 8)]);
      await primary.kill();
      // A process that comes up on the promoted replica.
      const onReplica = new ReadThroughCache({ redis: replicaClient, db, prefix });
      const answer = await onReplica.get(userProfile, params);
      expect(answer.body.toString()).toBe(await fresh(userProfile, params));
      expect(answer.status).toBe('MISS');
    } finally {
      replicaClient.disconnect();
      await primary.startServer();
    }
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
  // An invalidator whose cleanup is refused part-way (a real server refusal, like a crash or
  // a failover between the commands): its user may not UNLINK at all, or may unlink the tag
  // sets and leases but not the values. The second holds only if the sets go last.
  it.each([
    ['may not UNLINK', (_prefix: string) => ['~*', '-unlink']],
    [
      'may not touch the values',
      (prefix: string) => [`~${prefix}:seq`, `~${prefix}:tag*`, `~${prefix}:{*}:lease`],
    ],
  ])(
    "a retried invalidation still reaches the keys when an attempt's cleanup only half landed (%s)",
    async (_, refusal) => {
      const prefix = `hole6-${++prefixes}`;
      const cache = new ReadThroughCache({ redis, db, prefix });
      const params = { id: '6' };
      await cache.get(userProfile, params);
      const valueKey = cache.keys.value('user:6');
      expect(await redis.exists(valueKey)).toBe(1);
      await writer.query('update users set name = $1 where id = 6', [`renamed (${prefix})`]);
      await redis.call('ACL', 'SETUSER', prefix, 'on', `>${prefix}`, '&*', '+@all', ...refusal(prefix));
      const invalidator = new Redis(servers.redis.url, { username: prefix, password: prefix });
      try {
        await expect(invalidateTags(invalidator, cache.keys, [rowTag('users', 6)])).rejects.toThrow();
        await redis.call('ACL', 'SETUSER', prefix, 'allkeys', '+unlink');
        await invalidateTags(invalidator, cache.keys, [rowTag('users', 6)]); // the job's retry
      } finally {
        invalidator.disconnect();
        await redis.call('ACL', 'DELUSER', prefix);
      }
      expect(await redis.exists(valueKey)).toBe(0);
      expect((await cache.get(userProfile, params)).body.toString()).toBe(await fresh(userProfile, params));
    },
  );
});

describe('item 10: stuck states', () => {
  let loadingRedis: RedisServer;
  beforeAll(async () => {
    // DEBUG RELOAD puts a live server into its loading state (-LOADING to every client).
    loadingRedis = await startRedis({ extraArgs: ['--enable-debug-command', 'yes'] });
  });
  afterAll(async () => {
    await loadingRedis?.stop();
  });

  it('the breaker leaves half-open when its probe is answered -LOADING', async () => {
    let clock = 0;
    const breaker = new CircuitBreaker({ now: () => clock });
    // Fail fast while the server is down, so requests open the breaker instead of queueing.
    const client = new Redis(loadingRedis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
    client.on('error', () => {});
    const admin = new Redis(loadingRedis.url);
    admin.on('error', () => {});
    const cache = new ReadThroughCache({ redis: client, db, prefix: `hole10-${++prefixes}`, breaker });
    try {
      await waitFor(() => client.status === 'ready', { what: 'the client to connect' });
      await loadingRedis.kill();
      for (let i = 0; i < 3; i++) expect((await cache.get(userProfile, { id: '7' })).status).toBe('BYPASS');
      expect(breaker.state).toBe('open');
      await loadingRedis.startServer();
      await waitFor(() => client.status === 'ready', { timeoutMs: 10_000, what: 'the client to reconnect' });
      await waitFor(() => admin.status === 'ready', { timeoutMs: 10_000, what: 'the admin to reconnect' });
      // Enough data, loaded slowly, to hold the server in its loading state for a while.
      await admin.eval("for i=1,3000 do redis.call('SET','pad:'..i,string.rep('x',100)) end return 1", 0);
      await admin.config('SET', 'key-load-delay', '1000');
      await admin.config('SET', 'loading-process-events-interval-bytes', '1024');
      const reload = admin.call('DEBUG', 'RELOAD');
      // No ready check: ioredis would hold its commands until the loading ends.
      const probe = new Redis(loadingRedis.url, { enableReadyCheck: false });
      try {
        await waitFor(
          async () => (await probe.get('pad:1').catch((e: Error) => e.message)) !== 'x'.repeat(100),
          {
            what: 'the server to be loading',
          },
        );
        expect(await probe.get('pad:1').catch((e: Error) => e.message)).toMatch(/LOADING/);
        clock += 60_000; // the cool-down passed: the next request probes, and meets -LOADING
        expect((await cache.get(userProfile, { id: '7' })).status).toBe('BYPASS');
        await reload;
        await admin.config('SET', 'key-load-delay', '0');
      } finally {
        probe.disconnect();
      }
      // Redis is back: after the next cool-down a probe closes the breaker again.
      clock += 60_000;
      expect((await cache.get(userProfile, { id: '7' })).status).not.toBe('BYPASS');
      expect(breaker.state).toBe('closed');
    } finally {
      client.disconnect();
      admin.disconnect();
    }
  });

  it("marker windows are judged by Redis' clock: a process whose clock runs ahead prunes nothing early", async () => {
    const parking = new Parking();
    const prefix = `hole10c-${++prefixes}`;
    const cache = new ReadThroughCache({ redis, db, prefix, hooks: parking.hooks });
    const params = { id: '5' };
    const loaded = parking.park('afterLoad', 'user:5');
    const reader = cache.get(userProfile, params);
    await loaded.arrived;
    await writer.query('update users set name = $1 where id = 5', ['renamed (item 10)']);
    await invalidateTags(redis, cache.keys, [rowTag('users', 5)]);
    // Another invalidator, its clock a minute ahead, runs an unrelated job (and its prune).
    const realNow = Date.now.bind(Date);
    const skew = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 60_000);
    try {
      await invalidateTags(redis, cache.keys, [rowTag('users', 29)]);
    } finally {
      skew.mockRestore();
    }
    loaded.release();
    await reader;
    const held = await cachedBody(redis, cache.keys.value('user:5'));
    expect(held === null || held === (await fresh(userProfile, params))).toBe(true);
  });
});

describe('item 2: a cache Redis at maxmemory (noeviction)', () => {
  let full: RedisServer;
  beforeAll(async () => {
    full = await startRedis({ maxmemoryPolicy: 'noeviction' });
  });
  afterAll(async () => {
    await full?.stop();
  });

  it('an invalidation whose marker write is refused (OOM) still deletes the values, then fails', async () => {
    const client = new Redis(full.url);
    try {
      const cache = new ReadThroughCache({ redis: client, db, prefix: `hole2-${++prefixes}` });
      const params = { id: '9' };
      expect((await cache.get(userProfile, params)).status).toBe('MISS');
      expect(await client.exists(cache.keys.value('user:9'))).toBe(1);
      // Full: 2 MB of other data, then maxmemory below what is used. Every write command is
      // refused from here; reads, DEL/UNLINK/SREM are not.
      await client.set('pad', 'x'.repeat(2 * 1024 * 1024));
      await client.config('SET', 'maxmemory', '1mb');
      await expect(client.incr(cache.keys.seq)).rejects.toThrow(/OOM/);
      await writer.query('update users set name = $1 where id = 9', ['renamed (item 2)']);
      await expect(invalidateTags(client, cache.keys, [rowTag('users', 9)])).rejects.toThrow(/OOM/);
      // The hit would have been stale: it must be gone even though no marker could be written.
      expect(await client.exists(cache.keys.value('user:9'))).toBe(0);
    } finally {
      client.disconnect();
    }
  });
});

describe('item 4: a namespace flush', () => {
  it('leaves no value whose fill began before it, even one written during its value pass', async () => {
    const parking = new Parking();
    const prefix = `hole4-${++prefixes}`;
    const cache = new ReadThroughCache({ redis, db, prefix, hooks: parking.hooks });
    await cache.verifyGeneration(); // its first-use flush must not take the padding with it
    // Enough other values that each pass takes several SCAN steps.
    const pad = redis.pipeline();
    for (let i = 0; i < 5000; i++) pad.set(cache.keys.value(`pad:${i}`), 'x', 'PX', 600_000);
    await pad.exec();
    // 200 fills (ids without a row: "not found" is cached too) loaded before the flush,
    // parked just before their compare-and-set.
    const ids = Array.from({ length: 200 }, (_, i) => String(5000 + i));
    const parked = ids.map((id) => parking.park('beforeCas', `user:${id}`));
    const readers = ids.map((id) => cache.get(userProfile, { id }));
    await Promise.all(parked.map((b) => b.arrived));
    let released = false;
    await flushNamespace(redis, cache.keys, undefined, async (pass) => {
      // In the middle of the value pass: every parked fill writes now.
      if (pass !== 1 || released) return;
      released = true;
      for (const b of parked) b.release();
      await Promise.all(readers);
    });
    expect(released).toBe(true);
    const left = await redis.exists(...ids.map((id) => cache.keys.value(`user:${id}`)));
    expect(left).toBe(0);
  });
});
