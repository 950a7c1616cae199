import { type Env, redisTarget } from '@walcache/config';
import { createRedisClient, decodeEntry, ReadThroughCache, type RedisClient } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { type InvalidatorOptions, startInvalidator } from '../../apps/invalidator/src/main.ts';
import { userProfile } from '../support/blog.ts';
import { appLogger, type Servers, testEnv } from '../support/stack.ts';
import { EventCounter } from './support.ts';

/**
 * The write → WAL → CDC → queue → invalidator pipeline for real (apps' entry functions), and a
 * ReadThroughCache reading like the API does. Reading through the cache rather than HTTP
 * keeps these tests about the cache engine.
 */
export interface Pipeline {
  env: Env;
  cdc: Awaited<ReturnType<typeof startCdc>>;
  invalidator: Awaited<ReturnType<typeof startInvalidator>>;
  cache: ReadThroughCache<Db>;
  events: EventCounter;
  db: Db;
  /** The cache's Redis: one server, or a Cluster client when REDIS_URL is a cluster. */
  redis: RedisClient;
  writer: pg.Client;
  /** A new writer connection, after a test restarted Postgres. */
  reconnectWriter(): Promise<void>;
  /** The JSON cached for a key, or null. */
  cached(key: string): Promise<string | null>;
  /** Waits until every commit so far has been invalidated and the queue is empty. */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPipeline(
  servers: Servers,
  options: {
    overrides?: Record<string, string>;
    invalidator?: InvalidatorOptions;
    sentinelUser?: string;
  } = {},
): Promise<Pipeline> {
  const env = testEnv(servers, options.overrides);
  const cdc = await startCdc(env, appLogger('cdc'), { heartbeatIntervalMs: 500 });
  const invalidator = await startInvalidator(env, appLogger('invalidator'), options.invalidator);
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  const pool = createPool({ connectionString: env.DATABASE_URL, max: 8 });
  const db = createDb(pool);
  const redis = createRedisClient(redisTarget(env.REDIS_URL, env), {});
  const events = new EventCounter();
  const cache = new ReadThroughCache({ redis, db, prefix: env.CACHE_PREFIX, events });
  const connectWriter = async () => {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    // A test that stops Postgres ends this connection; the error is expected there.
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  let writer = await connectWriter();
  const cached = async (key: string) => {
    const raw = await redis.getBuffer(cache.keys.value(key));
    return raw ? decodeEntry(raw).body.toString() : null;
  };
  // A user no test writer touches: its cached profile changes only through the sentinel's job.
  const sentinel = options.sentinelUser ?? '1';
  let nonce = 0;

  return {
    env,
    cdc,
    invalidator,
    cache,
    events,
    db,
    redis,
    get writer() {
      return writer;
    },
    async reconnectWriter() {
      await writer.end().catch(() => undefined);
      writer = await connectWriter();
    },
    cached,
    async drain() {
      nonce += 1;
      const mark = `sentinel ${nonce}`;
      await cache.get(userProfile, { id: sentinel });
      await writer.query('update users set bio = $1 where id = $2', [mark, sentinel]);
      // The sentinel's job ran once its cached profile is gone or refreshed. Jobs are stored
      // in commit order, so every earlier commit's job is in the queue (or done) by then.
      // Why 20 s / 30 s below: a bound for a busy 2-core machine running other suites; a
      // healthy run takes well under a second for each.
      await waitFor(
        async () => {
          const held = await cached(`user:${sentinel}`);
          return held === null || JSON.parse(held).bio === mark;
        },
        { timeoutMs: 20_000, what: 'the sentinel commit to be invalidated' },
      );
      await waitFor(
        async () => {
          const c = await invalidator.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
          return Object.values(c).every((n) => n === 0);
        },
        { timeoutMs: 30_000, what: 'the invalidation queue to drain' },
      );
    },
    async stop() {
      await writer.end().catch(() => undefined);
      await Promise.allSettled([cdc.close(), invalidator.close()]);
      redis.disconnect();
      await db.destroy();
    },
  };
}

/** Parses the body of a cache answer. */
export function json<T>(result: { body: Buffer }): T {
  return JSON.parse(result.body.toString()) as T;
}
