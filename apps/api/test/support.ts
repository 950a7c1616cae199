import { CircuitBreaker, keyspace, ReadThroughCache, WatermarkReader } from '@walcache/core';
import { createRegistry, silentLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { blogResources } from '../../../test/support/blog.ts';
import { type Servers, startServers } from '../../../test/support/stack.ts';
import { type ApiDeps, createApp } from '../src/app.ts';
import { createApiDb, createApiPool } from '../src/db.ts';
import { createApiMetrics, registerPoolMetrics } from '../src/metrics.ts';

export interface TestApi {
  app: ReturnType<typeof createApp>;
  pool: pg.Pool;
  db: Db;
  redis: Redis;
  cache: ReadThroughCache<Db>;
  prefix: string;
  /** Database connections checked out by the API since start: a hit must add none. */
  checkouts(): number;
  close(): Promise<void>;
}

let counter = 0;

/**
 * The real app (createApp) over real clients against private servers: no mocks. Each call
 * gets its own cache prefix so tests of one file do not share entries.
 */
export async function buildApi(
  servers: Servers,
  options: {
    pool?: Parameters<typeof createApiPool>[0];
    maxWaiting?: number;
    deps?: Partial<ApiDeps>;
  } = {},
): Promise<TestApi> {
  const pool = createApiPool(options.pool ?? { connectionString: servers.pg.url });
  let checkouts = 0;
  pool.on('acquire', () => {
    checkouts += 1;
  });
  const db = createApiDb(pool, options.maxWaiting);
  const redis = new Redis(servers.redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // Tests that stop Redis expect connection errors; the cache reports them as BYPASS answers.
  redis.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', () => resolve());
    redis.once('error', reject);
  });
  const registry = createRegistry('api-test');
  const metrics = createApiMetrics(registry);
  registerPoolMetrics(registry, pool);
  counter += 1;
  const prefix = `t${process.pid}x${counter}`;
  const cache = new ReadThroughCache({
    redis,
    db,
    prefix,
    events: metrics.cacheEvents,
    breaker: new CircuitBreaker(),
  });
  const app = createApp({
    resources: blogResources(),
    cache,
    db,
    redis,
    registry,
    metrics,
    logger: silentLogger(),
    readYourWrites: { watermark: new WatermarkReader(redis, keyspace(prefix)), waitMs: 50, metrics },
    ...options.deps,
  });
  return {
    app,
    pool,
    db,
    redis,
    cache,
    prefix,
    checkouts: () => checkouts,
    async close() {
      await Promise.allSettled([pool.end(), redis.quit()]);
    },
  };
}

export { type Servers, startServers };
