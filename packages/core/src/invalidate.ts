import type { Redis } from 'ioredis';
import { execPipeline } from './cache.ts';
import { timings } from './constants.ts';
import { type Keyspace, resourceKeyOf } from './keys.ts';
import { withCommands } from './scripts.ts';
import type { Tag } from './tags.ts';

/**
 * Tags per version-marker script call. Why 500: one call is atomic and blocks Redis while it
 * runs; 500 SET/ZADD pairs take well under a millisecond, and a job with 100 000 tags still
 * needs only 200 round trips.
 */
const MARKER_BATCH = 500;
/**
 * Expired markers deleted per script call, and calls per job at most. One call stays well
 * under a millisecond of Redis time; up to 10 per job lets pruning keep up with a write rate
 * where each job expires more markers than one batch, while a job's own cost stays bounded.
 */
const PRUNE_BATCH = 1000;
const PRUNE_MAX_CALLS = 10;

export interface InvalidationResult {
  seq: number;
  /** Resource keys (`book:42`) whose values were deleted. */
  keys: string[];
}

export interface InvalidateOptions {
  /** Test seam: the markers' window (default `timings.tagVersionWindowMs`), on Redis' clock. */
  windowMs?: number;
  /** Test seam: runs after the sequence is incremented and before the version markers are written. */
  afterIncrement?(seq: number): Promise<void> | void;
  /** Test seam: runs after the version markers are set and before the tag sets are read. */
  afterVersions?(seq: number): Promise<void> | void;
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
  const client = withCommands(redis);
  // Step 1: a new sequence, then a version marker per tag, before anything is deleted: a
  // fill that registers itself after our SMEMBERS sees the marker and refuses to cache.
  let seq = 0;
  let refused: unknown;
  try {
    seq = await client.incr(keys.seq);
    await options.afterIncrement?.(seq);
    if (tags.length === 0) return { seq, keys: [] };
    const windowMs = options.windowMs ?? timings.tagVersionWindowMs;
    for (let i = 0; i < tags.length; i += MARKER_BATCH) {
      const batch = tags.slice(i, i + MARKER_BATCH);
      await client.walcacheBumpTagVersions(
        batch.length + 1,
        keys.tagVersionExpiry,
        ...batch.map((t) => keys.tagVersion(t)),
        seq,
        windowMs,
        ...batch,
      );
    }
  } catch (error) {
    // A Redis at `maxmemory` without eviction refuses INCR and the marker script but still
    // answers GETs: leaving the values would serve them stale until the job succeeds. So the
    // values are deleted anyway (DEL, SREM and reads are allowed under OOM, and free memory),
    // then the attempt fails and its retry writes the markers. A fill racing this attempt
    // could cache what it loaded before the commit; the retry finds it in the tag set.
    if (!isOutOfMemory(error) || tags.length === 0) throw error;
    refused = error;
  }
  if (refused === undefined) await options.afterVersions?.(seq);

  // Step 2: resolve tags to keys, delete values and their leases (an in-flight fill then
  // loses its compare-and-set), and remove exactly the members read: a fill that added
  // itself meanwhile stays registered.
  const read = client.pipeline();
  for (const tag of tags) read.smembers(keys.tagSet(tag));
  const members = (await execPipeline(read)) as string[][];
  const valueKeys = new Set<string>();
  // One MULTI/EXEC: the SREMs and the UNLINKs land together or not at all. As separate
  // commands, an attempt whose SREMs landed but not its UNLINKs (a crash, a failover, an
  // aborted pipeline, a refused command) left the retry an empty set and the value cached.
  // Redis never applies half a transaction: not in memory, not in the AOF (a truncated
  // MULTI is dropped on load), not on a replica (it is replicated as one block).
  // Under OOM Redis refuses to queue a transaction; that attempt unlinks without SREM (a plain
  // pipeline): the members stay, so its retry finds the keys again and removes them.
  const cleanup = refused === undefined ? client.multi() : client.pipeline();
  members.forEach((list, i) => {
    if (list.length === 0) return;
    for (const k of list) valueKeys.add(k);
    if (refused === undefined) cleanup.srem(keys.tagSet(tags[i]!), ...list);
  });
  // Order matters: every SREM, then the leases, then the values (one connection keeps this
  // order). A fill whose SADD was undone by our SREM took its lease before that SADD, so the
  // lease UNLINK below reaches it: it either wrote before the value UNLINK, or cannot write.
  for (const valueKey of valueKeys) {
    const resourceKey = resourceKeyOf(keys, valueKey);
    if (resourceKey) cleanup.unlink(keys.lease(resourceKey));
  }
  for (const valueKey of valueKeys) cleanup.unlink(valueKey);
  if (valueKeys.size > 0) await execPipeline(cleanup);
  if (refused !== undefined) throw refused;

  // Markers whose window passed are deleted here rather than by TTL (see scripts.ts).
  for (let call = 0; call < PRUNE_MAX_CALLS; call++) {
    const pruned = await client.walcachePruneTagVersions(
      keys.tagVersionExpiry,
      `${keys.prefix}:tagv:`,
      PRUNE_BATCH,
    );
    if (pruned < PRUNE_BATCH) break;
  }
  return {
    seq,
    keys: [...valueKeys].map((k) => resourceKeyOf(keys, k)).filter((k): k is string => k !== undefined),
  };
}

/** Redis refused a write because it is at `maxmemory` and may not evict (`-OOM …`). */
function isOutOfMemory(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError' && error.message.startsWith('OOM');
}
