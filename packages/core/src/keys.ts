/**
 * Every Redis key walcache writes, built in one place. A value and its lease share a hash
 * tag (`{…}`) so the fill's compare-and-set Lua is valid on Redis Cluster. Tag sets need no
 * co-location (the protocol's ordering makes it correct); on a cluster the version markers
 * and their expiry index share the hash tag `{tv}` (`markerKeys`), so the bump, the prune
 * and the fill's version MGET each stay in one slot.
 */
export interface Keyspace {
  readonly prefix: string;
  value(resourceKey: string): string;
  /** What every value (and lease) key starts with: `value(k)` is this, `k` and `}`. */
  readonly valueHead: string;
  lease(resourceKey: string): string;
  /** What a lease key adds to its value key: `lease(k)` is `value(k)` and this. */
  readonly leaseSuffix: string;
  tagSet(tag: string): string;
  tagVersion(tag: string): string;
  readonly seq: string;
  /** The cache Redis generation the namespace was verified under (generation.ts). */
  readonly generation: string;
  /** Held by the one process that flushes the namespace for a new generation. */
  readonly generationLock: string;
  /** Pattern matching every tag set (the tag index sweeper walks them). */
  readonly tagSets: string;
  /** Held by the one process sweeping the tag index. */
  readonly sweepLock: string;
  /**
   * The read-your-writes watermark (watermark.ts), kept in the queue Redis beside the jobs
   * it is derived from: every commit whose end LSN is ≤ it has been invalidated.
   */
  readonly watermark: string;
  /** Completed intervals `(after, to]` not yet joined to the watermark (score after, member to). */
  readonly watermarkDone: string;
  /**
   * [watermark, watermarkDone] as the watermark scripts name them: one script touches both,
   * so on a Redis Cluster they share the hash tag `{wm}` (a key starting `prefix:{` would
   * read as a value). One server keeps the plain names, so an upgrade keeps its W.
   */
  watermarkKeys(clustered: boolean): readonly [string, string];
  /** The replication source (cluster, timeline) a CDC slot's cache is in sync with. */
  inSync(slotName: string): string;
  /** Rewritten at the end of every namespace flush: a change tells the warmers to pre-fill again. */
  readonly flushed: string;
  /** One warm-up's claim for one `flushed` marker: a single invalidator warms, the others skip. */
  warmClaim(marker: string): string;
  /** member = tag, score = ms when its version marker may be deleted. */
  readonly tagVersionExpiry: string;
  /**
   * The version markers and their expiry index as the protocol uses them. One server keeps
   * `tagVersion`/`tagVersionExpiry` (an upgrade keeps its markers); a Redis Cluster puts them
   * all under the hash tag `{tv}`: the bump writes a marker and its index entry in one script,
   * the prune deletes both, and a fill reads all its markers in one MGET. All marker traffic
   * then lands on one master; markers are small and only invalidations write them.
   */
  markerKeys(clustered: boolean): MarkerKeys;
  /**
   * The journal of one invalidation job on a Redis Cluster (invalidate.ts): the value keys
   * its attempt read, written before any SREM, so a retry still finds what an attempt that
   * stopped after its SREMs did not delete. Its own hash tag, one per job.
   */
  journal(jobId: string): string;
  /** Pattern matching everything this namespace wrote (admin flush only). */
  readonly everything: string;
}

export interface MarkerKeys {
  version(tag: string): string;
  /** What `version` puts before the tag (the prune script rebuilds marker keys from it). */
  readonly versionPrefix: string;
  readonly expiry: string;
}

const LEASE_SUFFIX = ':lease';

export function keyspace(prefix: string): Keyspace {
  const single: MarkerKeys = {
    version: (t) => `${prefix}:tagv:${t}`,
    versionPrefix: `${prefix}:tagv:`,
    expiry: `${prefix}:tagv-expiry`,
  };
  // `prefix:tagv{tv}:…`: the first `{…}` of a key is its hash tag, so a tag that itself holds
  // braces cannot move its marker to another slot.
  const clustered: MarkerKeys = {
    version: (t) => `${prefix}:tagv{tv}:${t}`,
    versionPrefix: `${prefix}:tagv{tv}:`,
    expiry: `${prefix}:tagv-expiry{tv}`,
  };
  return {
    prefix,
    value: (k) => `${prefix}:{${k}}`,
    valueHead: `${prefix}:{`,
    lease: (k) => `${prefix}:{${k}}${LEASE_SUFFIX}`,
    leaseSuffix: LEASE_SUFFIX,
    tagSet: (t) => `${prefix}:tag:${t}`,
    tagVersion: single.version,
    seq: `${prefix}:seq`,
    generation: `${prefix}:generation`,
    generationLock: `${prefix}:generation-lock`,
    tagSets: `${prefix}:tag:*`,
    watermark: `${prefix}:wm`,
    watermarkDone: `${prefix}:wm-done`,
    watermarkKeys: (clustered) =>
      clustered ? [`${prefix}:wm{wm}`, `${prefix}:wm-done{wm}`] : [`${prefix}:wm`, `${prefix}:wm-done`],
    sweepLock: `${prefix}:sweep-lock`,
    inSync: (slot) => `${prefix}:cdc:in-sync:${slot}`,
    flushed: `${prefix}:flushed`,
    warmClaim: (marker) => `${prefix}:warm-claim:${marker}`,
    tagVersionExpiry: single.expiry,
    markerKeys: (c) => (c ? clustered : single),
    journal: (jobId) => `${prefix}:journal{${jobId}}`,
    everything: `${prefix}:*`,
  };
}

/**
 * Keys that describe the namespace rather than cache anything: a flush keeps them. The
 * sequence and the watermark must never go backwards; the generation and the in-sync
 * markers stay true of an emptied namespace (deleting them would only make the next start flush again).
 */
export function isNamespaceState(ks: Keyspace, key: string): boolean {
  return (
    key === ks.seq ||
    key === ks.generation ||
    key === ks.generationLock ||
    key === ks.flushed ||
    ks.watermarkKeys(false).includes(key) ||
    ks.watermarkKeys(true).includes(key) ||
    key.startsWith(`${ks.prefix}:cdc:in-sync:`)
  );
}

/** Whether a key is a value or a lease (what eviction may drop; a flush deletes them last). */
export function isValueOrLease(ks: Keyspace, key: string): boolean {
  return key.startsWith(ks.valueHead) && (key.endsWith('}') || key.endsWith(`}${ks.leaseSuffix}`));
}

/** The resource key inside a value key (`wc:{book:42}` → `book:42`). */
export function resourceKeyOf(ks: Keyspace, valueKey: string): string | undefined {
  if (!valueKey.startsWith(ks.valueHead) || !valueKey.endsWith('}')) return undefined;
  return valueKey.slice(ks.valueHead.length, -1);
}
