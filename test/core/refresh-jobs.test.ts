/**
 * The invalidator's job lifecycle with the real worker: a failed refresh is retried (with
 * backoff) and the retry still knows which keys to reload; a job that exhausts its retries is
 * replaced by a table-wide (epoch) invalidation; a malformed job fails at once. The version
 * guard of the compare-and-set is checked directly on Redis.
 */
import {
  decodeEntry,
  encodeEntry,
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  ReadThroughCache,
  withCommands,
} from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { silentLogger } from '@walcache/observability';
import type { Db, Params, Value } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { articleDetail, resourceForKey, userProfile } from '../support/blog.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';
import { counting } from './support.ts';

let servers: Servers;
let invalidator: Awaited<ReturnType<typeof startInvalidator>>;
let cache: ReadThroughCache<Db>;
let redis: Redis;
let db: Db;
let writer: pg.Client;
/** The user profile as the invalidator sees it: its load fails while `failuresLeft` > 0. */
let flakyProfile: ReturnType<typeof counting<Db, Params, Value>>;

beforeAll(async () => {
  servers = await startServers({ users: 20, articles: 30, tags: 3, commentsPerArticle: 1 });
  flakyProfile = counting(userProfile);
  // No CDC here: the tests enqueue the jobs the CDC would, with short retry settings.
  const env = testEnv(servers);
  invalidator = await startInvalidator(env, silentLogger(), {
    resourceForKey: (key) => (key.startsWith('user:') ? flakyProfile : resourceForKey(key)),
  });
  redis = new Redis(env.REDIS_URL);
  db = createDb(createPool({ connectionString: env.DATABASE_URL, max: 4 }));
  cache = new ReadThroughCache({ redis, db, prefix: env.CACHE_PREFIX });
  writer = new pg.Client({ connectionString: env.DATABASE_URL });
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  await invalidator?.close();
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

beforeEach(() => {
  flakyProfile.calls = 0;
  flakyProfile.failuresLeft = 0;
});

let jobs = 0;
/** Enqueues what the CDC would for these tags, with test-sized retries. */
async function enqueue(tags: string[], attempts: number): Promise<Job<InvalidationJob>> {
  jobs += 1;
  const now = Date.now();
  const job: InvalidationJob = {
    v: 1,
    tags,
    lsnFrom: `0/${jobs}`,
    lsnTo: `0/${jobs}`,
    firstCommitMs: now,
    lastCommitMs: now,
    transactions: 1,
    enqueuedMs: now,
  };
  // Why 20 ms fixed backoff: the production exponential schedule (about a minute) would only
  // slow the test down; the retry path is the same.
  return invalidator.queue.add(INVALIDATE_JOB_NAME, job, {
    jobId: `test-${jobs}`,
    attempts,
    backoff: { type: 'fixed', delay: 20 },
  });
}

/** Why 20 s: a job with 2–4 attempts and 20 ms backoff finishes in well under a second; slack for a busy machine. */
async function settled(id: string): Promise<string> {
  let state = 'unknown';
  await waitFor(
    async () => {
      state = (await (await invalidator.queue.getJob(id))?.getState()) ?? 'missing';
      return state === 'completed' || state === 'failed';
    },
    { timeoutMs: 20_000, what: `job ${id} to finish` },
  );
  return state;
}

const cachedName = async (key: string) => {
  const raw = await redis.getBuffer(cache.keys.value(key));
  return raw ? (JSON.parse(decodeEntry(raw).body.toString()) as { name: string }).name : null;
};

describe('invalidation jobs', () => {
  it('a refresh that fails twice is retried and then writes the new value', async () => {
    await cache.get(userProfile, { id: '5' });
    await writer.query("update users set name = 'After retries' where id = 5");
    flakyProfile.failuresLeft = 2;

    const job = await enqueue(['row:users:5', 'table:users'], 4);
    expect(await settled(job.id!)).toBe('completed');
    expect(flakyProfile.calls).toBe(3);
    expect(await cachedName('user:5')).toBe('After retries');
    // The first attempt removed user:5 from its tag sets; the retries found it in the job.
    expect((await invalidator.queue.getJob(job.id!))?.data.refreshKeys).toEqual(['user:5']);
  });

  it('a job that exhausts its retries falls back to a table-wide invalidation', async () => {
    await cache.get(userProfile, { id: '6' });
    await cache.get(userProfile, { id: '8' });
    await cache.get(articleDetail, { id: '3' }); // embeds its author: depends on epoch:users
    await writer.query("update users set name = 'Never refreshed' where id = 6");
    flakyProfile.failuresLeft = 1_000;

    const job = await enqueue(['row:users:6', 'table:users'], 2);
    expect(await settled(job.id!)).toBe('failed');
    expect(await settled(`fallback-${job.id}`)).toBe('completed');
    const fallback = await invalidator.queue.getJob(`fallback-${job.id}`);
    expect(fallback?.data.tags).toEqual(['epoch:users']);
    expect(fallback?.data.deleteOnly).toBe(true);
    // Every value that depends on the users table is gone, none is stale.
    expect(await cachedName('user:6')).toBeNull();
    expect(await cachedName('user:8')).toBeNull();
    expect(await redis.exists(cache.keys.value('article:3'))).toBe(0);
  });

  it('a malformed job fails at once, without retries or fallback', async () => {
    const added = await invalidator.queue.add(
      INVALIDATE_JOB_NAME,
      { v: 2, tags: 'nope' } as unknown as InvalidationJob,
      { jobId: 'malformed-1', attempts: 5, backoff: { type: 'fixed', delay: 20 } },
    );
    expect(await settled(added.id!)).toBe('failed');
    const job = await invalidator.queue.getJob(added.id!);
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toMatch(/invalid invalidation job/);
    expect(await invalidator.queue.getJob(`fallback-${added.id}`)).toBeUndefined();
  });
});

describe('compare-and-set version guard', () => {
  it('an entry is never replaced by one whose fill started at an older sequence', async () => {
    const client = withCommands(redis);
    const value = cache.keys.value('guard:1');
    const lease = cache.keys.lease('guard:1');
    const entry = (version: number, body: string) =>
      encodeEntry({ version, storedAtMs: 0, tags: [], body: Buffer.from(body) });
    await redis.set(value, entry(100, '"newer"'));
    await redis.set(lease, 'token', 'PX', 10_000);
    expect(await client.walcacheFillCas(value, lease, 'token', entry(99, '"older"'), 60_000, 99)).toBe(2);
    expect(decodeEntry((await redis.getBuffer(value))!).body.toString()).toBe('"newer"');
    expect(await redis.exists(lease)).toBe(0); // the lease is given back either way
    // A lease that is not ours never writes.
    await redis.set(lease, 'someone-else', 'PX', 10_000);
    expect(await client.walcacheFillCas(value, lease, 'token', entry(101, '"x"'), 60_000, 101)).toBe(0);
  });
});
