import type { CacheResult, ReadThroughCache } from './cache.ts';
import type { Resource } from './resource.ts';

/** Loads many params in one query: the value of each, in order, `null` where none exists. */
export type LoadMany<Db, P, V> = (db: Db, params: readonly P[]) => Promise<(V | null)[]>;

/**
 * Many lookups of one resource: one MGET for all keys, then every miss through the cache's
 * own `get`, so each is filled under the same protocol as a single lookup (its own lease,
 * sequence read, tags, version check and compare-and-set; single-flight with concurrent
 * requests for the same key). Only the loads are pooled: the misses' `load` calls that
 * arrive in one turn of the event loop become one `loadMany` query. Each of those calls is
 * made after its fill's sequence read, so the pooled query starts after every one of them,
 * as each fill's protocol requires.
 */
export async function getMany<Db, P, V>(
  cache: ReadThroughCache<Db>,
  resource: Resource<Db, P, V>,
  params: readonly P[],
  loadMany: LoadMany<Db, P, V>,
): Promise<CacheResult[]> {
  const peeked = await cache.peekMany(resource, params);
  const pooled = new PooledLoads(resource, loadMany);
  return Promise.all(params.map((p, i) => peeked?.[i] ?? cache.get(pooled.resource, p)));
}

/**
 * Many values straight from Postgres, as `loadFresh` answers one (nothing read from or
 * written to the cache: a read-your-writes answer), their loads pooled into one query.
 */
export async function loadManyFresh<Db, P, V>(
  cache: ReadThroughCache<Db>,
  resource: Resource<Db, P, V>,
  params: readonly P[],
  loadMany: LoadMany<Db, P, V>,
): Promise<CacheResult[]> {
  const pooled = new PooledLoads(resource, loadMany);
  return Promise.all(params.map((p) => cache.loadFresh(pooled.resource, p)));
}

interface Waiting<P, V> {
  params: P;
  resolve(value: V | null): void;
  reject(error: unknown): void;
}

/** The resource as the misses' fills see it: its `load` joins the next pooled query. */
class PooledLoads<Db, P, V> {
  readonly resource: Resource<Db, P, V>;
  private waiting: Waiting<P, V>[] = [];

  constructor(
    base: Resource<Db, P, V>,
    private readonly loadMany: LoadMany<Db, P, V>,
  ) {
    // Everything else (key, tags, TTLs) is the resource's own: the fills write what a single
    // lookup would.
    this.resource = Object.create(base, {
      load: { value: (db: Db, params: P) => this.enqueue(db, params) },
    }) as Resource<Db, P, V>;
  }

  private enqueue(db: Db, params: P): Promise<V | null> {
    return new Promise((resolve, reject) => {
      // setImmediate, not a microtask: the fills' Redis replies arrive in one socket read
      // and their loads follow within that I/O turn; the check phase runs after all of them.
      if (this.waiting.length === 0) setImmediate(() => void this.run(db));
      this.waiting.push({ params, resolve, reject });
    });
  }

  private async run(db: Db): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    try {
      const values = await this.loadMany(
        db,
        batch.map((w) => w.params),
      );
      for (const [i, w] of batch.entries()) w.resolve(values[i] ?? null);
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}
