import type { RedisClient } from '@walcache/core';
import { z } from 'zod';

/**
 * The auditor's running totals, shared by every invalidator (each runs an auditor) and read
 * by the status endpoint and the CLI. They live on the queue Redis (noeviction, outside the
 * cache prefix), so neither eviction nor a cache flush resets them.
 */
export function auditorStatsKey(cachePrefix: string): string {
  return `walcache-ops:${cachePrefix}:auditor`;
}

export type AuditOutcome = 'consistent' | 'stale' | 'pending' | 'unresolved';

export interface AuditorTotals {
  /** Values compared with Postgres (every outcome below). */
  checked: number;
  /** Mismatches still there after every invalidation up to the load was processed. */
  stale: number;
  /** Mismatches an in-flight invalidation removed: not errors. */
  pending: number;
  /** Mismatches that could not be resolved in time (CDC or workers stalled). */
  unresolved: number;
  /** (checked − stale) / checked, or null before the first check. */
  consistencyRate: number | null;
  lastCheckAt: string | null;
  lastStaleKey: string | null;
}

const countField = z.coerce.number().int().nonnegative().catch(0);
const statsSchema = z.object({
  checked: countField,
  stale: countField,
  pending: countField,
  unresolved: countField,
  lastCheckMs: z.coerce.number().int().positive().optional().catch(undefined),
  lastStaleKey: z.string().optional(),
});

export async function readAuditorTotals(redis: RedisClient, cachePrefix: string): Promise<AuditorTotals> {
  const raw = await redis.hgetall(auditorStatsKey(cachePrefix));
  const s = statsSchema.parse(raw);
  return {
    checked: s.checked,
    stale: s.stale,
    pending: s.pending,
    unresolved: s.unresolved,
    consistencyRate: s.checked > 0 ? (s.checked - s.stale) / s.checked : null,
    lastCheckAt: s.lastCheckMs ? new Date(s.lastCheckMs).toISOString() : null,
    lastStaleKey: s.lastStaleKey ?? null,
  };
}

export async function recordAudit(
  redis: RedisClient,
  cachePrefix: string,
  outcome: AuditOutcome,
  key: string,
  now = Date.now(),
): Promise<void> {
  const statsKey = auditorStatsKey(cachePrefix);
  const multi = redis.multi().hincrby(statsKey, 'checked', 1).hset(statsKey, 'lastCheckMs', now);
  if (outcome !== 'consistent') multi.hincrby(statsKey, outcome, 1);
  if (outcome === 'stale') multi.hset(statsKey, 'lastStaleKey', key);
  const results = await multi.exec();
  const failed = results?.find(([error]) => error);
  if (failed?.[0]) throw failed[0];
}
