/**
 * Batch lookups (core getMany) hold the fill protocol key by key: a batch whose fill of one
 * value is parked while a writer commits and the invalidation runs never caches that stale
 * value, whatever the other values of the batch do. Interleavings forced with the same
 * barriers the single-fill race tests use; no sleeps.
 */
import { decodeEntry, getMany, invalidateTags, ReadThroughCache, rowTag, tableTag } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { type CompiledResource, type Db, type Params, type Value, warmCache } from '@walcache/resources';
import { type RedisServer, startRedis, waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { articleDetail } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { EventCounter, Parking } from './support.ts';

let servers: Servers;
let pool: pg.Pool;
let db: Db;
let redis: Redis;
let writer: pg.Client;

beforeAll(async () => {
  servers = await startServers({ users: 20, articles: 40, tags: 5, commentsPerArticle: 1 });
  pool = createPool({ connectionString: servers.pg.url, max: 4 });
  db = createDb(pool);
  // As the API's: concurrent commands of one tick share a socket write.
  redis = new Redis(servers.redis.url, { enableAutoPipelining: true });
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

let prefixes = 0;

function setup() {
  const parking = new Parking();
  const events = new EventCounter();
  prefixes += 1;
  const cache = new ReadThroughCache({ redis, db, prefix: `batch${prefixes}`, hooks: parking.hooks, events });
  const batch = articleDetail.batch!;
  let queries = 0;
  const loadMany = (d: Db, ps: readonly Params[]) => {
    queries += 1;
    return batch.loadMany(d, ps);
  };
  const read = (ids: number[]) =>
    getMany(
      cache,
      articleDetail,
      ids.map((id) => ({ id: String(id) })),
      loadMany,
    );
  const cached = async (id: number) => {
    const raw = await redis.getBuffer(cache.keys.value(`article:${id}`));
    return raw ? decodeEntry(raw).body.toString() : null;
  };
  const fresh = async (id: number) => JSON.stringify(await articleDetail.load(db, { id: String(id) }));
  const title = (body: Buffer) => (JSON.parse(body.toString()) as Value).title;
  return { parking, events, cache, read, cached, fresh, title, queries: () => queries };
}

describe('batch fills under the fill protocol', () => {
  it('one value loaded before a commit whose invalidation ran before its fill is never cached', async () => {
    const { parking, cache, read, cached, fresh, title } = setup();
    const parked = parking.park('afterLoad', 'article:5');
    const batch = read([4, 5, 6]);
    await parked.arrived; // the pooled query returned; article 5's fill holds the old row

    await writer.query("update articles set title = 'batch race (a)' where id = 5");
    await invalidateTags(redis, cache.keys, [rowTag('articles', 5), tableTag('articles')]);
    parked.release();
    const results = await batch;

    // The batch's own answer predates the commit (bounded staleness); the cache holds nothing stale.
    expect(title(results[1]!.body)).not.toBe('batch race (a)');
    expect(await cached(5)).toBeNull();
    // The other values, whose fills checked their tags after this invalidation too: their
    // tags (row:articles:4, :6) were not touched, so they are cached and fresh.
    expect(await cached(4)).toBe(await fresh(4));
    expect(await cached(6)).toBe(await fresh(6));
    const again = await read([4, 5, 6]);
    expect(title(again[1]!.body)).toBe('batch race (a)');
    expect(again.map((r) => r.status)).toEqual(['HIT', 'MISS', 'HIT']);
  });

  it("a dependency known only after the load (the author's rename) is never cached stale", async () => {
    const { parking, cache, read, cached } = setup();
    const { rows } = await writer.query<{ author_id: string }>('select author_id from articles where id = 8');
    const authorId = rows[0]!.author_id;
    const parked = parking.park('afterLoad', 'article:8');
    const batch = read([7, 8]);
    await parked.arrived;

    await writer.query("update users set name = 'renamed in a batch' where id = $1", [authorId]);
    await invalidateTags(redis, cache.keys, [rowTag('users', authorId), tableTag('users')]);
    parked.release();
    await batch;

    expect(await cached(8)).toBeNull();
  });

  it('a value invalidated while its fill was parked at the compare-and-set is not written', async () => {
    const { parking, cache, read, cached } = setup();
    const parked = parking.park('beforeCas', 'article:9');
    const batch = read([9, 10]);
    await parked.arrived; // tags registered and checked: only the lease guards the write now

    await writer.query("update articles set title = 'batch race (c)' where id = 9");
    await invalidateTags(redis, cache.keys, [rowTag('articles', 9), tableTag('articles')]);
    parked.release();
    await batch;
    expect(await cached(9)).toBeNull();
  });

  it('the misses are one query; hits are one MGET and no query; order kept; missing as null', async () => {
    const { read, queries, events } = setup();
    const ids = [15, 11, 999_999, 13, 12];
    const first = await read(ids);
    expect(queries()).toBe(1);
    expect(first.map((r) => (r.found ? (JSON.parse(r.body.toString()) as Value).id : null))).toEqual([
      '15',
      '11',
      null,
      '13',
      '12',
    ]);
    const second = await read(ids);
    expect(queries()).toBe(1);
    expect(second.every((r) => r.status === 'HIT')).toBe(true);
    expect(events.outcomes).toEqual({ HIT: 5, MISS: 5, BYPASS: 0 });
  });

  it('Redis unavailable: every value answered from Postgres (BYPASS), still one query', async () => {
    const down = new Redis({
      port: 1,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    down.on('error', () => undefined);
    const events = new EventCounter();
    const cache = new ReadThroughCache({ redis: down, db, prefix: 'batchdown', events });
    let queries = 0;
    const results = await getMany(cache, articleDetail, [{ id: '3' }, { id: '2' }], (d, ps) => {
      queries += 1;
      return articleDetail.batch!.loadMany(d, ps);
    });
    expect(results.map((r) => r.status)).toEqual(['BYPASS', 'BYPASS']);
    expect(results.map((r) => (JSON.parse(r.body.toString()) as Value).id)).toEqual(['3', '2']);
    expect(queries).toBe(1);
    expect(events.redisErrors).toBeGreaterThan(0);
    down.disconnect();
  });
});

describe('batch reads and a cache Redis restored older (the generation guard)', () => {
  let restored: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    restored = await startRedis();
    client = new Redis(restored.url);
    client.on('error', () => {});
  });
  afterAll(async () => {
    client?.disconnect();
    await restored?.stop();
  });

  it('a restart from a snapshot taken before an invalidation: the batch serves nothing it removed', async () => {
    const cache = new ReadThroughCache({ redis: client, db, prefix: `batchgen${++prefixes}` });
    const read = () =>
      getMany(cache, articleDetail, [{ id: '21' }, { id: '22' }], articleDetail.batch!.loadMany);
    await read();
    expect((await read()).map((r) => r.status)).toEqual(['HIT', 'HIT']);
    await client.call('SAVE'); // the snapshot holds both values as they are now
    await writer.query("update articles set title = 'batch after a restore' where id = 21");
    await invalidateTags(client, cache.keys, [rowTag('articles', 21), tableTag('articles')]);
    await restored.kill();
    await restored.startServer(); // loads the snapshot: the old value, the old sequence
    await waitFor(async () => (await client.ping().catch(() => '')) === 'PONG', { timeoutMs: 10_000 });
    expect(await client.exists(cache.keys.value('article:21'))).toBe(1); // restored, stale

    const results = await read();
    expect((JSON.parse(results[0]!.body.toString()) as Value).title).toBe('batch after a restore');
  });
});

describe('warm-ups fill under the fill protocol', () => {
  it('a warm-up whose load of one value raced an invalidation does not cache that value', async () => {
    const { parking, cache, cached, fresh } = setup();
    // The blog declares no warm: the same lookup, warming two ids.
    const warming = Object.create(articleDetail, {
      warm: { value: { what: 'two ids', params: async () => [{ id: '33' }, { id: '34' }] } },
    }) as CompiledResource;
    const parked = parking.park('afterLoad', 'article:33');
    const warm = warmCache(cache, db, [warming]);
    await parked.arrived;
    await writer.query("update articles set title = 'warm race' where id = 33");
    await invalidateTags(redis, cache.keys, [rowTag('articles', 33), tableTag('articles')]);
    parked.release();
    const [report] = await warm;
    expect(report).toMatchObject({ total: 2, loaded: 2, hits: 0, stopped: false });
    expect(await cached(33)).toBeNull();
    expect(await cached(34)).toBe(await fresh(34));
  });
});
