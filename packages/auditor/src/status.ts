import {
  keyspace,
  lsnToBigInt,
  type RedisClient,
  readWatermark,
  watermarkLsn,
  withTimeout,
} from '@walcache/core';
import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import {
  type FailedJobSummary,
  invalidationLatency,
  type LatencySummary,
  type QueueCounts,
  readQueueCounts,
  recentFailedJobs,
} from './queue.ts';
import { currentInsertLsn, readSlot, type SlotInfo } from './slot.ts';
import { type AuditorTotals, readAuditorTotals } from './stats.ts';

/** Cache lookups by outcome, as counted by an API process (its own since it started). */
export interface CacheStats {
  hits: number;
  misses: number;
  bypasses: number;
  /** hits / all lookups, null before the first lookup. */
  hitRatio: number | null;
  /** Where the numbers come from (e.g. "this api process since start"). */
  source: string;
}

/** A section that could not be read carries the reason instead of its data. */
export type Section<T> = T | { error: string };

/** The read-your-writes watermark and how far the WAL is ahead of it. */
export interface WatermarkStatus {
  /** Every commit ending at or before it is invalidated; null before the CDC set its base. */
  lsn: string | null;
  currentWalLsn: string;
  /** WAL bytes written since; a token this far ahead waits (or is answered from Postgres). */
  behindBytes: number | null;
}

export interface StatusDocument {
  generatedAt: string;
  queue: Section<QueueCounts & { name: string; failed: { count: number; recent: FailedJobSummary[] } }>;
  cdc: Section<SlotInfo & { connected: boolean }>;
  invalidation: Section<LatencySummary>;
  cache: Section<CacheStats>;
  auditor: Section<AuditorTotals>;
  watermark: Section<WatermarkStatus>;
}

export interface StatusDeps<DB> {
  queue: Queue;
  /** The queue Redis, where the auditor keeps its totals. */
  queueRedis: RedisClient;
  db: Kysely<DB>;
  slotName: string;
  cachePrefix: string;
  cacheStats?: () => Promise<CacheStats>;
  /** Window of the latency quantiles. 5 minutes: enough jobs for a p99, recent enough to act on. */
  latencyWindowSeconds?: number;
}

/**
 * Why 3 s per section: a status request must answer even when Redis or Postgres does not;
 * the sections that could be read are returned, the others name their error.
 */
const SECTION_TIMEOUT_MS = 3_000;

/** The operator's one-document view, shared by `GET /ops/status` and `walcache status`. */
export async function collectStatus<DB>(deps: StatusDeps<DB>): Promise<StatusDocument> {
  const section = <T>(what: string, read: () => Promise<T>): Promise<Section<T>> =>
    withTimeout(read(), SECTION_TIMEOUT_MS, what).catch((error: unknown) => ({ error: errorText(error) }));
  const [queue, cdc, invalidation, cache, auditor, watermark] = await Promise.all([
    section('queue', async () => {
      const counts = await readQueueCounts(deps.queue);
      return {
        name: deps.queue.name,
        ...counts,
        failed: { count: counts.counts.failed, recent: await recentFailedJobs(deps.queue) },
      };
    }),
    section('replication slot', async () => {
      const slot = await readSlot(deps.db, deps.slotName);
      return { ...slot, connected: slot.active };
    }),
    section('invalidation latency', () =>
      invalidationLatency(deps.queue, { windowSeconds: deps.latencyWindowSeconds ?? 300 }),
    ),
    section('cache stats', async () => {
      if (!deps.cacheStats) throw new Error('no cache statistics source (the API reports them)');
      return deps.cacheStats();
    }),
    section('auditor', () => readAuditorTotals(deps.queueRedis, deps.cachePrefix)),
    section('watermark', async (): Promise<WatermarkStatus> => {
      // W first: the WAL position read after it can only be further ahead.
      const w = await readWatermark(deps.queueRedis, keyspace(deps.cachePrefix));
      const current = await currentInsertLsn(deps.db);
      return {
        lsn: w === undefined ? null : watermarkLsn(w),
        currentWalLsn: current,
        behindBytes: w === undefined ? null : Math.max(0, Number(lsnToBigInt(current) - w)),
      };
    }),
  ]);
  return { generatedAt: new Date().toISOString(), queue, cdc, invalidation, cache, auditor, watermark };
}

export function cacheStatsFrom(
  counts: { hits: number; misses: number; bypasses: number },
  source: string,
): CacheStats {
  const total = counts.hits + counts.misses + counts.bypasses;
  return { ...counts, hitRatio: total > 0 ? counts.hits / total : null, source };
}

export function isError<T extends object>(section: Section<T>): section is { error: string } {
  return 'error' in section && typeof (section as { error: unknown }).error === 'string';
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
