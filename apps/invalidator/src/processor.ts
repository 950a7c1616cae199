import {
  type AnyResource,
  epochTag,
  type InvalidationJob,
  InvalidJobError,
  invalidateTags,
  invalidationJobSchema,
  type Keyspace,
  type ReadThroughCache,
  tableOfTag,
} from '@walcache/core';
import type { Logger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import type { Redis } from 'ioredis';
import type { InvalidatorMetrics } from './metrics.ts';

export interface ProcessorDeps {
  redis: Redis;
  keys: Keyspace;
  cache: ReadThroughCache<Db>;
  metrics: InvalidatorMetrics;
  logger: Logger;
  /** The resource a cache key belongs to (the deployment's registry). */
  resourceForKey(key: string): AnyResource<Db> | undefined;
}

export interface ProcessResult {
  deleted: number;
  refreshed: number;
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
export async function processJob(deps: ProcessorDeps, job: InvalidationJob): Promise<ProcessResult> {
  const { keys } = await invalidateTags(deps.redis, deps.keys, job.tags);
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
  return { deleted: keys.length, refreshed };
}

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
