import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import { type CacheStats, cacheStatsFrom, collectStatus } from '@walcache/auditor';
import { type Env, redisTarget } from '@walcache/config';
import { createRedisClient, QUEUE_PREFIX, type RedisClient } from '@walcache/core';
import type { Logger, Registry } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { Queue } from 'bullmq';
import { type Context, Hono } from 'hono';
import { problem, problemTypes } from '../problem.ts';
import { requireOpsToken } from './auth.ts';

export interface OpsDeps {
  token: string;
  queue: Queue;
  queueRedis: RedisClient;
  db: Db;
  slotName: string;
  cachePrefix: string;
  /** The API's own registry: the hit ratio comes from its cache counters. */
  registry: Registry;
  logger: Logger;
}

/** Mount point of the ops app inside the API (apps/api/src/app.ts mounts it at /ops). */
export const OPS_BASE = '/ops';

/**
 * `GET /ops/status` (one JSON document for the operator) and `/ops/queues` (bull-board),
 * both behind OPS_TOKEN. Built only when a token is configured.
 */
export function createOpsApp(deps: OpsDeps): Hono {
  const app = new Hono();
  app.use('/status', requireOpsToken(deps.token, 'Bearer'));
  app.use('/queues', requireOpsToken(deps.token, 'Basic'));
  app.use('/queues/*', requireOpsToken(deps.token, 'Basic'));

  app.get('/status', async (c) => {
    const status = await collectStatus({
      queue: deps.queue,
      queueRedis: deps.queueRedis,
      db: deps.db,
      slotName: deps.slotName,
      cachePrefix: deps.cachePrefix,
      cacheStats: () => cacheStatsOf(deps.registry),
    });
    return c.json(status, 200, { 'cache-control': 'no-store' });
  });

  guardQueueActions(app, deps.queue);
  const board = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: [new BullMQAdapter(deps.queue, { description: 'commit → invalidate jobs from the CDC' })],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'walcache queues' } },
  });
  board.setBasePath(`${OPS_BASE}/queues`);
  app.route('/queues', board.registerPlugin());
  return app;
}

/** Job states whose removal loses nothing: a failed job already fell back to a table-wide invalidation. */
const REMOVABLE_STATES = new Set(['failed', 'completed']);

/**
 * The dashboard may retry, promote, pause and resume, and remove finished jobs; it may not
 * remove or rewrite pending ones (empty, obliterate, cleaning waiting/delayed jobs, editing
 * data, adding hand-made jobs): a pending job lost is a lost invalidation, a stale cache.
 * Registered before bull-board's routes, so these answer first.
 */
function guardQueueActions(app: Hono, queue: Queue): void {
  const api = '/queues/api/queues/:queueName';
  const deny = (c: Context, what: string) =>
    problem(c, {
      type: problemTypes.forbidden,
      title: 'Forbidden',
      status: 403,
      detail: `${what} would lose pending invalidations; retry or remove finished jobs instead`,
    });
  app.put(`${api}/empty`, (c) => deny(c, 'emptying the queue'));
  app.put(`${api}/obliterate`, (c) => deny(c, 'obliterating the queue'));
  app.post(`${api}/add`, (c) => deny(c, 'adding a hand-made job'));
  app.patch(`${api}/:jobId/update-data`, (c) => deny(c, "editing a job's data"));
  app.put(`${api}/clean/:queueStatus`, async (c, next) =>
    REMOVABLE_STATES.has(c.req.param('queueStatus'))
      ? next()
      : deny(c, `removing ${c.req.param('queueStatus')} jobs`),
  );
  app.put(`${api}/:jobId/clean`, async (c, next) => {
    const state = await queue.getJobState(c.req.param('jobId'));
    return REMOVABLE_STATES.has(state) || state === 'unknown' ? next() : deny(c, `removing a ${state} job`);
  });
}

/** The API's cache outcome counters, summed over resources. */
async function cacheStatsOf(registry: Registry): Promise<CacheStats> {
  const metric = registry.getSingleMetric('walcache_cache_requests_total');
  const counts = { hits: 0, misses: 0, bypasses: 0 };
  if (metric) {
    for (const { labels, value } of (await metric.get()).values) {
      if (labels.outcome === 'HIT') counts.hits += value;
      else if (labels.outcome === 'MISS') counts.misses += value;
      else if (labels.outcome === 'BYPASS') counts.bypasses += value;
    }
  }
  return cacheStatsFrom(counts, 'this api process since it started');
}

export interface Ops {
  app: Hono;
  close(): Promise<void>;
}

/** Creates the ops app's own queue connection (called from main.ts when OPS_TOKEN is set). */
export function createOps(
  env: Env & { OPS_TOKEN: string },
  deps: { db: Db; registry: Registry; logger: Logger },
): Ops {
  const queueRedis = createRedisClient(redisTarget(env.QUEUE_REDIS_URL, env), {
    // A dashboard or status read must fail fast while the queue Redis is down, not hang.
    maxRetriesPerRequest: 1,
    connectionName: 'walcache-api-ops',
  });
  queueRedis.on('error', (err) => deps.logger.debug({ err }, 'ops queue redis error'));
  const queue = new Queue(env.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => deps.logger.debug({ err }, 'ops queue error'));
  const app = createOpsApp({
    token: env.OPS_TOKEN,
    queue,
    queueRedis,
    db: deps.db,
    slotName: env.SLOT_NAME,
    cachePrefix: env.CACHE_PREFIX,
    registry: deps.registry,
    logger: deps.logger,
  });
  return {
    app,
    async close() {
      await queue.close();
      await queueRedis.quit().catch((err: unknown) => deps.logger.debug({ err }, 'ops queue redis quit'));
    },
  };
}
