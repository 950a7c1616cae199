import { type Env, loadEnvOrExit, redactUrl } from '@walcache/config';
import {
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  InvalidJobError,
  invalidationJobOptions,
  keyspace,
  QUEUE_PREFIX,
  ReadThroughCache,
} from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import {
  createLogger,
  createRegistry,
  isMain,
  type Logger,
  onShutdown,
  startMetricsServer,
} from '@walcache/observability';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createInvalidatorMetrics } from './metrics.ts';
import { fallbackJob, parseJob, processJob } from './processor.ts';

export interface RunningInvalidator {
  worker: Worker<InvalidationJob>;
  metricsPort: number;
  close(): Promise<void>;
}

export async function startInvalidator(
  env: Env,
  logger: Logger = createLogger('invalidator', { level: env.LOG_LEVEL }),
  options: { metricsPort?: number } = {},
): Promise<RunningInvalidator> {
  // BullMQ workers block on Redis; they need maxRetriesPerRequest: null.
  const workerRedis = new Redis(env.QUEUE_REDIS_URL, {
    maxRetriesPerRequest: null,
    connectionName: 'walcache-invalidator',
  });
  workerRedis.on('error', (err) => logger.debug({ err }, 'queue redis error'));
  const cacheRedis = new Redis(env.REDIS_URL, {
    maxRetriesPerRequest: 2,
    connectionName: 'walcache-invalidator-cache',
  });
  cacheRedis.on('error', (err) => logger.debug({ err }, 'cache redis error'));
  const pool = createPool({
    connectionString: env.DATABASE_URL,
    applicationName: 'walcache-invalidator',
    onIdleError: (err) => logger.warn({ err }, 'idle database connection lost'),
  });
  const db = createDb(pool);
  const registry = createRegistry('invalidator');
  const metrics = createInvalidatorMetrics(registry);
  const keys = keyspace(env.CACHE_PREFIX);
  const cache = new ReadThroughCache({ redis: cacheRedis, db, prefix: env.CACHE_PREFIX });
  const queue = new Queue<InvalidationJob>(env.QUEUE_NAME, { connection: workerRedis, prefix: QUEUE_PREFIX });

  const worker = new Worker<InvalidationJob>(
    env.QUEUE_NAME,
    async (job) => {
      let payload: InvalidationJob;
      try {
        payload = parseJob(job.data);
      } catch (error) {
        // A malformed payload will never succeed: fail it at once, with the reason.
        if (error instanceof InvalidJobError) throw new UnrecoverableError(error.message);
        throw error;
      }
      const result = await processJob({ redis: cacheRedis, keys, cache, metrics, logger }, payload);
      logger.debug({ jobId: job.id, tags: payload.tags.length, ...result }, 'invalidated');
      return result;
    },
    { connection: workerRedis, prefix: QUEUE_PREFIX, concurrency: env.INVALIDATOR_CONCURRENCY },
  );
  worker.on('completed', () => metrics.jobs.inc({ outcome: 'completed' }));
  worker.on('failed', (job, error) => {
    if (!job) return;
    const exhausted = job.attemptsMade >= (job.opts.attempts ?? 1) || error instanceof UnrecoverableError;
    if (!exhausted) {
      metrics.retries.inc();
      return;
    }
    metrics.jobs.inc({ outcome: 'failed' });
    const parsed = parseJobSafe(job.data);
    logger.error(
      { err: error, jobId: job.id },
      'invalidation job failed for good; falling back to a table-wide invalidation',
    );
    if (!parsed) return;
    metrics.fallbacks.inc();
    void queue
      .add(INVALIDATE_JOB_NAME, fallbackJob(parsed), {
        ...invalidationJobOptions,
        jobId: `fallback-${job.id}`,
      })
      .catch((err: unknown) =>
        logger.error({ err, jobId: job.id }, 'could not enqueue the fallback invalidation'),
      );
  });
  worker.on('error', (err) => logger.warn({ err }, 'worker error'));

  const metricsServer = await startMetricsServer(
    registry,
    options.metricsPort ?? env.INVALIDATOR_METRICS_PORT,
    () => ({
      status: worker.isRunning() ? 'ok' : 'stopped',
    }),
  );
  logger.info(
    {
      redis: redactUrl(env.REDIS_URL),
      concurrency: env.INVALIDATOR_CONCURRENCY,
      metricsPort: metricsServer.port,
    },
    'invalidator running',
  );
  return {
    worker,
    metricsPort: metricsServer.port,
    async close() {
      // worker.close() waits for the jobs in progress to finish before resolving.
      await worker.close();
      await queue.close();
      await metricsServer.close();
      await Promise.allSettled([pool.end(), cacheRedis.quit(), workerRedis.quit()]);
    },
  };
}

function parseJobSafe(data: unknown): InvalidationJob | undefined {
  try {
    return parseJob(data);
  } catch {
    return undefined; // a malformed job has no tables to fall back to; it stays failed for an operator
  }
}

if (isMain(import.meta.url)) {
  const env = loadEnvOrExit();
  const logger = createLogger('invalidator', { level: env.LOG_LEVEL });
  const invalidator = await startInvalidator(env, logger);
  onShutdown(logger, () => invalidator.close());
}
