/**
 * Every timing of the cache engine, with the reason for its value. Handlers never carry
 * their own numbers: a future reader tunes these here, knowing what each one guards.
 */
export const timings = {
  /**
   * A fill's lease. A load slower than this cannot cache (the compare-and-set finds the
   * lease gone), so it also bounds how long a stale load could be in flight. 10 s is far
   * above a healthy query and below any TTL.
   */
  leaseMs: 10_000,
  /**
   * How long an invalidation's `tagv` marker is kept. It must outlive every fill that could
   * have started before the invalidation, and those are bounded by the lease: twice the lease.
   */
  tagVersionWindowMs: 20_000,
  /** A request that finds another process's lease polls for its value this long, then loads without caching. */
  leaseWaitMs: 150,
  leasePollMs: 10,
  /** TTL jitter (fraction of the TTL) so keys written together do not expire together. */
  ttlJitter: 0.1,
} as const;
