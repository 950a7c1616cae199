import type { Redis } from 'ioredis';
import { execPipeline } from './cache.ts';
import { timings } from './constants.ts';
import { type Keyspace, resourceKeyOf } from './keys.ts';
import { withCommands } from './scripts.ts';
import type { Tag } from './tags.ts';

export interface InvalidationResult {
  seq: number;
  /** Resource keys (`article:42`) whose values were deleted. */
  keys: string[];
}

export interface InvalidateOptions {
  now?: () => number;
  /** Test seam: runs after the version markers are set and before the tag sets are read. */
  afterVersions?(): Promise<void> | void;
}

/**
 * Invalidates every value registered under any of `tags`. Idempotent, so a job replayed
 * after a crash does no harm. Errors are thrown, never swallowed: the job must retry.
 */
export async function invalidateTags(
  redis: Redis,
  keys: Keyspace,
  tags: readonly Tag[],
  options: InvalidateOptions = {},
): Promise<InvalidationResult> {
  const now = options.now ?? Date.now;
  const client = withCommands(redis);
  // Step 1: a new sequence and a version marker per tag, before anything is deleted: a fill
  // that registers itself after our SMEMBERS sees the marker and refuses to cache.
  const seq = await client.incr(keys.seq);
  if (tags.length === 0) return { seq, keys: [] };
  const markers = client.pipeline();
  const expiresAt = now() + timings.tagVersionWindowMs;
  for (const tag of tags) {
    markers.set(keys.tagVersion(tag), seq);
    markers.zadd(keys.tagVersionExpiry, expiresAt, tag);
  }
  await execPipeline(markers);
  await options.afterVersions?.();

  // Step 2: resolve tags to keys, delete values and their leases (an in-flight fill then
  // loses its compare-and-set), and remove exactly the members read: a fill that added
  // itself meanwhile stays registered.
  const read = client.pipeline();
  for (const tag of tags) read.smembers(keys.tagSet(tag));
  const members = (await execPipeline(read)) as string[][];
  const valueKeys = new Set<string>();
  const cleanup = client.pipeline();
  members.forEach((list, i) => {
    if (list.length === 0) return;
    for (const k of list) valueKeys.add(k);
    cleanup.srem(keys.tagSet(tags[i]!), ...list);
  });
  // Order matters: SREM, then the lease, then the value. A fill that registered itself
  // between our SMEMBERS and SREM lost its registration; it either wrote before the value
  // is deleted below, or finds its lease gone and cannot write at all.
  for (const valueKey of valueKeys) {
    const resourceKey = resourceKeyOf(keys, valueKey);
    if (resourceKey) cleanup.unlink(keys.lease(resourceKey));
    cleanup.unlink(valueKey);
  }
  if (valueKeys.size > 0) await execPipeline(cleanup);

  // Markers whose window passed are deleted here rather than by TTL (see scripts.ts).
  await client.walcachePruneTagVersions(keys.tagVersionExpiry, now(), `${keys.prefix}:tagv:`, 1000);
  return {
    seq,
    keys: [...valueKeys].map((k) => resourceKeyOf(keys, k)).filter((k): k is string => k !== undefined),
  };
}
