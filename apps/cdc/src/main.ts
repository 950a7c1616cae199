import {
  type Batch,
  CdcSetupError,
  CdcStream,
  parseCdcEnv,
  type SlotSyncMarker,
  type TagLimit,
  TagMapper,
} from '@walcache/cdc';
import {
  ConnectionConfigError,
  type Env,
  loadEnvOrExit,
  redactUrl,
  redisTarget,
  redisUrlVariable,
} from '@walcache/config';
import {
  awaitQueueReplica,
  checkRedisMemoryPolicies,
  createRedisClient,
  flushNamespace,
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  invalidationJobOptions,
  invalidationJobSchema,
  jobIdForCommit,
  keyspace,
  probeRedisTarget,
  QUEUE_PREFIX,
  quitRedis,
  type RedisClient,
  type SourceIdentity,
} from '@walcache/core';
import { createPool } from '@walcache/db';
import {
  createLogger,
  createRegistry,
  isMain,
  type Logger,
  onShutdown,
  type StartingServer,
  startMetricsServer,
  startOrExit,
} from '@walcache/observability';
import { type CompiledConfig, loadCompiledConfig } from '@walcache/resources';
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';

import { createCdcMetrics } from './metrics.ts';
import { WatermarkProgress } from './watermark.ts';

export interface CdcOptions {
  /** What this deployment serves, already compiled (tests); default: the config WALCACHE_CONFIG names. */
  resources?: Pick<CompiledConfig, 'tables' | 'watched'> &
    Partial<Pick<CompiledConfig, 'readColumns' | 'membership'>>;
  heartbeatIntervalMs?: number;
  lagIntervalMs?: number;
  metricsPort?: number;
  /**
   * The metrics port, already taken by the program's entry (bin.ts), answering 503
   * `starting` until the stream is set up; overrides metricsPort.
   */
  server?: StartingServer;
  /** One number for every table, or a function of the table (CDC_MAX_TAGS_PER_TABLE). */
  maxTagsPerTable?: TagLimit;
  maxTagsPerJob?: number;
  /** CDC_MIN_STORE_INTERVAL_MS (Batcher's minStoreIntervalMs). */
  minStoreIntervalMs?: number;
  storeTimeoutMs?: number;
  stopFlushMs?: number;
  maxBackoffMs?: number;
  /** Test seam: awaited before each store (hold a batch while a test inspects the slot). */
  beforeStore?(batch: Batch): Promise<void> | void;
}

export interface RunningCdc {
  stream: CdcStream;
  queue: Queue;
  metricsPort: number;
  /** Resolves when the stream loop ends (stop, or a setup error, which it rethrows). */
  done: Promise<void>;
  close(): Promise<void>;
}

/** Redis key recording that the cache is in sync with the slot (see SlotSyncMarker). */

/** Why 5 s: a local or same-zone Redis connects in milliseconds; past this it is down. */
const REDIS_READY_WAIT_MS = 5_000;

async function untilReady(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    }
    redis.once('ready', done);
  });
}

export async function startCdc(
  env: Env,
  logger: Logger = createLogger('cdc', { level: env.LOG_LEVEL }),
  options: CdcOptions = {},
): Promise<RunningCdc> {
  // Either may be one server or a Redis Cluster (docs/architecture.md, "On a Redis Cluster").
  const cacheTarget = redisTarget(env.REDIS_URL, env);
  const queueTarget = redisTarget(env.QUEUE_REDIS_URL, env);
  // Credentials or certificates that cannot work stop the start; Postgres' side is checked
  // by the stream's bootstrap (privileges included) and a Redis merely down is retried.
  await Promise.all([
    probeRedisTarget(queueTarget, redisUrlVariable(env, 'queue')),
    env.QUEUE_REDIS_URL === env.REDIS_URL ? undefined : probeRedisTarget(cacheTarget, 'REDIS_URL'),
  ]);
  // Producer connection: fail fast while Redis is down so the batch is not acknowledged and
  // the stream backs off, instead of queueing commands in memory.
  const queueRedis = createRedisClient(queueTarget, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectionName: 'walcache-cdc',
  });
  queueRedis.on('error', (err) => logger.debug({ err }, 'queue redis error'));
  // One server for both: one connection. (A cluster gets a client per role.)
  const cacheRedis =
    env.QUEUE_REDIS_URL === env.REDIS_URL && queueRedis instanceof Redis
      ? queueRedis
      : createRedisClient(cacheTarget, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectionName: 'walcache-cdc-flush',
        });
  if (cacheRedis !== queueRedis) cacheRedis.on('error', (err) => logger.debug({ err }, 'cache redis error'));
  // A Redis whose memory policy cannot stay correct is refused before anything streams.
  // The connections fail fast by design (no offline queue); give them a moment to connect so
  // a normal start does not begin with a failed attempt. Redis still down after that is the
  // reconnect loop's business, not a reason to refuse to start (then the check is skipped).
  const redisClients = [...new Set([queueRedis, cacheRedis])];
  await Promise.all(redisClients.map((r) => untilReady(r, REDIS_READY_WAIT_MS)));
  await checkRedisMemoryPolicies(cacheRedis, queueRedis, (message, err) =>
    logger.warn({ err }, message),
  ).catch((error: unknown) => {
    for (const r of redisClients) r.disconnect();
    throw error;
  });
  // Bootstrap, heartbeats and lag reads. Why 2 connections: a heartbeat and a lag read may
  // overlap; the replication stream has its own connection.
  const db = createPool({
    connectionString: env.DATABASE_URL,
    applicationName: 'walcache-cdc-admin',
    max: 2,
    // Why 30 s: bootstrap creates a slot, which waits for running transactions to finish.
    statementTimeoutMs: 30_000,
    onIdleError: (err) => logger.warn({ err }, 'database connection lost'),
  });
  // The CDC never runs resources' code: it needs only the tables they read and the columns
  // whose old and new values become tags.
  const compiled =
    options.resources ??
    (await loadCompiledConfig({ config: env.WALCACHE_CONFIG, example: env.WALCACHE_EXAMPLE }, db).catch(
      async (error: unknown) => {
        await Promise.allSettled([
          db.end(),
          queueRedis.quit(),
          cacheRedis === queueRedis ? undefined : cacheRedis.quit(),
        ]);
        throw error;
      },
    ));
  const queue = new Queue<InvalidationJob>(env.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => logger.debug({ err }, 'queue error'));
  const registry = createRegistry('cdc');
  const metrics = createCdcMetrics(registry);
  const keys = keyspace(env.CACHE_PREFIX);
  const markerKey = keys.inSync(env.SLOT_NAME);

  const store = async (batch: Batch, source: SourceIdentity) => {
    const job = invalidationJobSchema.parse({ v: 1, ...batch, enqueuedMs: Date.now() });
    // The job id derives from the batch's last LSN: a replay after a crash that forms a batch
    // ending at the same commit is deduplicated by BullMQ (everything up to that commit is
    // already in a stored job) instead of running twice.
    await queue.add(INVALIDATE_JOB_NAME, job, {
      ...invalidationJobOptions,
      jobId: jobIdForCommit(source, batch.lsnTo),
    });
    if (queueRedis instanceof Cluster) await awaitQueueReplica(queueRedis);
  };

  const slotMarker: SlotSyncMarker = {
    get: () => cacheRedis.get(markerKey),
    set: async (source) => {
      await cacheRedis.set(markerKey, source);
    },
    clear: async () => {
      await cacheRedis.del(markerKey);
    },
  };

  const watermark = new WatermarkProgress(queueRedis, keys, queue, logger);
  const stream = new CdcStream({
    connectionString: env.DATABASE_URL,
    db,
    slotName: env.SLOT_NAME,
    publicationName: env.PUBLICATION_NAME,
    tables: compiled.tables,
    watched: compiled.watched,
    mapper: new TagMapper(
      compiled.watched,
      new Set(compiled.tables),
      compiled.readColumns ?? {},
      metrics.updateSkipped,
      compiled.membership ?? {},
      metrics.updateRowOnly,
    ),
    store,
    slotMarker,
    flushCache: async (reason) => {
      const deleted = await flushNamespace(cacheRedis, keys);
      logger.warn({ reason, deleted }, 'cache namespace flushed');
    },
    logger,
    events: metrics.events,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    lagIntervalMs: options.lagIntervalMs,
    maxTagsPerTable: options.maxTagsPerTable,
    maxTagsPerJob: options.maxTagsPerJob,
    minStoreIntervalMs: options.minStoreIntervalMs,
    storeTimeoutMs: options.storeTimeoutMs,
    stopFlushMs: options.stopFlushMs,
    maxBackoffMs: options.maxBackoffMs,
    beforeStore: options.beforeStore,
    progressed: (after, to) => watermark.progressed(after, to),
    streamingFrom: (position, flushed) => watermark.streamingFrom(position, flushed),
  });
  const metricsServer = await startMetricsServer(
    registry,
    options.server ?? options.metricsPort ?? env.CDC_METRICS_PORT,
    () => ({
      status: 'ok',
      state: stream.state,
      lastStoredLsn: stream.lastStoredLsn,
      lastReceivedLsn: stream.lastReceivedLsn,
      lag: stream.lag,
    }),
  );
  logger.info(
    { database: redactUrl(env.DATABASE_URL), slot: env.SLOT_NAME, metricsPort: metricsServer.port },
    'cdc starting',
  );
  const done = stream.run();
  let closing: Promise<void> | undefined;
  return {
    stream,
    queue,
    metricsPort: metricsServer.port,
    done,
    close() {
      closing ??= (async () => {
        // Order: the stream first (it finishes and acks the in-flight enqueue, which needs
        // the queue and Postgres), then what it used.
        await stream.stop();
        await watermark.flush();
        await metricsServer.close();
        await queue.close();
        await Promise.allSettled([
          db.end(),
          quitRedis(queueRedis),
          cacheRedis === queueRedis ? undefined : quitRedis(cacheRedis),
        ]);
      })();
      return closing;
    },
  };
}

/**
 * The program: starts the CDC (a setting that cannot work exits with EX_CONFIG), stops it on
 * SIGTERM/SIGINT, and exits when its stream fails. `server`: the metrics port the entry
 * (bin.ts) already took.
 */
export async function runCdc(env: Env, server?: StartingServer): Promise<void> {
  const logger = createLogger('cdc', { level: env.LOG_LEVEL });
  let cdcEnv: ReturnType<typeof parseCdcEnv>;
  try {
    cdcEnv = parseCdcEnv(process.env);
  } catch (error) {
    process.stderr.write(`walcache: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(78); // EX_CONFIG
  }
  const limits = cdcEnv.CDC_MAX_TAGS_PER_TABLE;
  const cdc = await startOrExit(logger, () =>
    startCdc(env, logger, {
      maxTagsPerTable: limits.of,
      heartbeatIntervalMs: cdcEnv.CDC_HEARTBEAT_INTERVAL_MS,
      lagIntervalMs: cdcEnv.CDC_LAG_INTERVAL_MS,
      minStoreIntervalMs: cdcEnv.CDC_MIN_STORE_INTERVAL_MS,
      server,
    }),
  );
  onShutdown(logger, () => cdc.close());
  cdc.done.catch((error: unknown) => {
    // A setting to fix (a privilege, a password, the publication) exits like a bad variable.
    if (error instanceof CdcSetupError || error instanceof ConnectionConfigError) {
      logger.fatal(error.message);
      process.exit(78); // EX_CONFIG
    }
    logger.fatal({ err: error }, error instanceof Error ? error.message : 'cdc failed');
    process.exit(1);
  });
}

if (isMain(import.meta.url)) await runCdc(loadEnvOrExit());
