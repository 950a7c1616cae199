import type { CompiledResource, Params } from '@walcache/resources';

/**
 * The `Server-Timing` header (W3C Server Timing) of `/v1` answers: `cache` is the time spent
 * in the cache (Redis, leases, waiting for another request's fill), `db` the time this
 * request spent loading from Postgres, present only when it loaded something. Browsers'
 * devtools show both in a request's timing tab.
 */

/** For answers that never reached the cache (a 400): a metric without a duration says so. */
export const CACHE_SKIPPED = 'cache;desc="not read"';

export function serverTiming(totalMs: number, dbMs: number | undefined): string {
  // Two decimals: a hit takes a few tenths of a millisecond, which one decimal would blur.
  if (dbMs === undefined) return `cache;dur=${totalMs.toFixed(2)}`;
  return `cache;dur=${Math.max(0, totalMs - dbMs).toFixed(2)}, db;dur=${dbMs.toFixed(2)}`;
}

/**
 * Database time per request, without touching the hit path: each resource's `load` is
 * wrapped once, at start, and records its duration under the params object it was called
 * with. The cache hands a request's own params object to the load it makes for that
 * request, so a hit (no load) or a miss that joined another request's load records nothing.
 */
export class LoadTimes {
  private readonly byParams = new WeakMap<Params, number>();

  timed(resource: CompiledResource): CompiledResource {
    const load = resource.load;
    return {
      ...resource,
      load: async (db, params) => {
        const started = performance.now();
        try {
          return await load(db, params);
        } finally {
          // A joiner that refills (its shared answer was too old) loads twice: both count.
          this.byParams.set(params, (this.byParams.get(params) ?? 0) + performance.now() - started);
        }
      },
    };
  }

  /** The database time spent for these params, if a load ran for them. */
  of(params: Params): number | undefined {
    return this.byParams.get(params);
  }
}
