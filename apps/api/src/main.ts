import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { type Env, loadEnvOrExit, redactUrl, redisTarget } from '@walcache/config';
import {
  CircuitBreaker,
  createRedisClient,
  keyspace,
  loggedGenerationEvents,
  probeRedisTarget,
  ReadThroughCache,
  WatermarkReader,
} from '@walcache/core';
import { verifyPostgres } from '@walcache/db';
import {
  createLogger,
  createRegistry,
  isMain,
  type Logger,
  onShutdown,
  registerWatermarkGauge,
  type StartingServer,
  startOrExit,
} from '@walcache/observability';
import { type CompiledConfig, loadCompiledConfig } from '@walcache/resources';
import { CachedAnswers } from './answer.ts';
import { createApp } from './app.ts';
import { createApiDb, createApiPool } from './db.ts';
import { hitLane, laneDepsOf } from './hit-lane.ts';
import { limits } from './limits.ts';
import { createApiMetrics, registerPoolMetrics } from './metrics.ts';

export interface RunningApi {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Creates the clients, the app and the HTTP server. The only place the API connects. */
export interface ApiOptions {
  /** Lets a test observe the pool (e.g. count checkouts to prove a hit issues no SQL). */
  onPool?: (pool: ReturnType<typeof createApiPool>) => void;
  /** What to serve, already compiled (tests); default: the config WALCACHE_CONFIG names. */
  resources?: CompiledConfig;
  /**
   * The port PORT names, already taken by the program's entry (bin.ts), answering 503
   * `starting` until the app is built; default: the API listens once it is.
   */
  server?: StartingServer;
}

export async function startApi(
  env: Env,
  logger: Logger = createLogger('api', { level: env.LOG_LEVEL }),
  options: ApiOptions = {},
): Promise<RunningApi> {
  // Either may be one server or a Redis Cluster (docs/architecture.md, "On a Redis Cluster").
  const cacheTarget = redisTarget(env.REDIS_URL, env);
  const queueTarget = redisTarget(env.QUEUE_REDIS_URL, env);
  const pool = createApiPool({
    connectionString: env.DATABASE_URL,
    onIdleError: (err) => logger.warn({ err }, 'idle database connection lost'),
  });
  options.onPool?.(pool);
  // What to serve: the config compiled against the catalog (its tables are what is checked below).
  const resources =
    options.resources ??
    (await loadCompiledConfig({ config: env.WALCACHE_CONFIG, example: env.WALCACHE_EXAMPLE }, pool, (w) =>
      logger.warn(w),
    ).catch(async (error: unknown) => {
      await pool.end();
      throw error;
    }));
  // Settings that cannot work stop the start here; servers merely down do not (degraded mode).
  try {
    await Promise.all([
      verifyPostgres(pool, resources.tables),
      probeRedisTarget(cacheTarget, 'REDIS_URL'),
      env.OPS_TOKEN && env.QUEUE_REDIS_URL !== env.REDIS_URL
        ? probeRedisTarget(queueTarget, 'QUEUE_REDIS_URL')
        : undefined,
    ]);
  } catch (error) {
    await pool.end();
    throw error;
  }
  const db = createApiDb(pool);
  const redis = createRedisClient(cacheTarget, {
    // Fail fast instead of queueing while Redis is down: the breaker turns failures into
    // BYPASS answers, which is only useful if a failure arrives in milliseconds.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Why 250 ms: a healthy GET takes well under 1 ms; a slower one is an unhealthy Redis.
    commandTimeout: 250,
    // One server: the cache coalesces concurrent value reads into one MGET itself (core
    // reads.ts), cheaper than auto-pipelining's Pipeline per tick, which cost a hit 0.2-0.35x
    // of the raw GET's CPU (docs/benchmarks.md, "The hit lane"). A cluster's reads are one GET
    // per key (many slots): auto-pipelining still saves them a socket write each.
    enableAutoPipelining: cacheTarget.kind === 'cluster',
    connectionName: 'walcache-api',
  });
  redis.on('error', (err) => logger.debug({ err }, 'cache redis error'));
  // The read-your-writes watermark lives in the queue Redis, beside the jobs it derives from.
  const queueRedis =
    env.QUEUE_REDIS_URL === env.REDIS_URL
      ? redis
      : createRedisClient(queueTarget, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          commandTimeout: 250,
          connectionName: 'walcache-api-watermark',
        });
  if (queueRedis !== redis) queueRedis.on('error', (err) => logger.debug({ err }, 'queue redis error'));
  const registry = createRegistry('api');
  const metrics = createApiMetrics(registry);
  registerPoolMetrics(registry, pool);
  const breaker = new CircuitBreaker({
    onStateChange: (state) => logger.warn({ state }, 'cache redis circuit breaker'),
  });
  const cache = new ReadThroughCache({
    redis,
    db,
    prefix: env.CACHE_PREFIX,
    events: {
      ...metrics.cacheEvents,
      ...loggedGenerationEvents(logger, () => metrics.generationFlushes.inc()),
    },
    breaker,
    // The operator's caps on every resource's TTL (same values as the invalidator's refreshes).
    maxTtlSeconds: env.CACHE_TTL_SECONDS,
    maxNegativeTtlSeconds: env.NEGATIVE_TTL_SECONDS,
  });
  const watermark = new WatermarkReader(queueRedis, keyspace(env.CACHE_PREFIX), {}, (err) =>
    logger.debug({ err }, 'watermark read failed'),
  );
  registerWatermarkGauge(registry, () => watermark.known());
  // Ops routes (/ops/status, /ops/queues) exist only when OPS_TOKEN is set; their modules
  // (bullmq, bull-board: about a fifth of the API's memory at rest) load only then.
  const ops = env.OPS_TOKEN
    ? (await import('./ops/index.ts')).createOps(
        { ...env, OPS_TOKEN: env.OPS_TOKEN },
        { db, registry, logger },
      )
    : undefined;
  let draining = false;
  const answers = new CachedAnswers();
  const deps = {
    answers,
    resources,
    ops: ops?.app,
    cache,
    db,
    redis,
    registry,
    metrics,
    logger,
    slotName: env.SLOT_NAME,
    draining: () => draining,
    readYourWrites: {
      watermark,
      waitMs: env.RYW_WAIT_MS,
      metrics,
    },
  };
  const app = createApp(deps);

  // Hits take the lane; everything else goes to the app as serve() would pass it. On the port
  // the entry took, or on one of its own: the same listener from the first request after start-up.
  const listener = hitLane(laneDepsOf(deps), getRequestListener(app.fetch, { hostname: env.HOST }));
  const server = options.server
    ? options.server.serve(listener)
    : await new Promise<Server>((resolve, reject) => {
        const s = createServer(listener);
        s.once('error', reject);
        s.listen(env.PORT, env.HOST, () => resolve(s));
      });
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : env.PORT;
  const url = `http://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${port}`;
  logger.info(
    { url, database: redactUrl(env.DATABASE_URL), redis: redactUrl(env.REDIS_URL) },
    'api listening',
  );

  return {
    url,
    port,
    async close() {
      // Stop accepting and close idle keep-alive sockets; in-flight requests finish (their
      // connections close after the answer), bounded by limits.drainMs; then the clients go.
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), limits.drainMs);
      });
      if ((await Promise.race([closed, deadline])) === 'timeout') {
        logger.warn(
          { drainMs: limits.drainMs },
          'in-flight requests did not finish in time; closing their sockets',
        );
        server.closeAllConnections();
        await closed;
      }
      clearTimeout(timer);
      await ops?.close();
      await Promise.allSettled([
        pool.end(),
        redis.quit(),
        queueRedis === redis ? undefined : queueRedis.quit(),
      ]);
    },
  };
}

/**
 * The program: starts the API (a setting that cannot work exits with EX_CONFIG) and stops it
 * on SIGTERM/SIGINT. `server`: the port the entry (bin.ts) already took.
 */
export async function runApi(env: Env, server?: StartingServer): Promise<void> {
  const logger = createLogger('api', { level: env.LOG_LEVEL });
  const api = await startOrExit(logger, () => startApi(env, logger, { server }));
  onShutdown(logger, () => api.close());
}

if (isMain(import.meta.url)) await runApi(loadEnvOrExit());
