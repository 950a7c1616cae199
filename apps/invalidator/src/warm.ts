import type { Keyspace, ReadThroughCache, RedisClient } from '@walcache/core';
import type { Counter, Logger } from '@walcache/observability';
import { type CompiledResource, type Db, type WarmReport, warmCache } from '@walcache/resources';

/**
 * Why 1 s: a flush is noticed within a second (only readers within that second find the
 * values cold); a poll is one GET.
 */
const POLL_MS = 1_000;
/**
 * Why 60 s: longer than a warm-up of the declared values takes (1000 values by default: ten
 * MGETs and ten queries), so a second invalidator never warms the same flush; a claim left by
 * an invalidator that died mid-way only delays nothing but that one warm-up.
 */
const CLAIM_MS = 60_000;
/** Why 1 s between progress lines: a warm-up of 100 000 values is a line a second, not a thousand. */
const PROGRESS_LOG_MS = 1_000;

/** What a warm-up reports to /metrics. */
export interface WarmMetrics {
  warmups: Counter<'outcome'>;
  warmedValues: Counter<'resource' | 'outcome'>;
}

export interface WarmerDeps {
  cache: ReadThroughCache<Db>;
  db: Db;
  /** The cache Redis. */
  redis: RedisClient;
  keys: Keyspace;
  resources: readonly CompiledResource[];
  logger: Logger;
  metrics?: WarmMetrics;
  pollMs?: number;
}

/**
 * Pre-fills the resources that declare `warm` after this process starts and after every
 * namespace flush (whoever flushed: the CDC after a lost slot, `walcache flush --all`, a cache
 * Redis of another generation). A flush rewrites `keys.flushed` once it is complete; this
 * polls it, and one invalidator per marker (a claim in Redis) runs the warm-up.
 */
export class Warmer {
  /** Warm-ups this process ran to the end. */
  runs = 0;
  lastReports: WarmReport[] = [];
  /** The `flushed` marker the last warm-up of this process ran for (`null`: none written yet). */
  warmedFor: string | null | undefined;
  private seen: string | null | undefined;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly deps: WarmerDeps) {}

  start(): void {
    this.schedule(0);
  }

  async close(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.current;
  }

  private schedule(ms: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.current = this.tick()
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'warm-up check failed; retrying'))
        .finally(() => this.schedule(this.deps.pollMs ?? POLL_MS));
    }, ms);
  }

  private async tick(): Promise<void> {
    const { redis, keys, logger } = this.deps;
    const marker = await redis.get(keys.flushed);
    if (this.seen !== undefined && marker === this.seen) return;
    const reason = this.seen === undefined ? 'start' : 'namespace flushed';
    const claimed = (await redis.set(keys.warmClaim(marker ?? 'none'), '1', 'PX', CLAIM_MS, 'NX')) === 'OK';
    this.seen = marker;
    if (!claimed) {
      logger.debug({ reason }, 'another invalidator warms the cache');
      return;
    }
    await this.warm(reason);
    this.warmedFor = marker;
  }

  private async warm(reason: string): Promise<void> {
    const { cache, db, resources, logger } = this.deps;
    const started = performance.now();
    logger.info({ reason, resources: resources.filter((r) => r.warm).map((r) => r.name) }, 'warm-up started');
    let lastLine = 0;
    const reports = await warmCache(cache, db, resources, {
      stop: () => this.stopping,
      onProgress: (p) => {
        const now = performance.now();
        if (p.done < p.total && now - lastLine < PROGRESS_LOG_MS) return;
        lastLine = now;
        logger.info(p, `warming ${p.resource}: ${p.done}/${p.total}`);
      },
    });
    this.lastReports = reports;
    this.runs += 1;
    const ms = Math.round(performance.now() - started);
    const stopped = reports.some((r) => r.stopped);
    this.deps.metrics?.warmups.inc({ outcome: stopped ? 'stopped' : 'done' });
    for (const r of reports) {
      this.deps.metrics?.warmedValues.inc({ resource: r.resource, outcome: 'hit' }, r.hits);
      this.deps.metrics?.warmedValues.inc({ resource: r.resource, outcome: 'loaded' }, r.loaded);
    }
    if (stopped)
      logger.warn(
        { reports, ms },
        'warm-up stopped early: the cache Redis was unavailable or the process stopping',
      );
    else logger.info({ reports, ms }, 'warm-up done');
  }
}
