import { type Batch, CdcStream, TagMapper } from '@walcache/cdc';
import { type Env, loadEnvOrExit, redactUrl } from '@walcache/config';
import {
  flushNamespace,
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  invalidationJobOptions,
  jobIdForLsn,
  keyspace,
  QUEUE_PREFIX,
} from '@walcache/core';
import {
  createLogger,
  createRegistry,
  isMain,
  type Logger,
  onShutdown,
  startMetricsServer,
} from '@walcache/observability';
import { sourceTables, watchedColumns } from '@walcache/resources';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createCdcMetrics } from './metrics.ts';

export interface CdcOptions {
  heartbeatIntervalMs?: number;
  metricsPort?: number;
  maxTagsPerTable?: number;
}

export interface RunningCdc {
  stream: CdcStream;
  queue: Queue;
  metricsPort: number;
  /** Resolves when the stream loop ends (stop, or a setup error, which it rethrows). */
  done: Promise<void>;
  close(): Promise<void>;
}

export async function startCdc(
  env: Env,
  logger: Logger = createLogger('cdc', { level: env.LOG_LEVEL }),
  options: CdcOptions = {},
): Promise<RunningCdc> {
  // Producer connection: fail fast while Redis is down so the batch is not acknowledged and
  // the stream backs off, instead of queueing commands in memory.
  const queueRedis = new Redis(env.QUEUE_REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectionName: 'walcache-cdc',
  });
  queueRedis.on('error', (err) => logger.debug({ err }, 'queue redis error'));
  const cacheRedis =
    env.QUEUE_REDIS_URL === env.REDIS_URL
      ? queueRedis
      : new Redis(env.REDIS_URL, { maxRetriesPerRequest: 1, connectionName: 'walcache-cdc-flush' });
  if (cacheRedis !== queueRedis) cacheRedis.on('error', (err) => logger.debug({ err }, 'cache redis error'));
  const queue = new Queue<InvalidationJob>(env.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => logger.debug({ err }, 'queue error'));
  const registry = createRegistry('cdc');
  const metrics = createCdcMetrics(registry);
  const keys = keyspace(env.CACHE_PREFIX);

  const store = async (batch: Batch) => {
    const job: InvalidationJob = { v: 1, ...batch, enqueuedMs: Date.now() };
    // The job id derives from the batch's last LSN: a replay after a crash that forms the
    // same batch is deduplicated by BullMQ instead of running twice.
    await queue.add(INVALIDATE_JOB_NAME, job, { ...invalidationJobOptions, jobId: jobIdForLsn(batch.lsnTo) });
  };

  const stream = new CdcStream({
    connectionString: env.DATABASE_URL,
    slotName: env.SLOT_NAME,
    publicationName: env.PUBLICATION_NAME,
    tables: sourceTables,
    watched: watchedColumns,
    mapper: new TagMapper(watchedColumns, new Set(sourceTables)),
    store,
    flushCache: async (reason) => {
      const deleted = await flushNamespace(cacheRedis, keys);
      logger.warn({ reason, deleted }, 'cache namespace flushed');
    },
    logger,
    events: metrics.events,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    maxTagsPerTable: options.maxTagsPerTable,
  });
  const metricsServer = await startMetricsServer(
    registry,
    options.metricsPort ?? env.CDC_METRICS_PORT,
    () => ({
      status: 'ok',
      state: stream.state,
      lastStoredLsn: stream.lastStoredLsn,
    }),
  );
  logger.info(
    { database: redactUrl(env.DATABASE_URL), slot: env.SLOT_NAME, metricsPort: metricsServer.port },
    'cdc starting',
  );
  const done = stream.run();
  return {
    stream,
    queue,
    metricsPort: metricsServer.port,
    done,
    async close() {
      await stream.stop();
      await metricsServer.close();
      await queue.close();
      await Promise.allSettled([
        queueRedis.quit(),
        cacheRedis === queueRedis ? undefined : cacheRedis.quit(),
      ]);
    },
  };
}

if (isMain(import.meta.url)) {
  const env = loadEnvOrExit();
  const logger = createLogger('cdc', { level: env.LOG_LEVEL });
  const cdc = await startCdc(env, logger);
  onShutdown(logger, () => cdc.close());
  cdc.done.catch((error: unknown) => {
    logger.fatal({ err: error }, error instanceof Error ? error.message : 'cdc failed');
    process.exit(1);
  });
}
