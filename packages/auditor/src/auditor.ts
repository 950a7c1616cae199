import {
  bodyOf,
  CorruptEntryError,
  decodeEntry,
  keyspace,
  mastersOf,
  type RedisClient,
  resourceKeyOf,
} from '@walcache/core';
import { Counter, Histogram, type Logger, type Registry } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import type { Queue } from 'bullmq';
import { type ResourceForKey, targetOfKey } from './params.ts';
import { pipelinePassed } from './pipeline.ts';
import { currentInsertLsn } from './slot.ts';
import { type AuditOutcome, recordAudit } from './stats.ts';

export interface AuditorDeps {
  /** The deployment's compiled resources: which resource a key belongs to. */
  resourceForKey: ResourceForKey;
  /** The cache Redis (values are read from it, a stale one is deleted from it). */
  cacheRedis: RedisClient;
  /** Where the shared totals live: the queue Redis (see stats.ts). */
  statsRedis: RedisClient;
  db: Db;
  /** The invalidation queue: a mismatch waits until every job up to its load is processed. */
  queue: Queue;
  cachePrefix: string;
  slotName: string;
  logger: Logger;
  registry?: Registry;
}

export interface AuditorOptions {
  /**
   * Pause between rounds. 1 s × 5 keys = 5 point reads a second per invalidator: invisible
   * next to real traffic, yet about 430 000 checks a day.
   */
  intervalMs?: number;
  keysPerRound?: number;
  /**
   * How long a mismatch may wait for the CDC and the workers to catch up with its load. The
   * CDC acknowledges at least once per heartbeat (10 s by default); a minute covers a few
   * heartbeats and a retry, longer means the pipeline is stalled and that is reported as
   * `unresolved`, not as stale.
   */
  resolveTimeoutMs?: number;
  /** Delete a value found stale (only if it is still byte-identical): the auditor then also heals. */
  repair?: boolean;
}

/** How long stop() waits for the round in progress (it aborts its own waits at once). */
const STOP_WAIT_MS = 5_000;
/** How often a pending mismatch re-checks the slot and the queue. 100 ms: a few cheap reads. */
const RESOLVE_POLL_MS = 100;
/** SCAN batch size: how many keys one SCAN call may return; one batch feeds several rounds. */
const SCAN_COUNT = 200;

/** Deletes a key only if it still holds the value that was judged stale. */
const deleteIfUnchangedLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0`;

export interface AuditorMetrics {
  checked: Counter<'resource' | 'outcome'>;
  stale: Counter<'resource'>;
  staleAge: Histogram<'resource'>;
  errors: Counter;
  repaired: Counter;
}

export function createAuditorMetrics(registry: Registry): AuditorMetrics {
  const registers = [registry];
  return {
    checked: new Counter({
      name: 'walcache_auditor_checked_total',
      help: 'Cached values the auditor compared with Postgres, by outcome (consistent, stale, pending, unresolved)',
      labelNames: ['resource', 'outcome'] as const,
      registers,
    }),
    stale: new Counter({
      name: 'walcache_auditor_stale_total',
      help: 'Cached values found stale with no invalidation pending or in flight for them',
      labelNames: ['resource'] as const,
      registers,
    }),
    staleAge: new Histogram({
      name: 'walcache_auditor_stale_age_seconds',
      help: 'Age (now − stored at) of the values found stale',
      labelNames: ['resource'] as const,
      buckets: [1, 10, 60, 300, 900, 3600, 6 * 3600, 86400],
      registers,
    }),
    errors: new Counter({
      name: 'walcache_auditor_errors_total',
      help: 'Audit rounds that failed (Redis or Postgres unavailable)',
      registers,
    }),
    repaired: new Counter({
      name: 'walcache_auditor_repaired_total',
      help: 'Stale values the auditor deleted',
      registers,
    }),
  };
}

export interface CheckResult {
  key: string;
  outcome: AuditOutcome | 'gone' | 'skipped';
}

/**
 * The consistency auditor (a "cache inspector"): samples cached values at a low rate,
 * reloads each from Postgres and compares the bytes. A mismatch is counted as stale only
 * after every change up to the reload has been streamed, enqueued and processed and the
 * very same value is still cached: in-flight invalidations are never counted as errors.
 */
export class Auditor {
  private readonly keys;
  private readonly metrics: AuditorMetrics | undefined;
  private readonly options: Required<AuditorOptions>;
  private cursor = '0';
  /** Which master the walk is on (a Redis Cluster's masters one after another; one server: 0). */
  private node = 0;
  private buffer: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Set by stop(): a round in progress gives up instead of waiting for the pipeline. */
  private aborting = false;

  constructor(
    private readonly deps: AuditorDeps,
    options: AuditorOptions = {},
  ) {
    this.keys = keyspace(deps.cachePrefix);
    this.metrics = deps.registry ? createAuditorMetrics(deps.registry) : undefined;
    this.options = {
      intervalMs: options.intervalMs ?? 1_000,
      keysPerRound: options.keysPerRound ?? 5,
      resolveTimeoutMs: options.resolveTimeoutMs ?? 60_000,
      repair: options.repair ?? true,
    };
    deps.cacheRedis.defineCommand('walcacheAuditDeleteIfUnchanged', {
      numberOfKeys: 1,
      lua: deleteIfUnchangedLua,
    });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.aborting = false;
    this.schedule();
  }

  /** Stops sampling and waits for the round in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.aborting = true;
    clearTimeout(this.timer);
    // Bounded: a round blocked on a dead Redis must not hold up the process's shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.metrics?.errors.inc();
          this.deps.logger.warn({ err: error }, 'audit round failed; retrying next round');
        })
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** One round: the next few keys of the SCAN walk. Exposed for tests and the CLI. */
  async round(): Promise<CheckResult[]> {
    const results: CheckResult[] = [];
    for (const key of await this.nextKeys(this.options.keysPerRound)) {
      if (this.aborting) break;
      results.push(await this.check(key));
    }
    return results;
  }

  private async nextKeys(n: number): Promise<string[]> {
    // One SCAN per batch; the cursor is kept between rounds so the walk covers the whole
    // keyspace over time instead of re-reading its start. A full pass wraps to '0'.
    // On a Redis Cluster the walk goes through every master in turn: a SCAN sent to the
    // Cluster object would read one node only.
    if (this.buffer.length === 0) {
      const nodes = mastersOf(this.deps.cacheRedis);
      // A Cluster that has not connected yet knows no master: nothing to walk this round.
      const node = nodes[this.node % nodes.length];
      if (!node) return [];
      const [next, batch] = await node.scan(
        this.cursor,
        'MATCH',
        `${this.keys.prefix}:{*}`,
        'COUNT',
        SCAN_COUNT,
      );
      this.cursor = next;
      if (next === '0') this.node = (this.node + 1) % nodes.length;
      this.buffer = batch;
    }
    return this.buffer.splice(0, n);
  }

  /** Audits one value key (`wc:{book:42}`). */
  async check(valueKey: string): Promise<CheckResult> {
    const resourceKey = resourceKeyOf(this.keys, valueKey);
    const target = resourceKey ? targetOfKey(resourceKey, this.deps.resourceForKey) : undefined;
    if (!resourceKey || !target) return { key: valueKey, outcome: 'skipped' };
    const raw = await this.deps.cacheRedis.getBuffer(valueKey);
    if (!raw) return { key: valueKey, outcome: 'gone' };
    let entry: ReturnType<typeof decodeEntry>;
    try {
      entry = decodeEntry(raw);
    } catch (error) {
      if (!(error instanceof CorruptEntryError)) throw error;
      this.deps.logger.warn({ key: valueKey, err: error }, 'auditor: undecodable cache entry');
      return { key: valueKey, outcome: 'skipped' };
    }
    const value: unknown = await target.resource.load(this.deps.db, target.params);
    const fresh = bodyOf(value);
    let outcome: AuditOutcome;
    if (fresh.equals(entry.body)) {
      outcome = 'consistent';
    } else {
      // Every commit our load saw lies below this LSN. Once the CDC acknowledged past it and
      // no job starting at or below it is left, every invalidation that could remove the
      // cached value has run: if the same bytes are still cached, they are stale.
      const loadedAt = await currentInsertLsn(this.deps.db);
      const drained = await this.waitForPipeline(loadedAt);
      if (this.aborting) return { key: valueKey, outcome: 'skipped' };
      if (!drained) outcome = 'unresolved';
      else {
        const now = await this.deps.cacheRedis.getBuffer(valueKey);
        outcome = now?.equals(raw) ? 'stale' : 'pending';
      }
    }
    const resource = target.resource.name;
    this.metrics?.checked.inc({ resource, outcome });
    await recordAudit(this.deps.statsRedis, this.deps.cachePrefix, outcome, resourceKey);
    if (outcome === 'stale') {
      const ageSeconds = Math.max(0, Date.now() - entry.storedAtMs) / 1000;
      this.metrics?.stale.inc({ resource });
      this.metrics?.staleAge.observe({ resource }, ageSeconds);
      this.deps.logger.error(
        { key: resourceKey, tags: entry.tags, version: entry.version, ageSeconds, etag: entry.etag },
        'auditor: stale cache entry (no invalidation pending for it)',
      );
      if (this.options.repair) {
        const client = this.deps.cacheRedis as RedisClient & {
          walcacheAuditDeleteIfUnchanged(key: string, value: Buffer): Promise<number>;
        };
        if ((await client.walcacheAuditDeleteIfUnchanged(valueKey, raw)) === 1) this.metrics?.repaired.inc();
      }
    } else if (outcome === 'unresolved') {
      this.deps.logger.warn(
        { key: resourceKey, timeoutMs: this.options.resolveTimeoutMs },
        'auditor: mismatch not resolved in time (is the CDC streaming and are workers running?)',
      );
    }
    return { key: valueKey, outcome };
  }

  /** True once the slot is acknowledged past `lsn` and no pending job starts at or below it. */
  private async waitForPipeline(lsn: string): Promise<boolean> {
    const deadline = Date.now() + this.options.resolveTimeoutMs;
    while (Date.now() < deadline) {
      if (this.aborting) return false;
      if (await pipelinePassed(this.deps.db, this.deps.queue, this.deps.slotName, lsn)) return true;
      await new Promise((r) => setTimeout(r, RESOLVE_POLL_MS));
    }
    return false;
  }
}
