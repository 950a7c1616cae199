import {
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
import { type Db, resourceForKey } from '@walcache/resources';
import type { Redis } from 'ioredis';
import type { InvalidatorMetrics } from './metrics.ts';

export interface ProcessorDeps {
  redis: Redis;
  keys: Keyspace;
  cache: ReadThroughCache<Db>;
  metrics: InvalidatorMetrics;
  logger: Logger;
}

export interface ProcessResult {
  deleted: number;
  refreshed: number;
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

/** Runs one job: tags → keys → delete, then reload the keys whose resource asks for refresh. */
export async function processJob(deps: ProcessorDeps, job: InvalidationJob): Promise<ProcessResult> {
  const { keys } = await invalidateTags(deps.redis, deps.keys, job.tags);
  let refreshed = 0;
  for (const key of keys) {
    const resource = resourceForKey(key);
    if (resource?.policy !== 'refresh') continue;
    const params = resource.paramsFromKey?.(key);
    if (params === undefined) continue;
    await deps.cache.refresh(resource, params);
    refreshed += 1;
  }
  deps.metrics.keysDeleted.inc(keys.length);
  deps.metrics.keysRefreshed.inc(refreshed);
  deps.metrics.latency.observe(Math.max(0, Date.now() - job.lastCommitMs) / 1000);
  return { deleted: keys.length, refreshed };
}

/**
 * The job a failed one is replaced by: the table-wide (epoch) tags of every table it named.
 * Coarser, but a stale key is worse than a cold cache.
 */
export function fallbackJob(job: InvalidationJob): InvalidationJob {
  const tables = new Set(job.tags.map(tableOfTag).filter((t): t is string => t !== undefined));
  return { ...job, tags: [...tables].map(epochTag), enqueuedMs: Date.now() };
}
