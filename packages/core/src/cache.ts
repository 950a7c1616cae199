import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CircuitBreaker } from './breaker.ts';
import { decodeEntry, encodeEntry, etagOf, isNullBody, NULL_BODY } from './codec.ts';
import { timings } from './constants.ts';
import { SourceUnavailableError } from './errors.ts';
import { type Keyspace, keyspace } from './keys.ts';
import type { AnyResource, Resource } from './resource.ts';
import { type WalcacheRedis, withCommands } from './scripts.ts';
import { withEpochTags } from './tags.ts';

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

export interface CacheResult {
  status: CacheStatus;
  /** The JSON body as bytes; `null` when the resource does not exist. */
  body: Buffer;
  etag: string;
  found: boolean;
}

/** Why a fill did not write its value: each is a protocol step doing its job. */
export type FillRefusal = 'lease-held' | 'tag-invalidated' | 'lease-lost' | 'redis-error';

/** What the cache reports; the apps wire these to Prometheus, tests count them. */
export interface CacheEvents {
  outcome?(resource: string, status: CacheStatus): void;
  load?(resource: string, ms: number): void;
  fillRefused?(resource: string, reason: FillRefusal): void;
  redisError?(operation: string, error: unknown): void;
}

/**
 * Test seams of the fill protocol, awaited in order. Race tests park a fill at one of these
 * (a barrier) while a writer commits and an invalidation runs, forcing the interleaving.
 */
export interface FillHooks {
  afterLease?(key: string): Promise<void> | void;
  afterLoad?(key: string): Promise<void> | void;
  beforeCas?(key: string): Promise<void> | void;
}

export interface CacheOptions<Db> {
  redis: Redis;
  db: Db;
  prefix: string;
  events?: CacheEvents;
  hooks?: FillHooks;
  breaker?: CircuitBreaker;
  /** Default TTLs override for tests; resources carry their own. */
  random?: () => number;
}

/**
 * Cache-aside with walcache's fill protocol (docs/architecture.md, "Consistency protocol"):
 * lease → load → register tags → check tag versions → compare-and-set.
 */
export class ReadThroughCache<Db> {
  readonly keys: Keyspace;
  readonly breaker: CircuitBreaker;
  private readonly redis: WalcacheRedis;
  private readonly inflight = new Map<string, Promise<CacheResult>>();
  private readonly random: () => number;

  constructor(private readonly options: CacheOptions<Db>) {
    this.redis = withCommands(options.redis);
    this.keys = keyspace(options.prefix);
    this.breaker = options.breaker ?? new CircuitBreaker();
    this.random = options.random ?? Math.random;
  }

  /** The cached answer for validated params: Redis hit, else one load per key per process. */
  async get<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    const key = resource.key(params);
    if (!this.breaker.allow()) return this.report(resource, await this.bypass(resource, params));
    let raw: Buffer | null;
    try {
      raw = await this.redis.getBuffer(this.keys.value(key));
      this.breaker.success();
    } catch (error) {
      this.breaker.failure();
      this.options.events?.redisError?.('get', error);
      return this.report(resource, await this.bypass(resource, params));
    }
    if (raw) {
      const entry = decodeEntry(raw);
      return this.report(resource, {
        status: 'HIT',
        body: entry.body,
        etag: entry.etag,
        found: !isNullBody(entry.body),
      });
    }
    // In-process single-flight: concurrent misses of one key share one load.
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fill(resource, params, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return this.report(resource, await pending);
  }

  /**
   * Loads and writes a value under the protocol, whether or not one is cached: the
   * invalidator's refresh. An older refresh cannot overwrite a newer one: the newer one's
   * invalidation bumped the tag versions past the older one's starting sequence.
   */
  async refresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    return this.fill(resource, params, resource.key(params));
  }

  private async fill<P, V>(resource: Resource<Db, P, V>, params: P, key: string): Promise<CacheResult> {
    const valueKey = this.keys.value(key);
    const leaseKey = this.keys.lease(key);
    const token = randomBytes(12).toString('base64url');
    const hooks = this.options.hooks;
    let s0: number;
    let leased: boolean;
    try {
      // Step 1: the sequence first, then the lease; both before the load.
      s0 = Number((await this.redis.get(this.keys.seq)) ?? 0);
      leased = (await this.redis.set(leaseKey, token, 'PX', timings.leaseMs, 'NX')) === 'OK';
    } catch (error) {
      this.breaker.failure();
      this.options.events?.redisError?.('lease', error);
      return this.bypass(resource, params);
    }
    if (!leased) {
      const waited = await this.waitForOtherFill(valueKey);
      if (waited) return waited;
      this.options.events?.fillRefused?.(resource.name, 'lease-held');
      return this.loadOnly(resource, params, 'MISS');
    }
    await hooks?.afterLease?.(key);

    // Step 2: load. A failed load gives the lease back so the next request can try at once.
    let value: V | null;
    try {
      value = await this.timedLoad(resource, params);
    } catch (error) {
      await this.releaseLease(leaseKey, token);
      throw error;
    }
    await hooks?.afterLoad?.(key);
    const body = value === null ? NULL_BODY : Buffer.from(JSON.stringify(value));
    const tags = withEpochTags(resource.tags(params, value));
    const etag = etagOf(body);
    const result: CacheResult = { status: 'MISS', body, etag, found: value !== null };

    try {
      // Step 3: register the key under every tag before checking versions, so an
      // invalidation either sees this key in the set or left a version this fill sees.
      const register = this.redis.pipeline();
      for (const tag of tags) register.sadd(this.keys.tagSet(tag), valueKey);
      await execPipeline(register);
      // Step 4: any tag invalidated after s0 means the load may predate that commit.
      const versions = tags.length ? await this.redis.mget(tags.map((t) => this.keys.tagVersion(t))) : [];
      if (versions.some((v) => v !== null && Number(v) > s0)) {
        this.options.events?.fillRefused?.(resource.name, 'tag-invalidated');
        await this.releaseLease(leaseKey, token);
        return result;
      }
      await hooks?.beforeCas?.(key);
      // Step 5: compare-and-set against our lease.
      const ttlSeconds = value === null ? resource.negativeTtlSeconds : resource.ttlSeconds;
      const ttlMs = Math.max(1000, Math.round(ttlSeconds * 1000 * (1 - timings.ttlJitter * this.random())));
      const entry = encodeEntry({ version: s0, storedAtMs: Date.now(), etag, tags, body });
      const written = await this.redis.walcacheFillCas(valueKey, leaseKey, token, entry, ttlMs);
      if (!written) this.options.events?.fillRefused?.(resource.name, 'lease-lost');
    } catch (error) {
      this.options.events?.redisError?.('fill', error);
      this.options.events?.fillRefused?.(resource.name, 'redis-error');
    }
    return result;
  }

  private async releaseLease(leaseKey: string, token: string): Promise<void> {
    // Best effort: an unreleased lease only expires later (leaseMs); count it, do not fail the read.
    await this.redis
      .walcacheReleaseLease(leaseKey, token)
      .catch((error) => this.options.events?.redisError?.('release', error));
  }

  /** Another process holds the lease: give it a moment to write, then load without caching. */
  private async waitForOtherFill(valueKey: string): Promise<CacheResult | undefined> {
    const deadline = Date.now() + timings.leaseWaitMs;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, timings.leasePollMs));
      const raw = await this.redis.getBuffer(valueKey).catch(() => null);
      if (raw) {
        const entry = decodeEntry(raw);
        return { status: 'HIT', body: entry.body, etag: entry.etag, found: !isNullBody(entry.body) };
      }
    }
    return undefined;
  }

  private async bypass<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    return this.loadOnly(resource, params, 'BYPASS');
  }

  private async loadOnly<P, V>(
    resource: Resource<Db, P, V>,
    params: P,
    status: CacheStatus,
  ): Promise<CacheResult> {
    const value = await this.timedLoad(resource, params);
    const body = value === null ? NULL_BODY : Buffer.from(JSON.stringify(value));
    return { status, body, etag: etagOf(body), found: value !== null };
  }

  private async timedLoad<P, V>(resource: Resource<Db, P, V>, params: P): Promise<V | null> {
    const started = performance.now();
    try {
      return await resource.load(this.options.db, params);
    } catch (error) {
      throw new SourceUnavailableError(error);
    } finally {
      this.options.events?.load?.(resource.name, performance.now() - started);
    }
  }

  private report(resource: AnyResource<Db>, result: CacheResult): CacheResult {
    this.options.events?.outcome?.(resource.name, result.status);
    return result;
  }
}

/** ioredis pipelines report per-command errors in their result; turn the first into a throw. */
export async function execPipeline(pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([error]) => error);
  if (failed?.[0]) throw failed[0];
  return results.map(([, value]) => value);
}
