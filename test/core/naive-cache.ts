import {
  type CacheResult,
  decodeEntry,
  encodeEntry,
  etagOf,
  type FillHooks,
  invalidateTags,
  isNullBody,
  type Keyspace,
  keyspace,
  NULL_BODY,
  type RedisClient,
  type Resource,
  type Tag,
  withEpochTags,
} from '@walcache/core';

/**
 * The textbook cache-aside the fill protocol exists to beat: GET; on a miss load, register
 * the tags (so the same invalidator can find the key), SET. No sequence, no lease, no
 * version check. Same interface and test seams as ReadThroughCache, so the contract suite
 * runs unchanged against it and must catch its stale fills.
 */
export class NaiveCache<Db> {
  readonly keys: Keyspace;

  constructor(private readonly options: { redis: RedisClient; db: Db; prefix: string; hooks?: FillHooks }) {
    this.keys = keyspace(options.prefix);
  }

  async get<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    const key = resource.key(params);
    const raw = await this.options.redis.getBuffer(this.keys.value(key));
    if (raw) {
      const entry = decodeEntry(raw);
      return { status: 'HIT', body: entry.body, etag: entry.etag, found: !isNullBody(entry.body) };
    }
    return this.fill(resource, params, key);
  }

  /** Reload and SET, whatever is cached: last writer wins. */
  async refresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    return this.fill(resource, params, resource.key(params));
  }

  /** Naive invalidation: delete the keys registered under the tags. */
  async invalidate(tags: readonly Tag[]): Promise<void> {
    await invalidateTags(this.options.redis, this.keys, tags);
  }

  private async fill<P, V>(resource: Resource<Db, P, V>, params: P, key: string): Promise<CacheResult> {
    await this.options.hooks?.afterLease?.(key);
    const value = await resource.load(this.options.db, params);
    await this.options.hooks?.afterLoad?.(key);
    const body = value === null ? NULL_BODY : Buffer.from(JSON.stringify(value));
    const tags = withEpochTags(resource.tags(params, value));
    const valueKey = this.keys.value(key);
    for (const tag of tags) await this.options.redis.sadd(this.keys.tagSet(tag), valueKey);
    await this.options.hooks?.beforeCas?.(key);
    const etag = etagOf(body);
    const entry = encodeEntry({ version: 0, storedAtMs: Date.now(), etag, tags, body });
    await this.options.redis.set(valueKey, entry, 'PX', resource.ttlSeconds * 1000);
    return { status: 'MISS', body, etag, found: value !== null };
  }
}
