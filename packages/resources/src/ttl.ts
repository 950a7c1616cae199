/**
 * TTLs of the sample resources. Invalidation, not expiry, keeps values fresh; the TTL only
 * bounds memory held by values nobody reads and the damage of a bug in a tag declaration.
 */
export const ttl = {
  /** Single entities: one hour. */
  entity: 3600,
  /** Lists and aggregates are invalidated by every change of their table: ten minutes. */
  list: 600,
  /** A cached "not found": short, as an INSERT of that id is invalidated anyway. */
  negative: 30,
} as const;
