import type { z } from 'zod';
import type { Tag, WatchedColumn } from './tags.ts';

export type RefreshPolicy = 'delete' | 'refresh';

/**
 * A cached resource, declared once: the API builds its route from it, the cache its key and
 * tags, the invalidator its refresh. `Db` is whatever `load` needs (a Kysely instance for the
 * sample resources); core never imports a database client.
 */
export interface Resource<Db, P, V> {
  readonly name: string;
  readonly params: z.ZodType<P>;
  /** The cache key, unique per resource and params; must only be called with parsed params. */
  key(params: P): string;
  /** Loads the value, or null when it does not exist (cached for `negativeTtlSeconds`). */
  load(db: Db, params: P): Promise<V | null>;
  /** The dependency tags of the value: a change to any of them must invalidate it. */
  tags(params: P, value: V | null): Tag[];
  readonly ttlSeconds: number;
  readonly negativeTtlSeconds: number;
  readonly policy: RefreshPolicy;
  /** The (table, column) pairs whose changes the CDC must turn into `col:` tags. */
  readonly watched: readonly WatchedColumn[];
  /** Rebuilds the params from a key (refresh-policy invalidation, the consistency auditor), or undefined. */
  paramsFromKey?(key: string): P | undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds resources of every param/value type.
export type AnyResource<Db> = Resource<Db, any, any>;

export function defineResource<Db, P, V>(resource: Resource<Db, P, V>): Resource<Db, P, V> {
  return resource;
}

/** The union of every resource's watched columns, deduplicated: what the CDC is configured with. */
export function watchedColumnsOf(
  resources: Iterable<{ watched: readonly WatchedColumn[] }>,
): WatchedColumn[] {
  const seen = new Map<string, WatchedColumn>();
  for (const r of resources) for (const w of r.watched) seen.set(`${w.table}.${w.column}`, w);
  return [...seen.values()].sort(byWatchedColumn);
}

/**
 * Watched columns in `table.column` order, by UTF-16 code units like every other sorted list
 * of the compiled config (`tables`, `readColumns`). Not localeCompare: that order follows
 * the process's locale (LANG), so two processes could disagree, and its first call pages in
 * ICU's collation data, ~2.5 MiB of every app's RSS at rest, for a sort of a few names.
 */
export function byWatchedColumn(a: WatchedColumn, b: WatchedColumn): number {
  const x = `${a.table}.${a.column}`;
  const y = `${b.table}.${b.column}`;
  return x < y ? -1 : x > y ? 1 : 0;
}
