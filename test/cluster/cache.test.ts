/**
 * The cache protocol on a Redis Cluster (REDIS_URL=redis+cluster://…): the fill race
 * contract of test/core/races.test.ts run unchanged here, then what only a cluster has —
 * a cleanup journal instead of one transaction, a three-step sweeper, a generation per
 * master. One cluster and one Postgres for the whole file.
 */
import {
  decodeEntry,
  invalidateTags,
  keyspace,
  ReadThroughCache,
  rowTag,
  sweepTagIndex,
  type Tag,
  tableTag,
} from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { type RedisCluster, startRedisCluster, waitFor } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFillRaces, type RaceWorld } from '../core/fill-races.ts';
import { EventCounter, Parking } from '../core/support.ts';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';

let servers: Servers;
let cluster: RedisCluster;
let redis: Cluster;
let db: Db;
let writer: pg.Client;

beforeAll(async () => {
  [servers, cluster] = await Promise.all([
    startServers({ users: 30, articles: 40, tags: 5, commentsPerArticle: 1 }),
    startRedisCluster(),
  ]);
  db = createDb(createPool({ connectionString: servers.pg.url, max: 4 }));
  redis = new Cluster(cluster.seeds);
  // Ready (slot map loaded) before any test: a cache checks the generation of every master.
  await redis.ping();
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
});
afterAll(async () => {
  await writer?.end();
  redis?.disconnect();
  await db?.destroy();
  await Promise.allSettled([cluster?.stop(), servers?.stop()]);
});

describeFillRaces(
  'a Redis Cluster',
  async (): Promise<RaceWorld> => ({ redis, db, writer, stop: async () => {} }),
);

let namespaces = 0;
function setup() {
  namespaces += 1;
  const parking = new Parking();
  const events = new EventCounter();
  const prefix = `cl${namespaces}`;
  const cache = new ReadThroughCache({ redis, db, prefix, hooks: parking.hooks, events, leaseWaitMs: 5_000 });
  const cached = async (key: string) => {
    const raw = await redis.getBuffer(cache.keys.value(key));
    return raw ? decodeEntry(raw).body.toString() : null;
  };
  const fresh = async (id: string) => JSON.stringify(await userProfile.load(db, { id }));
  return { parking, events, cache, keys: cache.keys, cached, fresh };
}

const userTags = (id: number): Tag[] => [rowTag('users', id), tableTag('users')];

describe('keys on a Redis Cluster', () => {
  it('markers and their expiry index share one slot; the tag sets of one value spread over masters', async () => {
    const keys = keyspace('clkeys');
    const markers = keys.markerKeys(true);
    const slot = (key: string) => redis.cluster('KEYSLOT', key);
    const indexSlot = await slot(markers.expiry);
    for (const tag of ['row:users:1', 'col:comments:article_id:7', 'table:{odd}'])
      expect(await slot(markers.version(tag))).toBe(indexSlot);
    // One server keeps the names it always had: an upgrade keeps its markers.
    expect(keys.markerKeys(false)).toMatchObject({ expiry: keys.tagVersionExpiry });
    expect(keys.markerKeys(false).version('row:users:1')).toBe(keys.tagVersion('row:users:1'));
    const { cache } = setup();
    await cache.get(userProfile, { id: '3' });
    const owners = new Set<number>();
    for (const node of redis.nodes('master'))
      for (const key of await node.keys(`${cache.keys.prefix}:tag:*`))
        owners.add((await cluster.masterFor(key)).port);
    // So the fill's SADDs really are per slot here, not one node's pipeline.
    expect(owners.size).toBeGreaterThan(1);
  });
});

describe('invalidation cleanup on a Redis Cluster', () => {
  it('an attempt that stops after its SREMs leaves a journal: the retry still deletes the value', async () => {
    const { cache, keys, cached, fresh } = setup();
    await cache.get(userProfile, { id: '13' });
    expect(await cached('user:13')).not.toBeNull();
    await writer.query(`update users set name = 'journalled' where id = 13`);

    // Attempt 1: markers, journal, every SREM — then the worker dies (a crash, a timeout).
    const died = new Error('the worker died after its SREMs');
    await expect(
      invalidateTags(redis, keys, userTags(13), {
        journalId: 'job-13',
        afterSrem: () => {
          throw died;
        },
      }),
    ).rejects.toBe(died);
    // The tag sets no longer name the value, which is still cached: only the journal knows it.
    expect(await redis.sismember(keys.tagSet(rowTag('users', 13)), keys.value('user:13'))).toBe(0);
    expect(await cached('user:13')).not.toBeNull();
    expect(await redis.smembers(keys.journal('job-13'))).toContain(keys.value('user:13'));

    // The retry (same job id) reads the journal as well as the now empty tag sets.
    const retry = await invalidateTags(redis, keys, userTags(13), { journalId: 'job-13' });
    expect(retry.keys).toContain('user:13');
    expect(await cached('user:13')).toBeNull();
    expect(await redis.exists(keys.journal('job-13'))).toBe(0);
    expect((await cache.get(userProfile, { id: '13' })).body.toString()).toBe(await fresh('13'));
  });

  it('a fallback job reads the journal of the job it replaces (a job that failed for good)', async () => {
    const { cache, keys, cached } = setup();
    await cache.get(userProfile, { id: '14' });
    // A job that names the epoch tag itself (a TRUNCATE): its SREMs empty the very set the
    // fallback resolves, so only the inherited journal still names the value.
    await expect(
      invalidateTags(redis, keys, [...userTags(14), 'epoch:users'], {
        journalId: 'job-14',
        afterSrem: () => {
          throw new Error('last attempt died');
        },
      }),
    ).rejects.toThrow();
    await invalidateTags(redis, keys, ['epoch:users'], {
      journalId: 'fallback-job-14',
      inheritedJournals: ['job-14'],
    });
    expect(await cached('user:14')).toBeNull();
    expect(await redis.exists(keys.journal('job-14'))).toBe(0);
  });
});

describe('the tag index sweeper on a Redis Cluster', () => {
  /** A member whose value is gone (expired, evicted) while its tag sets still name it. */
  async function expiredMember(cache: ReadThroughCache<Db>, id: string) {
    await cache.get(userProfile, { id });
    await redis.unlink(cache.keys.value(`user:${id}`));
  }

  it('a fill that takes its lease after the check and registers before the SREM cannot cache unregistered', async () => {
    const { parking, events, cache, keys, cached, fresh } = setup();
    await expiredMember(cache, '15');
    let fill: Promise<unknown> | undefined;
    const parked = parking.park('beforeCas', 'user:15');
    const swept = await sweepTagIndex(redis, keys, {
      betweenSteps: async (step) => {
        if (step !== 'checked' || fill) return;
        // Between (a) and (b): a fill takes the lease, registers (a member already there,
        // so nothing changes) and passes its version check; it is about to write.
        fill = cache.get(userProfile, { id: '15' });
        await parked.arrived;
      },
    });
    expect(swept.removed).toBeGreaterThan(0);
    expect(await redis.sismember(keys.tagSet(rowTag('users', 15)), keys.value('user:15'))).toBe(0);
    parked.release();
    await fill;
    // Its registration was removed, so the next commit's invalidation cannot find it: had it
    // cached, the value would now be stale.
    await writer.query(`update users set name = 'swept' where id = 15`);
    await invalidateTags(redis, keys, userTags(15));
    expect(await cached('user:15')).toBeNull();
    // It did not cache: step (c) took its lease.
    expect(events.refusals.get('lease-lost')).toBe(1);
    expect((await cache.get(userProfile, { id: '15' })).body.toString()).toBe(await fresh('15'));
  });

  it('a fill that registers after the SREM stays registered and invalidatable', async () => {
    const { parking, cache, keys, cached, fresh } = setup();
    await expiredMember(cache, '16');
    let fill: Promise<unknown> | undefined;
    const parked = parking.park('afterLoad', 'user:16');
    await sweepTagIndex(redis, keys, {
      betweenSteps: async (step) => {
        if (step !== 'removed' || fill) return;
        // After (b), before (c): a fill takes the lease; it registers only once released.
        fill = cache.get(userProfile, { id: '16' });
        await parked.arrived;
      },
    });
    parked.release();
    await fill;
    const held = await cached('user:16');
    if (held !== null)
      expect(await redis.sismember(keys.tagSet(rowTag('users', 16)), keys.value('user:16'))).toBe(1);
    await writer.query(`update users set name = 'registered after the sweep' where id = 16`);
    await invalidateTags(redis, keys, userTags(16));
    expect(await cached('user:16')).toBeNull();
    expect((await cache.get(userProfile, { id: '16' })).body.toString()).toBe(await fresh('16'));
  });
});

describe('the cache generation on a Redis Cluster', () => {
  // Last in the file: it moves a master to another node.
  it('is every master’s: a replica promoted over one master makes the next check flush the namespace', async () => {
    const { events, cache, keys, cached } = setup();
    await cache.get(userProfile, { id: '17' });
    expect(await cached('user:17')).not.toBeNull();
    const recorded = await redis.get(keys.generation);
    expect(recorded?.split(' ')).toHaveLength(3);
    // The first check of a new namespace records it (a flush of nothing); count from here.
    const flushes = events.generationFlushes;

    // A manual failover of the value's shard: its replica becomes the master.
    const promoted = await cluster.failover(keys.value('user:17'));
    await cluster.waitHealthy();

    // The client sees the shard move (a node connection closes, or its slot map changes) and
    // checks every master again.
    await waitFor(
      async () => {
        await cache.get(userProfile, { id: '17' });
        return events.generationFlushes > flushes;
      },
      { what: 'the cache to flush for the new generation', timeoutMs: 20_000 },
    );
    const now = await redis.get(keys.generation);
    expect(now).not.toBe(recorded);
    expect(now).toContain(`127.0.0.1:${promoted.port}=`);
  });
});
