import type { CacheEvents } from '@walcache/core';
import { Counter, Gauge, Histogram, type Registry } from '@walcache/observability';

export interface ApiMetrics {
  requestDuration: Histogram<'route' | 'method' | 'status' | 'cache'>;
  cacheOutcomes: Counter<'resource' | 'outcome'>;
  loads: Histogram<'resource'>;
  fillsRefused: Counter<'resource' | 'reason'>;
  redisErrors: Counter<'operation'>;
  /** Misses answered 503 `overloaded` because the pool already had its maximum of waiters. */
  dbRefused: Counter;
  /** Read-your-writes: requests whose token was ahead of the watermark, how long they waited, and those answered from Postgres. */
  rywWaits: Counter;
  rywWaitSeconds: Histogram;
  rywBypassed: Counter;
  /** Namespace flushes this process made for a new cache Redis generation. */
  generationFlushes: Counter;
  cacheEvents: CacheEvents;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  const requestDuration = new Histogram({
    name: 'walcache_api_request_duration_seconds',
    help: 'HTTP request duration by route and cache outcome',
    labelNames: ['route', 'method', 'status', 'cache'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const cacheOutcomes = new Counter({
    name: 'walcache_cache_requests_total',
    help: 'Cache lookups by resource and outcome (HIT, MISS, BYPASS)',
    labelNames: ['resource', 'outcome'] as const,
    registers: [registry],
  });
  const loads = new Histogram({
    name: 'walcache_cache_load_duration_seconds',
    help: 'Database loads of cached resources',
    labelNames: ['resource'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  const fillsRefused = new Counter({
    name: 'walcache_cache_fills_refused_total',
    help: 'Fills the protocol refused to write (a lease held, a tag invalidated during the load, the lease lost)',
    labelNames: ['resource', 'reason'] as const,
    registers: [registry],
  });
  const generationFlushes = new Counter({
    name: 'walcache_cache_generation_flushes_total',
    help: 'Namespace flushes because the cache Redis was another generation (restored from a snapshot, a promoted replica, restarted)',
    registers: [registry],
  });
  const redisErrors = new Counter({
    name: 'walcache_cache_redis_errors_total',
    help: 'Redis errors on the read path (answered from Postgres instead)',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const dbRefused = new Counter({
    name: 'walcache_api_db_refused_total',
    help: 'Cache misses refused with 503 because too many requests already waited for a database connection',
    registers: [registry],
  });
  const rywWaits = new Counter({
    name: 'walcache_ryw_waits_total',
    help: 'Reads whose read-your-writes token was ahead of the watermark (they waited for it)',
    registers: [registry],
  });
  const rywWaitSeconds = new Histogram({
    name: 'walcache_ryw_wait_seconds',
    help: 'How long a read waited for the watermark to reach its token',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const rywBypassed = new Counter({
    name: 'walcache_ryw_bypassed_total',
    help: 'Reads answered from Postgres because the watermark had not reached their token in time',
    registers: [registry],
  });
  return {
    dbRefused,
    rywWaits,
    rywWaitSeconds,
    rywBypassed,
    generationFlushes,
    requestDuration,
    cacheOutcomes,
    loads,
    fillsRefused,
    redisErrors,
    cacheEvents: {
      outcome: (resource, outcome) => cacheOutcomes.inc({ resource, outcome }),
      load: (resource, ms) => loads.observe({ resource }, ms / 1000),
      fillRefused: (resource, reason) => fillsRefused.inc({ resource, reason }),
      redisError: (operation) => redisErrors.inc({ operation }),
    },
  };
}

/** The smallest view of a pg Pool the gauges read. */
export interface PoolCounts {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** Connection pool gauges, read at scrape time: saturation shows before the 503s do. */
export function registerPoolMetrics(registry: Registry, pool: PoolCounts): void {
  new Gauge({
    name: 'walcache_api_db_pool_connections',
    help: 'Database pool of the API: open connections (total), idle ones, and requests waiting for one',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'total' }, pool.totalCount);
      this.set({ state: 'idle' }, pool.idleCount);
      this.set({ state: 'waiting' }, pool.waitingCount);
    },
  });
}
