import { HEARTBEAT_PREFIX } from '@walcache/cdc';
import { type Env, redisTarget } from '@walcache/config';
import {
  bodyOf,
  createRedisClient,
  decodeEntry,
  type InvalidationJob,
  lsnToBigInt,
  mastersOf,
  QUEUE_PREFIX,
  ReadThroughCache,
  type RedisClient,
  resourceKeyOf,
} from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { Queue } from 'bullmq';
import pg from 'pg';
import { articleComments, articleDetail, articleList, resourceForKey, tagList, userProfile } from './blog.ts';

/** Deterministic pseudo-random numbers: a failing storm can be replayed with its seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

export const ARTICLES = 200;
export const USERS = 50;

/**
 * A writer that knows nothing about walcache: a plain pg client committing random changes
 * (titles, new comments, comments moved between articles, user names, multi-row
 * transactions) until stopped. It reconnects by itself across a Postgres restart.
 */
export class StormWriter {
  commits = 0;
  errors = 0;
  lastError: unknown;
  private client: pg.Client | undefined;
  private running = true;
  private readonly loop: Promise<void>;
  private readonly random: () => number;

  /**
   * @param paceMs pause after each commit. Why: unpaced, one client commits thousands of
   * transactions a second on this 2-core machine and the test measures the CPU, not the CDC;
   * a few hundred a second is a storm for the CDC and leaves room for the other processes.
   */
  constructor(
    private readonly url: string,
    seed: number,
    private readonly paceMs = 5,
  ) {
    this.random = rng(seed);
    this.loop = this.run();
  }

  private pick(n: number): number {
    return 1 + Math.floor(this.random() * n);
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    // Why 2 s: while Postgres restarts a connect attempt must fail fast so the storm retries.
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {
      // The query that was running reports the same failure; the loop reconnects.
      this.client = undefined;
    });
    await client.connect();
    this.client = client;
    return client;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        const c = await this.connect();
        const r = this.random();
        const n = this.commits;
        if (r < 0.5) {
          await c.query('update articles set title = $1, updated_at = now() where id = $2', [
            `storm ${n}`,
            this.pick(ARTICLES),
          ]);
        } else if (r < 0.7) {
          await c.query('insert into comments (article_id, author_id, body) values ($1, $2, $3)', [
            this.pick(ARTICLES),
            this.pick(USERS),
            `comment ${n}`,
          ]);
        } else if (r < 0.8) {
          // Moves a comment to another article: a watched column changes.
          await c.query(
            'update comments set article_id = $1 where id = (select id from comments where article_id = $2 limit 1)',
            [this.pick(ARTICLES), this.pick(ARTICLES)],
          );
        } else if (r < 0.9) {
          await c.query('update users set name = $1, updated_at = now() where id = $2', [
            `user ${n}`,
            this.pick(USERS),
          ]);
        } else {
          await c.query('begin');
          for (let i = 0; i < 5; i++)
            await c.query('update articles set body = $1 where id = $2', [
              `body ${n}.${i}`,
              this.pick(ARTICLES),
            ]);
          await c.query('update articles set author_id = $1 where id = $2', [
            this.pick(USERS),
            this.pick(ARTICLES),
          ]);
          await c.query('commit');
        }
        this.commits += 1;
        if (this.paceMs > 0) await new Promise((r) => setTimeout(r, this.paceMs));
      } catch (error) {
        this.errors += 1;
        const client = this.client;
        this.client = undefined;
        // The connection is already broken (that is why we are here); ending it may fail too.
        await client?.end().catch(() => undefined);
        if (!this.running) break;
        // Postgres is restarting: try again shortly (not a test timing, a retry pace).
        await new Promise((r) => setTimeout(r, 100));
        this.lastError = error;
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    // Best effort at teardown: the client may already be gone after a restart.
    await this.client?.end().catch(() => undefined);
  }
}

/** Readers filling the cache through the real fill protocol, concurrently with the storm. */
export class CacheReaders {
  reads = 0;
  failures = 0;
  private running = true;
  private readonly loops: Promise<void>[];
  private readonly random: () => number;

  constructor(
    private readonly fixture: CacheFixture,
    seed: number,
    concurrency = 3,
  ) {
    this.random = rng(seed);
    this.loops = Array.from({ length: concurrency }, () => this.run());
  }

  private async run(): Promise<void> {
    const { cache } = this.fixture;
    let round = 0;
    while (this.running) {
      const article = String(1 + Math.floor(this.random() * ARTICLES));
      const user = String(1 + Math.floor(this.random() * USERS));
      try {
        await cache.get(articleDetail, { id: article });
        await cache.get(articleComments, { id: article, limit: 20 });
        await cache.get(userProfile, { id: user });
        this.reads += 3;
        // The lists and the tag list too (every change of the storm invalidates one of them),
        // one round in 20: each reload is a scan of the table, and on every round they would
        // take the CPU the CDC needs to restart.
        round += 1;
        if (round % 20 === 0) {
          await cache.get(articleList, { limit: 20 });
          await cache.get(tagList, {});
          this.reads += 2;
        }
        // Pace the readers (mostly cache hits): enough to keep values cached during the
        // storm without eating the CPU the CDC and Postgres need.
        await new Promise((r) => setTimeout(r, 5));
      } catch {
        // Postgres down: a miss answers 503 in the API. Counted; the storm goes on.
        this.failures += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

export interface CacheFixture {
  cache: ReadThroughCache<Db>;
  db: Db;
  /** One server or a Redis Cluster, as REDIS_URL says (how the apps connect). */
  redis: RedisClient;
  close(): Promise<void>;
}

export function cacheFixture(env: Env): CacheFixture {
  const pool = createPool({ connectionString: env.DATABASE_URL, max: 4 });
  const db = createDb(pool);
  const redis = createRedisClient(redisTarget(env.REDIS_URL, env), { maxRetriesPerRequest: 1 });
  redis.on('error', () => {
    // Redis restarts during the storm; the cache reports BYPASS and counts it.
  });
  const cache = new ReadThroughCache({ redis, db, prefix: env.CACHE_PREFIX });
  return {
    cache,
    db,
    redis,
    async close() {
      await db.destroy();
      redis.disconnect();
    },
  };
}

/** Caches every value the storm can touch, so the final check has values cached before changes. */
export async function warmCache(f: CacheFixture): Promise<void> {
  for (let id = 1; id <= ARTICLES; id++) {
    await f.cache.get(articleDetail, { id: String(id) });
    await f.cache.get(articleComments, { id: String(id), limit: 20 });
  }
  for (let id = 1; id <= USERS; id++) await f.cache.get(userProfile, { id: String(id) });
  for (const limit of [5, 20, 100]) await f.cache.get(articleList, { limit });
  await f.cache.get(tagList, {});
}

/**
 * The resource key of every value cached under the fixture's prefix (SCAN, not KEYS), on
 * every master of a cluster: a SCAN sent to the Cluster object walks one node's keys only.
 */
export async function cachedKeys(f: CacheFixture): Promise<string[]> {
  const keys = new Set<string>();
  // A cluster client knows its masters once its slot map is loaded; the PING waits for it.
  await f.redis.ping();
  for (const node of mastersOf(f.redis)) {
    // `prefix:{` matches values and leases; resourceKeyOf keeps the values.
    const stream = node.scanStream({ match: `${f.cache.keys.prefix}:{*`, count: 1000 });
    for await (const batch of stream as AsyncIterable<string[]>)
      for (const key of batch) {
        const resourceKey = resourceKeyOf(f.cache.keys, key);
        if (resourceKey) keys.add(resourceKey);
      }
  }
  return [...keys].sort();
}

/**
 * Every value cached under the fixture's prefix, of every resource (found by SCAN, not from
 * a list of the keys the test expects), is either gone or equal to what a fresh load returns
 * now. Returns how many were checked, by resource (a check of nothing proves nothing).
 */
export async function assertNoStaleValues(
  f: CacheFixture,
): Promise<{ checked: number; byResource: Record<string, number>; stale: string[] }> {
  const stale: string[] = [];
  const byResource: Record<string, number> = {};
  let checked = 0;
  for (const key of await cachedKeys(f)) {
    const resource = resourceForKey(key);
    const params = resource?.paramsFromKey?.(key);
    if (!resource || params === undefined) {
      stale.push(`${key}: cached, but no resource owns this key`);
      continue;
    }
    const raw = await f.redis.getBuffer(f.cache.keys.value(key));
    if (!raw) continue; // expired or invalidated since the SCAN
    checked += 1;
    byResource[resource.name] = (byResource[resource.name] ?? 0) + 1;
    const value = await resource.load(f.db, params);
    const fresh = bodyOf(value);
    const cached = decodeEntry(raw).body;
    if (!cached.equals(fresh))
      stale.push(`${key}: cached ${cached.toString()} but the database says ${fresh.toString()}`);
  }
  return { checked, byResource, stale };
}

/** The slot's confirmed position, or null when the slot does not exist. */
export async function confirmedFlush(db: pg.Pool | pg.Client, slot: string): Promise<string | null> {
  const { rows } = await db.query<{ lsn: string | null }>(
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
    [slot],
  );
  return rows[0]?.lsn ?? null;
}

/**
 * Waits until the CDC has stored (and acked) everything committed so far: writes a heartbeat
 * message, which the CDC acks in order after every earlier commit's job is stored, and waits
 * for the slot to confirm it; then waits for the queue to drain.
 */
export async function waitCaughtUp(
  db: pg.Pool | pg.Client,
  env: Env,
  queue: Queue,
  timeoutMs = 60_000,
): Promise<void> {
  const { rows } = await db.query<{ lsn: string }>(
    'select pg_logical_emit_message(false, $1, $2)::text as lsn',
    [HEARTBEAT_PREFIX, String(Date.now())],
  );
  const mark = lsnToBigInt(rows[0]?.lsn ?? '0/0');
  await waitFor(
    async () => {
      const c = await confirmedFlush(db, env.SLOT_NAME);
      return c !== null && lsnToBigInt(c) >= mark;
    },
    { timeoutMs, intervalMs: 100, what: 'the slot to confirm everything written' },
  );
  await waitFor(
    async () => {
      const counts = await queue.getJobCounts(...UNFINISHED);
      return Object.values(counts).every((n) => n === 0);
    },
    { timeoutMs, intervalMs: 100, what: 'the invalidation queue to drain' },
  ).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}; still there: ${await queueBacklog(queue)}`, {
      cause: error,
    });
  });
}

const UNFINISHED = ['waiting', 'active', 'delayed', 'prioritized', 'paused'] as const;

/**
 * The jobs a queue has not finished, each with its state, attempts and last failure: what a
 * test that timed out waiting for the queue to drain prints, so a failure seen only under the
 * full suite says which job stuck and why.
 */
export async function queueBacklog(queue: Queue): Promise<string> {
  const now = Date.now();
  const jobs = await queue.getJobs([...UNFINISHED], 0, 20);
  const described = await Promise.all(
    jobs.map(async (job) => ({
      id: job.id,
      state: await job.getState(),
      attemptsMade: job.attemptsMade,
      ageMs: now - job.timestamp,
      processedMsAgo: job.processedOn ? now - job.processedOn : undefined,
      delay: job.delay,
      failedReason: job.failedReason,
    })),
  );
  return JSON.stringify({ counts: await queue.getJobCounts(...UNFINISHED), jobs: described });
}

/**
 * The test's view of the invalidation queue, on one server or a cluster as QUEUE_REDIS_URL
 * says. QUEUE_PREFIX (a hash tag) keeps BullMQ's keys in one slot, as in the CDC.
 */
export function testQueue(env: Env): Queue<InvalidationJob> {
  const connection = createRedisClient(redisTarget(env.QUEUE_REDIS_URL, env), { maxRetriesPerRequest: null });
  connection.on('error', () => {
    // Redis restarts in some tests; BullMQ reconnects.
  });
  return new Queue<InvalidationJob>(env.QUEUE_NAME, { connection, prefix: QUEUE_PREFIX });
}

/** Every tag of every job still stored in the queue (waiting, active, delayed, paused). */
export async function storedTags(queue: Queue<InvalidationJob>): Promise<Set<string>> {
  const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'paused', 'prioritized', 'completed']);
  const tags = new Set<string>();
  for (const job of jobs) for (const t of job?.data.tags ?? []) tags.add(t);
  return tags;
}

/** The test's own connections for reading the slot; an idle one dropped by a restart is replaced. */
export function adminPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {
    // Postgres restarts in some tests; the pool replaces the dropped idle client.
  });
  return pool;
}
