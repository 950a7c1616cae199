import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { CircuitBreaker, keyspace, ReadThroughCache, WatermarkReader } from '@walcache/core';
import { createRegistry, silentLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { blogResources } from '../../../test/support/blog.ts';
import { type Servers, startServers } from '../../../test/support/stack.ts';
import { CachedAnswers } from '../src/answer.ts';
import { type ApiDeps, createApp } from '../src/app.ts';
import { createApiDb, createApiPool } from '../src/db.ts';
import { hitLane, laneDepsOf } from '../src/hit-lane.ts';
import { type ApiMetrics, createApiMetrics, registerPoolMetrics } from '../src/metrics.ts';

export interface TestApi {
  app: ReturnType<typeof createApp>;
  pool: pg.Pool;
  db: Db;
  redis: Redis;
  cache: ReadThroughCache<Db>;
  prefix: string;
  metrics: ApiMetrics;
  /** Database connections checked out by the API since start: a hit must add none. */
  checkouts(): number;
  /**
   * The app on a real HTTP server, as main.ts serves it (`lane: true`, the default: hits take
   * the hit lane) or with every request through the Hono app. `passed()` counts the requests
   * the lane handed to the app.
   */
  listen(options?: { lane?: boolean; draining?: () => boolean }): Promise<Listening>;
  close(): Promise<void>;
}

export interface Listening {
  url: string;
  passed(): number;
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
  const answers = new CachedAnswers();
  const watermark = new WatermarkReader(redis, keyspace(prefix));
  const deps = {
    answers,
    resources: blogResources(),
    cache,
    db,
    redis,
    registry,
    metrics,
    logger: silentLogger(),
    readYourWrites: { watermark, waitMs: 50, metrics },
    ...options.deps,
  };
  const app = createApp(deps);
  return {
    app,
    pool,
    db,
    redis,
    cache,
    prefix,
    metrics,
    checkouts: () => checkouts,
    async listen({ lane = true, draining } = {}) {
      let passed = 0;
      const toApp = getRequestListener(app.fetch);
      const listener = lane
        ? hitLane({ ...laneDepsOf(deps), ...(draining ? { draining } : {}) }, (request, response) => {
            passed += 1;
            return toApp(request, response);
          })
        : toApp;
      const server = await new Promise<Server>((resolve) => {
        const s = createServer(listener);
        s.listen(0, '127.0.0.1', () => resolve(s));
      });
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        passed: () => passed,
        close: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      };
    },
    async close() {
      await Promise.allSettled([pool.end(), redis.quit()]);
    },
  };
}

export { type Servers, startServers };
