import {
  type CacheStats,
  cacheStatsFrom,
  collectStatus,
  isError,
  type StatusDocument,
} from '@walcache/auditor';
import type { Clients } from '../context.ts';
import { formatBytes, formatPercent, formatSeconds, type Io } from '../io.ts';

/** Why 2 s: the API answers /metrics in milliseconds; a status command must not hang on a dead one. */
const API_TIMEOUT_MS = 2_000;

export async function statusCommand(
  clients: Clients,
  io: Io,
  options: { json: boolean; apiUrl: string },
): Promise<void> {
  const [queue, queueRedis, db] = await Promise.all([clients.queue(), clients.queueRedis(), clients.db()]);
  const status = await collectStatus({
    queue,
    queueRedis,
    db,
    slotName: clients.env.SLOT_NAME,
    cachePrefix: clients.env.CACHE_PREFIX,
    cacheStats: () => scrapeCacheStats(options.apiUrl),
  });
  io.out(options.json ? JSON.stringify(status, null, 2) : renderStatus(status));
}

/** The hit ratio lives in the API's counters: read them from its /metrics. */
async function scrapeCacheStats(apiUrl: string): Promise<CacheStats> {
  const url = new URL('/metrics', apiUrl);
  const res = await fetch(url, { signal: AbortSignal.timeout(API_TIMEOUT_MS) }).catch((error: unknown) => {
    throw new Error(
      `the API's /metrics at ${url.origin} is not reachable (${String(error)}); pass --api-url`,
    );
  });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  const counts = { hits: 0, misses: 0, bypasses: 0 };
  for (const line of (await res.text()).split('\n')) {
    const m = /^walcache_cache_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const outcome = /outcome="([A-Z]+)"/.exec(m[1] ?? '')?.[1];
    const value = Number(m[2]);
    if (outcome === 'HIT') counts.hits += value;
    else if (outcome === 'MISS') counts.misses += value;
    else if (outcome === 'BYPASS') counts.bypasses += value;
  }
  return cacheStatsFrom(counts, `the api at ${url.origin} since it started`);
}

export function renderStatus(s: StatusDocument): string {
  const lines = [`walcache status at ${s.generatedAt}`, ''];
  if (isError(s.queue)) lines.push(`Queue         unavailable: ${s.queue.error}`);
  else {
    const c = s.queue.counts;
    lines.push(
      `Queue         ${s.queue.name}: ${c.waiting} waiting · ${c.active} active · ${c.delayed} delayed · ${c.failed} failed · ${c.completed} completed`,
      `              oldest pending job: ${s.queue.oldestPendingAgeSeconds === null ? 'none' : `${formatSeconds(s.queue.oldestPendingAgeSeconds)} old`}`,
    );
    for (const job of s.queue.failed.recent)
      lines.push(
        `              failed ${job.id} (${job.attemptsMade} attempts, ${job.failedAt ?? '?'}): ${job.reason}`,
      );
  }
  if (isError(s.cdc)) lines.push(`CDC slot      unavailable: ${s.cdc.error}`);
  else if (!s.cdc.exists)
    lines.push(`CDC slot      ${s.cdc.name}: does not exist (the CDC creates it when it starts)`);
  else
    lines.push(
      `CDC slot      ${s.cdc.name}: ${s.cdc.active ? `streaming (walsender pid ${s.cdc.activePid})` : 'NOT STREAMING (no CDC connected)'}${s.cdc.walStatus && s.cdc.walStatus !== 'reserved' ? ` · wal_status ${s.cdc.walStatus}` : ''}`,
      `              lag ${formatBytes(s.cdc.lagBytes)} (${formatSeconds(s.cdc.lagSeconds)}) · WAL retained ${formatBytes(s.cdc.retainedWalBytes)} · last acked ${s.cdc.confirmedFlushLsn ?? 'n/a'}`,
    );
  if (isError(s.invalidation)) lines.push(`Invalidation  unavailable: ${s.invalidation.error}`);
  else
    lines.push(
      `Invalidation  commit → invalidated over the last ${formatSeconds(s.invalidation.windowSeconds)}: ${s.invalidation.jobs} jobs · p50 ${formatSeconds(s.invalidation.p50Seconds)} · p99 ${formatSeconds(s.invalidation.p99Seconds)} · max ${formatSeconds(s.invalidation.maxSeconds)}`,
    );
  if (isError(s.cache)) lines.push(`Cache         hit ratio unavailable: ${s.cache.error}`);
  else
    lines.push(
      `Cache         hit ratio ${formatPercent(s.cache.hitRatio)} (${s.cache.hits} hits · ${s.cache.misses} misses · ${s.cache.bypasses} bypasses; ${s.cache.source})`,
    );
  if (isError(s.watermark)) lines.push(`Watermark     unavailable: ${s.watermark.error}`);
  else
    lines.push(
      s.watermark.lsn === null
        ? `Watermark     not set yet (the CDC sets it when it starts streaming); WAL at ${s.watermark.currentWalLsn}`
        : `Watermark     ${s.watermark.lsn}: WAL at ${s.watermark.currentWalLsn}, ${s.watermark.behindBytes} bytes ahead (read-your-writes tokens past it wait)`,
    );
  if (isError(s.auditor)) lines.push(`Auditor       unavailable: ${s.auditor.error}`);
  else
    lines.push(
      `Auditor       consistency ${formatPercent(s.auditor.consistencyRate, 3)} (${s.auditor.checked} checked · ${s.auditor.stale} stale · ${s.auditor.pending} in flight · ${s.auditor.unresolved} unresolved)${s.auditor.lastStaleKey ? ` · last stale: ${s.auditor.lastStaleKey}` : ''}`,
    );
  return lines.join('\n');
}
