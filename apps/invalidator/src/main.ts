import { Auditor, type AuditorOptions, registerOpsCollectors } from '@walcache/auditor';
import { type Env, loadEnvOrExit, redactUrl, redisTarget, redisUrlVariable } from '@walcache/config';
import {
  type AnyResource,
  checkRedisMemoryPolicies,
  coverInterval,
  createRedisClient,
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  InvalidJobError,
  invalidationJobOptions,
  invalidationJobSchema,
  keyspace,
  loggedGenerationEvents,
  probeRedisTarget,
  QUEUE_PREFIX,
  quitRedis,
  ReadThroughCache,
  VisibilityHorizon,
  withTimeout,
} from '@walcache/core';
import { createDb, createPool, verifyPostgres } from '@walcache/db';
import {
  createLogger,
  createRegistry,
  isMain,
  type Logger,
  onShutdown,
  registerWatermarkGauge,
  type StartingServer,
  startMetricsServer,
  startOrExit,
} from '@walcache/observability';
import { type CompiledConfig, type Db, loadCompiledConfig } from '@walcache/resources';
import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { createInvalidatorMetrics } from './metrics.ts';
import {
  elapsedMs,
  FALLBACK_PREFIX,
  fallbackJob,
  NotVisibleYetError,
  parseJob,
  processJob,
  RefreshFailedError,
} from './processor.ts';
import { TagSweeper } from './sweeper.ts';
import { Warmer } from './warm.ts';

/**
 * How long a job whose transactions are not visible yet is put off before it checks again.
 * Why 250 ms: a commit held by a synchronous standby becomes visible as soon as the standby
 * answers, and the invalidation latency should follow within a fraction of a second; each
 * re-check is one small query.
 */
const VISIBILITY_RECHECK_MS = 250;

/**
 * Why 5 s: an invalidation job takes milliseconds and a refresh is bounded by the statement
 * timeout; together with the auditor's 5 s stop (run alongside) and the 2 s QUITs this
 * stays inside onShutdown's 15 s deadline.
 */
const WORKER_CLOSE_MS = 5_000;

/**
 * How soon a job left active by a worker that is gone runs again: BullMQ marks an active job
 * whose lock expired at one stall check and moves it back to wait at the next, so a job a
 * crashed worker held (or whose completion a queue failover lost) waits up to the lock's
 * lifetime plus two intervals. With BullMQ's defaults (30 s, 30 s) that is 90 s of a key
 * left stale after an invalidator is SIGKILLed mid-job; with these, 20 s. Why not shorter:
 * the lock is renewed every 5 s while a job runs, and a busy event loop that misses a renewal
 * makes BullMQ run the job twice (harmless, jobs are idempotent) and fail it on a second
 * stall (a table-wide fallback). Each stall check is one small script on the queue's Redis.
 */
export const jobLocks = { lockDuration: 10_000, stalledInterval: 5_000 } as const;

export interface RunningInvalidator {
  worker: Worker<InvalidationJob>;
  queue: Queue<InvalidationJob>;
  sweeper: TagSweeper;
  /** Present when a resource declares `warm`. */
  warmer: Warmer | undefined;
  metricsPort: number;
  close(): Promise<void>;
}

export interface InvalidatorOptions {
  /** The consistency auditor's pace; false turns it off (default: on, see @walcache/auditor). */
  auditor?: AuditorOptions | false;
  metricsPort?: number;
  /** The deployment's resource registry; tests substitute resources (e.g. a failing load). */
  resourceForKey?: (key: string) => AnyResource<Db> | undefined;
  /** What this deployment serves, already compiled (tests); default: the config WALCACHE_CONFIG names. */
  resources?: CompiledConfig;
  /** Overrides TAG_SWEEP_INTERVAL_SECONDS (tests). */
  tagSweepIntervalMs?: number;
  /**
   * The metrics port, already taken by the program's entry (bin.ts), answering 503
   * `starting` until the worker runs; overrides metricsPort.
   */
  server?: StartingServer;
}

export async function startInvalidator(
  env: Env,
  logger: Logger = createLogger('invalidator', { level: env.LOG_LEVEL }),
  options: InvalidatorOptions = {},
): Promise<RunningInvalidator> {
  // Either may be one server or a Redis Cluster (docs/architecture.md, "On a Redis Cluster").
  const cacheTarget = redisTarget(env.REDIS_URL, env);
  const queueTarget = redisTarget(env.QUEUE_REDIS_URL, env);
  const pool = createPool({
    connectionString: env.DATABASE_URL,
    applicationName: 'walcache-invalidator',
    onIdleError: (err) => logger.warn({ err }, 'idle database connection lost'),
  });
  // What this deployment serves: the config compiled against the catalog.
  const compiled =
    options.resources ??
    (await loadCompiledConfig({ config: env.WALCACHE_CONFIG, example: env.WALCACHE_EXAMPLE }, pool).catch(
      async (error: unknown) => {
        await pool.end();
        throw error;
      },
    ));
  // Settings that cannot work stop the start here; servers merely down are retried.
  try {
    await Promise.all([
      verifyPostgres(pool, compiled.tables),
      probeRedisTarget(queueTarget, redisUrlVariable(env, 'queue')),
      env.QUEUE_REDIS_URL === env.REDIS_URL ? undefined : probeRedisTarget(cacheTarget, 'REDIS_URL'),
    ]);
  } catch (error) {
    await pool.end();
    throw error;
  }
  // BullMQ workers block on Redis; they need maxRetriesPerRequest: null.
  const workerRedis = createRedisClient(queueTarget, {
    maxRetriesPerRequest: null,
    connectionName: 'walcache-invalidator',
  });
  workerRedis.on('error', (err) => logger.debug({ err }, 'queue redis error'));
  // Why 2 retries per command: a reconnect within a second succeeds quietly; past that the
  // command fails, the job fails and BullMQ's backoff takes over.
  // Why a 5 s command timeout: a healthy command (a job's whole cleanup transaction
  // included) answers in milliseconds, and a socket that went silent without an error (a
  // hung or partitioned Redis) would otherwise hold every worker until TCP gives up, minutes
  // later. The attempt fails instead and BullMQ retries it with backoff.
  const cacheRedis = createRedisClient(cacheTarget, {
    maxRetriesPerRequest: 2,
    commandTimeout: 5_000,
    connectionName: 'walcache-invalidator-cache',
  });
  cacheRedis.on('error', (err) => logger.debug({ err }, 'cache redis error'));
  // A Redis whose memory policy cannot stay correct is refused before any job runs.
  await checkRedisMemoryPolicies(
    cacheRedis,
    env.QUEUE_REDIS_URL === env.REDIS_URL ? cacheRedis : workerRedis,
    (message, err) => logger.warn({ err }, message),
  ).catch(async (error: unknown) => {
    cacheRedis.disconnect();
    workerRedis.disconnect();
    await pool.end();
    throw error;
  });
  const db = createDb(pool);
  const resourceForKey = options.resourceForKey ?? compiled.resourceForKey;
  const registry = createRegistry('invalidator');
  const metrics = createInvalidatorMetrics(registry);
  let lastWatermark: bigint | undefined;
  registerWatermarkGauge(registry, () => lastWatermark);
  const keys = keyspace(env.CACHE_PREFIX);
  const cache = new ReadThroughCache({
    redis: cacheRedis,
    db,
    prefix: env.CACHE_PREFIX,
    maxTtlSeconds: env.CACHE_TTL_SECONDS,
    maxNegativeTtlSeconds: env.NEGATIVE_TTL_SECONDS,
    events: {
      fillRefused: (_resource, reason) => metrics.refreshRefused.inc({ reason }),
      ...loggedGenerationEvents(logger, () => metrics.generationFlushes.inc()),
    },
  });
  // A cache Redis restored from a snapshot is flushed now, before any job or refresh runs.
  if (!(await cache.verifyGeneration()))
    logger.warn('could not check the cache Redis generation at start; the first refresh will');
  const queue = new Queue<InvalidationJob>(env.QUEUE_NAME, { connection: workerRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => logger.warn({ err }, 'queue error'));
  // Queue counts and the slot's Postgres-side state on /metrics, and the consistency auditor.
  registerOpsCollectors(registry, { queue, db, slotName: env.SLOT_NAME, logger });
  const auditor =
    options.auditor === false
      ? undefined
      : new Auditor(
          {
            resourceForKey,
            cacheRedis,
            statsRedis: workerRedis,
            db,
            queue,
            cachePrefix: env.CACHE_PREFIX,
            slotName: env.SLOT_NAME,
            logger,
            registry,
          },
          options.auditor,
        );
  auditor?.start();
  const sweeper = new TagSweeper(
    cacheRedis,
    keys,
    logger,
    { sweeps: metrics.tagSweeps, membersRemoved: metrics.tagMembersRemoved },
    options.tagSweepIntervalMs ?? env.TAG_SWEEP_INTERVAL_SECONDS * 1000,
  );
  sweeper.start();
  // Pre-fills what the config declares `warm`, after this start and after every flush.
  const warmer = compiled.resources.some((r) => r.warm)
    ? new Warmer({ cache, db, redis: cacheRedis, keys, resources: compiled.resources, logger, metrics })
    : undefined;
  warmer?.start();
  const deps = {
    redis: cacheRedis,
    keys,
    cache,
    metrics,
    logger,
    db: pool,
    horizon: new VisibilityHorizon(),
    resourceForKey,
  };

  /** One attempt of a job. The last failed attempt enqueues the table-wide fallback first. */
  const run = async (job: Job<InvalidationJob>, token?: string) => {
    let payload: InvalidationJob;
    try {
      payload = parseJob(job.data);
    } catch (error) {
      // A malformed payload will never succeed: fail it at once, with the reason. It names no
      // tables we could trust, so there is no fallback; it stays failed for an operator.
      if (error instanceof InvalidJobError) throw new UnrecoverableError(error.message);
      throw error;
    }
    try {
      const result = await processJob(deps, payload, job.id);
      // Only now is every commit of `(after, lsnTo]` invalidated (a failure here retries the
      // job: its invalidation is idempotent).
      if (payload.after) {
        const started = performance.now();
        const watermark = await coverInterval(workerRedis, keys, payload.after, payload.lsnTo);
        result.ms.watermark = elapsedMs(started);
        if (watermark !== undefined && (lastWatermark === undefined || watermark > lastWatermark))
          lastWatermark = watermark;
      }
      logger.debug({ jobId: job.id, tags: payload.tags.length, ...result }, 'invalidated');
      return result;
    } catch (error) {
      if (error instanceof NotVisibleYetError && token) {
        // Not a failure: the commit is not visible yet (a synchronous standby that does not
        // answer can hold it for as long as it likes). Put the job off without using an
        // attempt; it runs once its transactions are visible, however long that takes.
        metrics.visibilityWaits.inc();
        logger.debug(
          { jobId: job.id, invisible: error.invisible },
          'transactions not visible yet; job put off',
        );
        await job.moveToDelayed(Date.now() + VISIBILITY_RECHECK_MS, token);
        throw new DelayedError();
      }
      if (error instanceof RefreshFailedError) {
        // The failed keys' tag entries are gone; the next attempt must know them. If even
        // this write fails, the keys stay deleted (cold, not stale): log it and go on failing.
        await job
          .updateData({ ...payload, refreshKeys: error.keys })
          .catch((err: unknown) =>
            logger.warn({ err, jobId: job.id }, 'could not record the keys to refresh'),
          );
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!lastAttempt) {
        metrics.retries.inc();
        throw error;
      }
      logger.error(
        { err: error, jobId: job.id },
        'invalidation job failed for good; falling back to a table-wide invalidation',
      );
      // Awaited: if even this fails, the job fails with both errors logged, and stays in the
      // failed set (kept a week) for an operator. A deterministic id dedupes a replay.
      await queue.add(INVALIDATE_JOB_NAME, fallbackJob(payload), {
        ...invalidationJobOptions,
        jobId: `${FALLBACK_PREFIX}${job.id}`,
      });
      metrics.fallbacks.inc();
      throw error;
    }
  };

  const worker = new Worker<InvalidationJob>(env.QUEUE_NAME, run, {
    connection: workerRedis,
    prefix: QUEUE_PREFIX,
    concurrency: env.INVALIDATOR_CONCURRENCY,
    ...jobLocks,
  });
  worker.on('completed', () => metrics.jobs.inc({ outcome: 'completed' }));
  worker.on('failed', (job, error) => {
    if (!job) return;
    void (async () => {
      // 'failed' is emitted for every failed attempt; only a job now in the failed set is over.
      if ((await job.getState()) !== 'failed') return;
      metrics.jobs.inc({ outcome: 'failed' });
      if (error instanceof UnrecoverableError) return;
      // A job can also end here without its last attempt running `run` to the end: a worker
      // that crashed mid-job twice fails it as stalled. Enqueue the fallback here too; the
      // deterministic id makes this a no-op when `run` already did.
      const parsed = invalidationJobSchema.safeParse(job.data);
      if (!parsed.success) return;
      await queue.add(INVALIDATE_JOB_NAME, fallbackJob(parsed.data), {
        ...invalidationJobOptions,
        jobId: `${FALLBACK_PREFIX}${job.id}`,
      });
    })().catch((err: unknown) =>
      logger.error({ err, jobId: job.id }, 'could not enqueue the fallback of a failed invalidation job'),
    );
  });
  worker.on('error', (err) => logger.warn({ err }, 'worker error'));

  const metricsServer = await startMetricsServer(
    registry,
    options.server ?? options.metricsPort ?? env.INVALIDATOR_METRICS_PORT,
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
    queue,
    sweeper,
    warmer,
    metricsPort: metricsServer.port,
    async close() {
      await Promise.all([
        auditor?.stop(),
        sweeper.stop(),
        warmer?.close(),
        // worker.close() waits for the jobs in progress, and never resolves while Redis is
        // unreachable: bounded, and not waited for at all when Redis is down (a running job
        // cannot finish then). A job cut short is picked up again as stalled; jobs are
        // idempotent (deletes and version-guarded refreshes).
        workerRedis.status === 'ready'
          ? withTimeout(worker.close(), WORKER_CLOSE_MS, 'closing the worker').catch(() =>
              logger.warn(
                { timeoutMs: WORKER_CLOSE_MS },
                'running jobs did not finish in time; they will be retried',
              ),
            )
          : logger.info(
              { redis: workerRedis.status },
              'queue Redis is unreachable: not waiting for running jobs',
            ),
      ]);
      await queue.close();
      await metricsServer.close();
      await Promise.allSettled([pool.end(), quitRedis(cacheRedis), quitRedis(workerRedis)]);
    },
  };
}

/**
 * The program: starts the invalidator (a setting that cannot work exits with EX_CONFIG) and
 * stops it on SIGTERM/SIGINT. `server`: the metrics port the entry (bin.ts) already took.
 */
export async function runInvalidator(env: Env, server?: StartingServer): Promise<void> {
  const logger = createLogger('invalidator', { level: env.LOG_LEVEL });
  const invalidator = await startOrExit(logger, () => startInvalidator(env, logger, { server }));
  onShutdown(logger, () => invalidator.close());
}

if (isMain(import.meta.url)) await runInvalidator(loadEnvOrExit());
