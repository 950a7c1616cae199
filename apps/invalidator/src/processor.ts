import {
  type AnyResource,
  countInvisibleXids,
  epochTag,
  type InvalidationJob,
  InvalidJobError,
  invalidateTags,
  invalidationJobSchema,
  type Keyspace,
  type ReadThroughCache,
  type RedisClient,
  tableOfTag,
  type VisibilityHorizon,
  type XidQueryable,
} from '@walcache/core';
import type { Logger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import type { InvalidatorMetrics } from './metrics.ts';

export interface ProcessorDeps {
  redis: RedisClient;
  keys: Keyspace;
  cache: ReadThroughCache<Db>;
  metrics: InvalidatorMetrics;
  logger: Logger;
  /** Postgres, for the visibility check of the job's transactions (step 0). */
  db: XidQueryable;
  /** What earlier visibility checks of this process learned (a job it covers runs no query). */
  horizon: VisibilityHorizon;
  /** The resource a cache key belongs to (the deployment's registry). */
  resourceForKey(key: string): AnyResource<Db> | undefined;
}

export interface ProcessResult {
  deleted: number;
  refreshed: number;
  /**
   * Where the attempt's time went, in ms: stored with the job (its return value), so the
   * bench and an operator can tell queue time from work time without a trace.
   */
  ms: { visible: number; invalidate: number; refresh: number; watermark?: number };
}

/** Some refreshes of a job failed; the keys travel with the job to its next attempt. */
export class RefreshFailedError extends Error {
  readonly code = 'WALCACHE_REFRESH_FAILED';
  constructor(
    readonly keys: string[],
    cause: unknown,
  ) {
    super(`refresh failed for ${keys.length} key(s), first: ${keys[0]}`, { cause });
    this.name = 'RefreshFailedError';
  }
}

/**
 * How long an attempt polls for its transactions to become visible before it is put off.
 * Why 100 ms: a descheduled backend leaves the proc array within milliseconds; a
 * transaction still invisible after that is waiting for something slow (a synchronous
 * standby), and a worker slot should not be held for it. Why steps from 1 ms doubling to
 * 16 ms: the usual wait is a few milliseconds (the CDC decodes a commit as soon as its WAL
 * is flushed, before its backend has left the proc array), and a fixed 10 ms step made it
 * 10 ms every time — about 14 ms per job on average under 1 000 commits/s, on the critical
 * path of every invalidation and of the read-your-writes watermark (BENCHMARKS.md). Doubling
 * keeps a held job to about ten queries per attempt.
 */
export const visibilityTimings = { pollMs: 100, firstStepMs: 1, maxStepMs: 16 } as const;

/** Some transactions of the job are committed in the WAL but not yet visible: put it off, do not fail it. */
export class NotVisibleYetError extends Error {
  readonly code = 'WALCACHE_NOT_VISIBLE_YET';
  constructor(readonly invisible: number) {
    super(`${invisible} transaction(s) of the job are not visible yet`);
    this.name = 'NotVisibleYetError';
  }
}

/**
 * Step 0: waits (briefly) until every transaction of the job is visible to new snapshots;
 * throws NotVisibleYetError when some still are not. Only then may the sequence step run:
 * an invalidation before that would let the next load (or the refresh) read the old row
 * and cache it with an `s0` above the invalidation's markers.
 */
export async function awaitVisible(
  db: XidQueryable,
  xids: readonly number[] | undefined,
  horizon?: VisibilityHorizon,
): Promise<void> {
  if (!xids || xids.length === 0) return;
  const deadline = Date.now() + visibilityTimings.pollMs;
  for (
    let step: number = visibilityTimings.firstStepMs;
    ;
    step = Math.min(step * 2, visibilityTimings.maxStepMs)
  ) {
    const invisible = await countInvisibleXids(db, xids, horizon);
    if (invisible === 0) return;
    if (Date.now() >= deadline) throw new NotVisibleYetError(invisible);
    await new Promise((r) => setTimeout(r, step));
  }
}

/** Validates a job payload; a bad one is a permanent failure with the reason. */
export function parseJob(data: unknown): InvalidationJob {
  const parsed = invalidationJobSchema.safeParse(data);
  if (!parsed.success)
    throw new InvalidJobError(
      `invalid invalidation job: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

/**
 * Runs one job: tags → keys → delete, then reload the keys whose resource asks for refresh
 * (plus those an earlier attempt failed to refresh). Throws on any failure so BullMQ retries;
 * invalidation is idempotent, so a retry repeats it harmlessly.
 */
export async function processJob(
  deps: ProcessorDeps,
  job: InvalidationJob,
  /** The queue's id of the job: names its cleanup journal on a Redis Cluster (invalidate.ts). */
  jobId?: string,
): Promise<ProcessResult> {
  // Timed: the cost of step 0 on the invalidation latency (BENCHMARKS.md, read-your-writes part).
  const visibilityStarted = performance.now();
  if (job.xids && deps.horizon.covers(job.xids)) deps.metrics.visibilityKnown.inc();
  else {
    try {
      await awaitVisible(deps.db, job.xids, deps.horizon);
    } finally {
      if (job.xids?.length)
        deps.metrics.visibilityCheck.observe((performance.now() - visibilityStarted) / 1000);
    }
  }
  const invalidateStarted = performance.now();
  const { keys } = await invalidateTags(deps.redis, deps.keys, job.tags, {
    ...(jobId === undefined ? {} : { journalId: jobId }),
    // A fallback finishes what its original left in its journal (a job that failed for good).
    ...(jobId?.startsWith(FALLBACK_PREFIX)
      ? { inheritedJournals: [jobId.slice(FALLBACK_PREFIX.length)] }
      : {}),
  });
  const refreshStarted = performance.now();
  deps.metrics.keysDeleted.inc(keys.length);
  let refreshed = 0;
  if (!job.deleteOnly) {
    const failed: string[] = [];
    let firstError: unknown;
    for (const key of new Set([...keys, ...(job.refreshKeys ?? [])])) {
      const resource = deps.resourceForKey(key);
      if (resource?.policy !== 'refresh') continue;
      const params = resource.paramsFromKey?.(key);
      if (params === undefined) continue;
      try {
        // Sequential on purpose: a job's refreshes must not burst the database pool; jobs
        // themselves already run `INVALIDATOR_CONCURRENCY` at a time.
        if ((await deps.cache.refresh(resource, params)).cached) refreshed += 1;
      } catch (error) {
        failed.push(key);
        firstError ??= error;
      }
    }
    deps.metrics.keysRefreshed.inc(refreshed);
    if (failed.length > 0) throw new RefreshFailedError(failed, firstError);
  }
  // A fallback job's commit time is its original's: it would skew the latency histogram.
  if (!job.deleteOnly) deps.metrics.latency.observe(Math.max(0, Date.now() - job.lastCommitMs) / 1000);
  return {
    deleted: keys.length,
    refreshed,
    ms: {
      visible: elapsedMs(visibilityStarted, invalidateStarted),
      invalidate: elapsedMs(invalidateStarted, refreshStarted),
      refresh: elapsedMs(refreshStarted),
    },
  };
}

/** Milliseconds between two `performance.now()` readings, to 0.01 ms (ProcessResult.ms). */
export function elapsedMs(from: number, to = performance.now()): number {
  return Math.round((to - from) * 100) / 100;
}

/** The fallback of job `x` has the id `fallback-x` (deterministic: a replay is deduplicated). */
export const FALLBACK_PREFIX = 'fallback-';

/**
 * The job a failed one is replaced by: the table-wide (epoch) tags of every table it named,
 * delete only. Coarser, but a stale key is worse than a cold cache.
 */
export function fallbackJob(job: InvalidationJob): InvalidationJob {
  // Keys whose refresh failed need nothing more: their values were deleted before the refresh.
  const tables = new Set(job.tags.map(tableOfTag).filter((t): t is string => t !== undefined));
  return {
    ...job,
    tags: [...tables].map(epochTag),
    refreshKeys: undefined,
    deleteOnly: true,
    enqueuedMs: Date.now(),
  };
}
