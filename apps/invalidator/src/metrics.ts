import { Counter, Histogram, type Registry } from '@walcache/observability';

export function createInvalidatorMetrics(registry: Registry) {
  const r = [registry];
  return {
    jobs: new Counter({
      name: 'walcache_invalidator_jobs_total',
      help: 'Invalidation jobs by outcome',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    latency: new Histogram({
      name: 'walcache_invalidation_latency_seconds',
      help: 'Commit in Postgres → keys invalidated in Redis (last commit of the job)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    keysDeleted: new Counter({
      name: 'walcache_invalidator_keys_deleted_total',
      help: 'Cached values deleted',
      registers: r,
    }),
    keysRefreshed: new Counter({
      name: 'walcache_invalidator_keys_refreshed_total',
      help: 'Cached values reloaded and written (refresh policy)',
      registers: r,
    }),
    refreshRefused: new Counter({
      name: 'walcache_invalidator_refresh_refused_total',
      help: 'Refreshes that did not write (a newer invalidation or refresh won; the key stays deleted)',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    retries: new Counter({
      name: 'walcache_invalidator_retries_total',
      help: 'Job attempts that failed and will be retried',
      registers: r,
    }),
    visibilityCheck: new Histogram({
      name: 'walcache_invalidator_visibility_check_seconds',
      help: 'Step 0 of a job that ran it: waiting until its transactions are visible (one query when they are); part of its latency',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1],
      registers: r,
    }),
    visibilityKnown: new Counter({
      name: 'walcache_invalidator_visibility_known_total',
      help: "Jobs whose transactions an earlier check's snapshot already showed visible (all below its xmin): step 0 ran no query",
      registers: r,
    }),
    visibilityWaits: new Counter({
      name: 'walcache_invalidator_visibility_waits_total',
      help: 'Job attempts put off because a transaction of the job was committed in the WAL but not yet visible',
      registers: r,
    }),
    tagSweeps: new Counter({
      name: 'walcache_tag_index_sweeps_total',
      help: 'Passes of the tag index sweeper over every tag set',
      registers: r,
    }),
    tagMembersRemoved: new Counter({
      name: 'walcache_tag_index_members_removed_total',
      help: 'Tag index members removed because their value had expired or been evicted',
      registers: r,
    }),
    warmups: new Counter({
      name: 'walcache_invalidator_warmups_total',
      help: 'Warm-ups run to the end (after a start or a namespace flush) or stopped early',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    warmedValues: new Counter({
      name: 'walcache_invalidator_warm_values_total',
      help: 'Values a warm-up read, by resource: hit (already cached) or loaded (from Postgres)',
      labelNames: ['resource', 'outcome'] as const,
      registers: r,
    }),
    generationFlushes: new Counter({
      name: 'walcache_cache_generation_flushes_total',
      help: 'Namespace flushes because the cache Redis was another generation (restored from a snapshot, a promoted replica, restarted)',
      registers: r,
    }),
    fallbacks: new Counter({
      name: 'walcache_invalidator_fallbacks_total',
      help: 'Jobs that exhausted their retries and were replaced by a table-wide invalidation',
      registers: r,
    }),
  };
}

export type InvalidatorMetrics = ReturnType<typeof createInvalidatorMetrics>;
