import { randomBytes } from 'node:crypto';
import { execPipeline } from './cache.ts';
import { isCluster, type RedisClient } from './connect.ts';
import { timings } from './constants.ts';
import { type Keyspace, type MarkerKeys, resourceKeyOf } from './keys.ts';
import { incrBumpTagVersionsLua, type WalcacheRedis, withCommands } from './scripts.ts';
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
/**
 * Commands in flight at once on a Redis Cluster, where a job's SMEMBERS, SREMs and UNLINKs
 * are single commands (their keys lie in many slots): enough to keep every master busy,
 * few enough that a job with 100 000 tags does not hold 100 000 promises at once.
 */
const CLUSTER_CHUNK = 1000;
/** Keys per UNLINK when an out-of-memory attempt unlinks from the invalidator (not in a script). */
const UNLINK_BATCH = 1000;
/**
 * Tag sets per cleanup script on one server. Each call blocks Redis while it runs; 1 000 sets
 * of a few members each take a few milliseconds, and a job of 100 000 tags is 100 calls.
 */
const CLEANUP_BATCH = 1000;

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
  /**
   * The job's identity (its queue job id): on a Redis Cluster it names the journal a retry of
   * the same job reads. Without one (a direct call) a cluster attempt journals under a
   * random name that no retry reads, which is what a caller without retries needs.
   */
  journalId?: string;
  /**
   * Journals of earlier jobs this one replaces (a fallback job names its original's): read
   * like its own, and deleted with it once done.
   */
  inheritedJournals?: readonly string[];
  /** Test seam (Redis Cluster): runs after the SREMs and before any lease or value is unlinked. */
  afterSrem?(): Promise<void> | void;
}

/**
 * Invalidates every value registered under any of `tags`. Idempotent, so a job replayed
 * after a crash does no harm. Errors are thrown, never swallowed: the job must retry.
 */
export async function invalidateTags(
  redis: RedisClient,
  keys: Keyspace,
  tags: readonly Tag[],
  options: InvalidateOptions = {},
): Promise<InvalidationResult> {
  const client = withCommands(redis);
  const clustered = isCluster(redis);
  const markers = keys.markerKeys(clustered);
  // Step 1: a new sequence, then a version marker per tag, before anything is deleted: a
  // fill that registers itself after our SMEMBERS sees the marker and refuses to cache.
  let seq = 0;
  let refused: unknown;
  const windowMs = options.windowMs ?? timings.tagVersionWindowMs;
  const bump = (batch: readonly Tag[]) =>
    client.walcacheBumpTagVersions(
      batch.length + 1,
      markers.expiry,
      ...batch.map((t) => markers.version(t)),
      seq,
      windowMs,
      ...batch,
    );
  // One server, no test seam between the steps: one script for a job of one marker batch
  // (invalidateOnce), else the steps go out back to back (sendSteps).
  const sent = !clustered && !options.afterIncrement && !options.afterVersions && tags.length > 0;
  if (sent && tags.length <= MARKER_BATCH) {
    try {
      return await invalidateOnce(client, keys, markers, tags, windowMs);
    } catch (error) {
      if (!isOutOfMemory(error)) throw error;
      // Refused at its INCR, before any effect: the values go as below, then the attempt fails.
      await cleanupOnOneServer(redis, keys, tags, true);
      throw error;
    }
  }
  let pruned: Promise<void> | undefined;
  try {
    if (sent) {
      const steps = sendSteps(client, keys, markers, tags, windowMs);
      pruned = steps.pruned;
      seq = await steps.seq;
      for (let i = MARKER_BATCH; i < tags.length; i += MARKER_BATCH)
        await bump(tags.slice(i, i + MARKER_BATCH));
    } else {
      seq = await client.incr(keys.seq);
      await options.afterIncrement?.(seq);
      if (tags.length === 0) return { seq, keys: [] };
      for (let i = 0; i < tags.length; i += MARKER_BATCH) await bump(tags.slice(i, i + MARKER_BATCH));
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
  const valueKeys = clustered
    ? await cleanupAcrossSlots(redis, keys, tags, refused !== undefined, options)
    : await cleanupOnOneServer(redis, keys, tags, refused !== undefined);
  if (refused !== undefined) {
    await pruned?.catch(() => undefined);
    throw refused;
  }
  await (pruned ?? pruneMarkers(client, markers));
  return { seq, keys: resourceKeysOf(keys, valueKeys) };
}

/**
 * Step 1 on one server as one round trip: the INCR with the first batch of markers (one
 * script) and the prune of expired markers behind it; step 2 (one more script) is sent once
 * the markers are answered. Before this, the key was gone after four round trips and the job
 * done after five; now after two.
 */
function sendSteps(
  redis: RedisClient,
  keys: Keyspace,
  markers: MarkerKeys,
  tags: readonly Tag[],
  windowMs: number,
): { seq: Promise<number>; pruned: Promise<void> } {
  const client = withCommands(redis);
  const first = tags.slice(0, MARKER_BATCH);
  // EVAL, not a defined command's EVALSHA: a Redis that answers NOSCRIPT (its script cache
  // flushed) gets the script again only after the commands sent behind it had run. EVAL runs
  // where it was sent; Redis hashes its body (well under a microsecond).
  const seq = redis
    .eval(
      incrBumpTagVersionsLua,
      first.length + 2,
      keys.seq,
      markers.expiry,
      ...first.map((t) => markers.version(t)),
      windowMs,
      ...first,
    )
    .then(Number);
  const pruned = pruneMarkers(client, markers);
  // Whichever fails first fails the attempt; the prune's rejection is observed there too.
  pruned.catch(() => undefined);
  return { seq, pruned };
}

/**
 * A job of up to one marker batch on one server, whole, in one script (scripts.ts,
 * invalidateOnceLua): one round trip. The prune goes on by itself only when its one batch
 * was full.
 */
async function invalidateOnce(
  client: WalcacheRedis,
  keys: Keyspace,
  markers: MarkerKeys,
  tags: readonly Tag[],
  windowMs: number,
): Promise<InvalidationResult> {
  const [seq, values, pruned] = await client.walcacheInvalidateOnce(
    2 + 2 * tags.length,
    keys.seq,
    markers.expiry,
    ...tags.map((t) => markers.version(t)),
    ...tags.map((t) => keys.tagSet(t)),
    tags.length,
    windowMs,
    keys.valueHead,
    keys.leaseSuffix,
    markers.versionPrefix,
    PRUNE_BATCH,
    ...tags,
  );
  // The script pruned one batch: the job's bound of PRUNE_MAX_CALLS counts it.
  if (pruned >= PRUNE_BATCH) await pruneMarkers(client, markers, PRUNE_MAX_CALLS - 1);
  return { seq: Number(seq), keys: resourceKeysOf(keys, new Set(values)) };
}

/** The resource keys (`book:42`) of the value keys deleted; leases and other members are not. */
function resourceKeysOf(keys: Keyspace, valueKeys: ReadonlySet<string>): string[] {
  return [...valueKeys].map((k) => resourceKeyOf(keys, k)).filter((k): k is string => k !== undefined);
}

function readTagSets(client: RedisClient, keys: Keyspace, tags: readonly Tag[]): Promise<string[][]> {
  const read = client.pipeline();
  for (const tag of tags) read.smembers(keys.tagSet(tag));
  return execPipeline(read) as Promise<string[][]>;
}

/** Markers whose window passed are deleted by the job rather than by TTL (see scripts.ts). */
async function pruneMarkers(
  client: WalcacheRedis,
  markers: MarkerKeys,
  calls: number = PRUNE_MAX_CALLS,
): Promise<void> {
  for (let call = 0; call < calls; call++) {
    const pruned = await client.walcachePruneTagVersions(markers.expiry, markers.versionPrefix, PRUNE_BATCH);
    if (pruned < PRUNE_BATCH) break;
  }
}

/**
 * Step 2 on one server: one script per `CLEANUP_BATCH` tags (scripts.ts), each reading its
 * sets and deleting their members' leases, the members and the sets with nothing in between.
 * Each runs whole or, if a command in it is refused, leaves its sets for the retry. Under
 * OOM (see invalidateTags) the attempt unlinks without emptying the sets, so its retry
 * finds the keys again. Returns the value keys it deleted.
 */
async function cleanupOnOneServer(
  redis: RedisClient,
  keys: Keyspace,
  tags: readonly Tag[],
  outOfMemory: boolean,
): Promise<Set<string>> {
  const client = withCommands(redis);
  if (!outOfMemory) {
    const found = await Promise.all(
      [...chunks(tags, CLEANUP_BATCH)].map((part) =>
        client.walcacheCleanupTagSets(
          part.length,
          ...part.map((t) => keys.tagSet(t)),
          keys.valueHead,
          keys.leaseSuffix,
        ),
      ),
    );
    return new Set(found.flat());
  }
  const members = await readTagSets(client, keys, tags);
  const valueKeys = new Set<string>(members.flat());
  const values = [...valueKeys];
  const cleanup = client.pipeline();
  for (const part of chunks(leasesOf(keys, values), UNLINK_BATCH)) cleanup.unlink(...part);
  for (const part of chunks(values, UNLINK_BATCH)) cleanup.unlink(...part);
  if (valueKeys.size > 0) await execPipeline(cleanup);
  return valueKeys;
}

/**
 * Step 2 on a Redis Cluster, where no transaction spans the tag sets, leases and values (each
 * in its own slot). So the attempt first records every value key it read in the job's
 * journal (one key, its own slot), and only then SREMs: an attempt that stops after some
 * SREMs (a crash, a failover, a timeout) leaves its retry the journal, which names what the
 * emptied sets no longer do. Then every SREM is answered before any lease is unlinked, and
 * every lease before any value: the order the one-server transaction keeps, held per key
 * across slots (a fill whose SADD our SREM undid took its lease before that SADD, so the
 * lease UNLINK reaches it). The journal has no TTL, like the markers: under `volatile-lru`
 * a key with a TTL may be evicted, and a lost journal is a lost invalidation. The job
 * deletes it when done; a job that fails for good leaves it to its fallback job, which
 * inherits it.
 */
async function cleanupAcrossSlots(
  client: RedisClient,
  keys: Keyspace,
  tags: readonly Tag[],
  outOfMemory: boolean,
  options: InvalidateOptions,
): Promise<Set<string>> {
  const journal = keys.journal(options.journalId ?? `once-${randomBytes(9).toString('base64url')}`);
  const inherited = (options.inheritedJournals ?? []).map((id) => keys.journal(id));
  const members = await inChunks(tags, (tag) => client.smembers(keys.tagSet(tag)));
  const valueKeys = new Set<string>(members.flat());
  for (const name of [journal, ...inherited]) for (const k of await client.smembers(name)) valueKeys.add(k);
  if (valueKeys.size > 0 && !outOfMemory) {
    // Under OOM the SADD would be refused; that attempt removes no member (below), so its
    // retry needs no journal.
    for (const part of chunks([...valueKeys], CLUSTER_CHUNK)) await client.sadd(journal, ...part);
    const removals = tags.map((tag, i) => [tag, members[i]!] as const).filter(([, list]) => list.length > 0);
    await inChunks(removals, ([tag, list]) => client.srem(keys.tagSet(tag), ...list));
    await options.afterSrem?.();
  }
  await inChunks(leasesOf(keys, [...valueKeys]), (lease) => client.unlink(lease));
  await inChunks([...valueKeys], (valueKey) => client.unlink(valueKey));
  // Only once every value is gone: until then a retry must still find them here.
  if (!outOfMemory) for (const name of [journal, ...inherited]) await client.unlink(name);
  return valueKeys;
}

/** The lease of each value key (a key that names no resource has none). */
function leasesOf(keys: Keyspace, valueKeys: readonly string[]): string[] {
  return valueKeys.flatMap((k) => {
    const resourceKey = resourceKeyOf(keys, k);
    return resourceKey === undefined ? [] : [keys.lease(resourceKey)];
  });
}

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Runs `fn` on every item, `CLUSTER_CHUNK` at a time, every chunk answered before the next. */
async function inChunks<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (const part of chunks(items, CLUSTER_CHUNK)) results.push(...(await Promise.all(part.map(fn))));
  return results;
}

/** Redis refused a write because it is at `maxmemory` and may not evict (`-OOM …`). */
function isOutOfMemory(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError' && error.message.startsWith('OOM');
}
