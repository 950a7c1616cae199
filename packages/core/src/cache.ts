import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CircuitBreaker } from './breaker.ts';
import { bodyOf, CorruptEntryError, decodeEntryHead, encodeEntry, etagOf, isNullBody } from './codec.ts';
import { isCluster, type RedisClient } from './connect.ts';
import { timings } from './constants.ts';
import { isReplyError, isSourceUnavailable, SourceUnavailableError } from './errors.ts';
import { GenerationGuard } from './generation.ts';
import { type Keyspace, keyspace, type MarkerKeys } from './keys.ts';
import { ValueReads } from './reads.ts';
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

/** What a refresh did: `cached` says whether its value was written to Redis. */
export interface RefreshResult extends CacheResult {
  cached: boolean;
}

/**
 * The generation events as every app logs them (one wording for operators, whichever
 * process flushed): `counted` adds the app's own metric.
 */
export function loggedGenerationEvents(
  logger: { warn(fields: object, message: string): void },
  counted: () => void,
): Pick<CacheEvents, 'generationFlushed' | 'generationUnchecked'> {
  return {
    generationFlushed: (deleted, was, now) => {
      counted();
      logger.warn(
        { deleted, was, now },
        'cache Redis is another generation than the namespace recorded: flushed it',
      );
    },
    generationUnchecked: (reason) =>
      logger.warn(
        { reason },
        'cannot tell the cache Redis generation: a restore from a snapshot would go undetected',
      ),
  };
}

/** Why a fill did not write its value: each is a protocol step doing its job. */
export type FillRefusal =
  | 'lease-held'
  | 'tag-invalidated'
  | 'lease-lost'
  | 'newer-cached'
  | 'redis-error'
  /** The connection to the cache Redis dropped during the fill: the server may be another generation. */
  | 'reconnected';

/** What the cache reports; the apps wire these to Prometheus, tests count them. */
export interface CacheEvents {
  outcome?(resource: string, status: CacheStatus): void;
  load?(resource: string, ms: number): void;
  fillRefused?(resource: string, reason: FillRefusal): void;
  /** A value was written to Redis by a fill or a refresh. */
  filled?(resource: string): void;
  /** Another process holds the key's lease; this request waits for its value. */
  leaseWait?(resource: string): void;
  /** Redis failed and the request went on without it (fail open): always counted. */
  redisError?(operation: string, error: unknown): void;
  /**
   * The cache Redis is another generation than the namespace recorded (restored from a
   * snapshot, a promoted replica, restarted): this process flushed the namespace.
   */
  generationFlushed?(deleted: number, was: string | null, now: string): void;
  /** The cache Redis does not tell its generation: a restore from a snapshot goes undetected. */
  generationUnchecked?(reason: string): void;
}

/**
 * Test seams of the fill protocol, awaited in order. Race tests park a fill at one of these
 * (a barrier) while a writer commits and an invalidation runs, forcing the interleaving.
 */
export interface FillHooks {
  /** A request found a fill of its key in flight in this process and is about to wait for it. */
  joined?(key: string): Promise<void> | void;
  /** Between the lease and the sequence read of step 1 (a restart of Redis there is the race). */
  withinStep1?(key: string): Promise<void> | void;
  afterLease?(key: string): Promise<void> | void;
  afterLoad?(key: string): Promise<void> | void;
  beforeCas?(key: string): Promise<void> | void;
}

export interface CacheOptions<Db> {
  /** One server or a Redis Cluster (multi-key steps are then split per slot or share a hash tag). */
  redis: RedisClient;
  db: Db;
  prefix: string;
  events?: CacheEvents;
  hooks?: FillHooks;
  breaker?: CircuitBreaker;
  /** Source of the TTL jitter (tests pin it). */
  random?: () => number;
  /** Overrides `timings.leaseWaitMs` (tests that must not depend on how fast a load is). */
  leaseWaitMs?: number;
  /**
   * Deployment-wide caps on the resources' own TTLs (`CACHE_TTL_SECONDS`,
   * `NEGATIVE_TTL_SECONDS`): an operator can shorten every TTL without editing resources.
   */
  maxTtlSeconds?: number;
  maxNegativeTtlSeconds?: number;
}

type FillMode = 'read' | 'refresh';

/**
 * A fill's answer, with the point of this process's `step` clock after which its value is
 * known fresh: the value's load was sent after it, or (for a value the protocol cached) its
 * tag-version check was. A request that joins a fill in flight may take the answer only if
 * it joined before that point (see `get`).
 */
interface Filled extends RefreshResult {
  freshAfter: number;
}

/**
 * Cache-aside with walcache's fill protocol (docs/cache.md, DESIGN.md "Consistency protocol"):
 * lease → sequence → load → register tags → check tag versions → compare-and-set.
 */
export class ReadThroughCache<Db> {
  readonly keys: Keyspace;
  readonly breaker: CircuitBreaker;
  private readonly redis: WalcacheRedis;
  private readonly clustered: boolean;
  /** The version markers as this client reads them (one hash tag on a cluster: one MGET). */
  private readonly markers: MarkerKeys;
  /** Serves the namespace only from a cache Redis of the generation it recorded (generation.ts). */
  private readonly generation: GenerationGuard;
  private readonly inflight = new Map<string, Promise<Filled>>();
  /** Hits' and misses' value reads, coalesced (reads.ts). */
  private readonly reads: ValueReads;
  /** Orders joins and fill steps in this process (a counter, not a clock: only order matters). */
  private step = 0;
  private readonly random: () => number;
  private readonly leaseWaitMs: number;

  constructor(private readonly options: CacheOptions<Db>) {
    this.redis = withCommands(options.redis);
    this.keys = keyspace(options.prefix);
    this.clustered = isCluster(options.redis);
    this.markers = this.keys.markerKeys(this.clustered);
    this.reads = new ValueReads(options.redis);
    this.breaker = options.breaker ?? new CircuitBreaker();
    this.random = options.random ?? Math.random;
    this.leaseWaitMs = options.leaseWaitMs ?? timings.leaseWaitMs;
    const events = options.events;
    this.generation = new GenerationGuard(options.redis, this.keys, {
      flushed: (deleted, was, now) => events?.generationFlushed?.(deleted, was, now),
      unchecked: (reason) => events?.generationUnchecked?.(reason),
      failed: (error) => this.redisFailed('generation', error),
    });
  }

  /**
   * Checks (and, for a new generation, flushes) the namespace now rather than on the first
   * request; false when Redis could not be asked. Apps call it at start.
   */
  async verifyGeneration(): Promise<boolean> {
    return (await this.generation.verified()) !== undefined;
  }

  /** The cached answer for validated params: Redis hit, else one load per key per process. */
  async get<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    const key = resource.key(params);
    if (!this.breaker.allow()) return this.report(resource, await this.bypass(resource, params));
    // No hit and no fill until this connection's server is known to be the namespace's generation.
    const epoch = this.generation.current() ?? (await this.generation.verified(this.leaseWaitMs));
    if (epoch === undefined) {
      // Still checking (a failure was already counted): a half-open probe must not stay taken.
      this.breaker.abandon();
      return this.report(resource, await this.bypass(resource, params));
    }
    let raw: Buffer | null;
    try {
      raw = await this.reads.get(this.keys.value(key));
      this.breaker.success();
    } catch (error) {
      this.redisFailed('get', error);
      return this.report(resource, await this.bypass(resource, params));
    }
    // Reconnected while the GET was out: its answer may come from an unverified server.
    if (!this.generation.holds(epoch)) return this.report(resource, await this.bypass(resource, params));
    const hit = raw ? this.decodeHit(raw) : undefined;
    if (hit) return this.report(resource, hit);
    // In-process single-flight: concurrent misses of one key share one load. A joiner takes
    // the shared answer only if it is fresh from after the join: an invalidation that
    // completed before this request began may have raced a fill that loaded earlier (that
    // fill's own caller may see its value, this request must not). Otherwise it fills again;
    // a fill it starts itself always qualifies, so this loops at most twice in practice.
    for (;;) {
      const joinedAt = ++this.step;
      let pending = this.inflight.get(key);
      if (pending) await this.options.hooks?.joined?.(key);
      if (!pending) {
        pending = this.fill(resource, params, key, 'read', epoch).finally(() => {
          if (this.inflight.get(key) === pending) this.inflight.delete(key);
        });
        this.inflight.set(key, pending);
      }
      const { freshAfter, cached: _, ...result } = await pending;
      if (freshAfter > joinedAt) return this.report(resource, result);
    }
  }

  /**
   * The hit `get` would answer, when Redis holds a found value now (one GET, counted as a
   * hit): for a caller that serves hits on a lane of its own (the API's hit lane). Anything
   * else is `undefined`, with nothing counted: a miss, a cached "not found", an unreadable
   * entry, a Redis error, a breaker not closed or a generation not yet verified are all left
   * to `get`, so a probe, a failure or a fill is never taken or counted twice.
   */
  async peek<P, V>(
    resource: Resource<Db, P, V>,
    params: P,
    /** `resource.key(params)`, for a caller that has it already. */
    key: string = resource.key(params),
  ): Promise<CacheResult | undefined> {
    if (this.breaker.state !== 'closed') return undefined;
    const epoch = this.generation.current();
    if (epoch === undefined) return undefined;
    let raw: Buffer | null;
    try {
      raw = await this.reads.get(this.keys.value(key));
      // As in get: an answered GET ends a run of failures.
      this.breaker.success();
    } catch {
      return undefined;
    }
    if (!raw || !this.generation.holds(epoch)) return undefined;
    const hit = this.decodeHit(raw, false);
    if (!hit?.found) return undefined;
    return this.report(resource, hit);
  }

  /**
   * A load from Postgres that neither reads nor writes the cache (`BYPASS`): for a reader
   * that must see commits the cache may not reflect yet (a read-your-writes token ahead of
   * the watermark). Fresh by construction; counted like any other answer.
   */
  async loadFresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult> {
    return this.report(resource, await this.bypass(resource, params));
  }

  /**
   * Loads and writes a value under the protocol, whether or not one is cached: the
   * invalidator's refresh. It takes the key's lease over (an older fill in flight then loses
   * its compare-and-set) and is itself refused when an invalidation newer than its start
   * touched the value's tags, so an older refresh can never overwrite a newer one.
   * Redis errors are thrown (the job retries), not turned into a bypass.
   */
  async refresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<RefreshResult> {
    const epoch = await this.generation.verified();
    if (epoch === undefined)
      throw new Error('the cache Redis generation could not be checked (see the cache Redis errors)');
    const { freshAfter: _, ...result } = await this.fill(
      resource,
      params,
      resource.key(params),
      'refresh',
      epoch,
    );
    return result;
  }

  /**
   * Many keys in one round trip (an MGET; batch lookups): each hit, counted like a single
   * lookup's, or `undefined` for a key to fill (a miss, an unreadable entry). `undefined` as
   * a whole when Redis is not to be used now (breaker open, the MGET failed): the caller then
   * takes every key through `get`, which bypasses and counts as a single lookup does.
   */
  async peekMany<P, V>(
    resource: Resource<Db, P, V>,
    params: readonly P[],
  ): Promise<(CacheResult | undefined)[] | undefined> {
    if (!this.breaker.allow()) return undefined;
    // As `get`: no hit until this connection's server is known to be the namespace's generation.
    const epoch = this.generation.current() ?? (await this.generation.verified(this.leaseWaitMs));
    if (epoch === undefined) {
      this.breaker.abandon();
      return undefined;
    }
    let raws: (Buffer | null)[];
    try {
      const valueKeys = params.map((p) => this.keys.value(resource.key(p)));
      // One MGET on one server (with any other reads of this turn), a GET each on a cluster.
      raws = await Promise.all(valueKeys.map((k) => this.reads.get(k)));
      this.breaker.success();
    } catch (error) {
      this.redisFailed('mget', error);
      return undefined;
    }
    if (!this.generation.holds(epoch)) return undefined;
    return raws.map((raw) => {
      const hit = raw ? this.decodeHit(raw) : undefined;
      return hit && this.report(resource, hit);
    });
  }

  private async fill<P, V>(
    resource: Resource<Db, P, V>,
    params: P,
    key: string,
    mode: FillMode,
    /** The verified connection epoch the fill started in (GenerationGuard). */
    epoch: number,
  ): Promise<Filled> {
    const valueKey = this.keys.value(key);
    const leaseKey = this.keys.lease(key);
    const token = randomBytes(12).toString('base64url');
    const hooks = this.options.hooks;
    let s0: number;
    let leased: boolean;
    try {
      // Step 1: the lease first, then the sequence; both before the load. In this order a
      // cache Redis that restarts empty between them takes the lease with it (the
      // compare-and-set fails), where the other order would keep an `s0` from before the
      // restart, larger than every marker after it. A refresh takes the lease
      // unconditionally: it is newer than whatever fill holds it.
      if (!this.clustered && !hooks?.withinStep1) {
        // One server: both in one round trip. One connection runs them in the order sent, so
        // the sequence is still read after the lease is taken.
        const step1 = this.redis.pipeline();
        if (mode === 'refresh') step1.set(leaseKey, token, 'PX', timings.leaseMs);
        else step1.set(leaseKey, token, 'PX', timings.leaseMs, 'NX');
        const [lease, seq] = await execPipeline(step1.get(this.keys.seq));
        leased = lease === 'OK';
        s0 = leased ? Number(seq ?? 0) : 0;
      } else {
        leased =
          mode === 'refresh'
            ? (await this.redis.set(leaseKey, token, 'PX', timings.leaseMs)) === 'OK'
            : (await this.redis.set(leaseKey, token, 'PX', timings.leaseMs, 'NX')) === 'OK';
        await hooks?.withinStep1?.(key);
        s0 = leased ? Number((await this.redis.get(this.keys.seq)) ?? 0) : 0;
      }
    } catch (error) {
      if (mode === 'refresh') throw error;
      this.redisFailed('lease', error);
      const freshAfter = ++this.step;
      return { ...(await this.bypass(resource, params)), cached: false, freshAfter };
    }
    if (!leased) {
      this.options.events?.leaseWait?.(resource.name);
      const waited = await this.waitForOtherFill(valueKey, epoch);
      if (waited) return { ...waited, cached: false };
      this.options.events?.fillRefused?.(resource.name, 'lease-held');
      const freshAfter = ++this.step;
      return { ...(await this.loadOnly(resource, params, 'MISS')), cached: false, freshAfter };
    }
    await hooks?.afterLease?.(key);

    // Step 2: load. A failed load gives the lease back so the next request can try at once.
    let value: V | null;
    const loadedAfter = ++this.step;
    try {
      value = await this.timedLoad(resource, params);
    } catch (error) {
      await this.releaseLease(leaseKey, token);
      throw error;
    }
    await hooks?.afterLoad?.(key);
    const body = bodyOf(value);
    const tags = withEpochTags(resource.tags(params, value));
    const etag = etagOf(body);
    const result: CacheResult & { freshAfter: number } = {
      status: 'MISS',
      body,
      etag,
      found: value !== null,
      freshAfter: loadedAfter,
    };

    const ttlMs = jitteredTtlMs(
      value === null
        ? Math.min(
            resource.negativeTtlSeconds,
            this.options.maxNegativeTtlSeconds ?? Number.POSITIVE_INFINITY,
          )
        : Math.min(resource.ttlSeconds, this.options.maxTtlSeconds ?? Number.POSITIVE_INFINITY),
      this.random(),
    );
    const entry = () => encodeEntry({ version: s0, storedAtMs: Date.now(), etag, tags, body });
    try {
      if (!this.clustered && !hooks?.beforeCas) {
        // One server and no seam between the steps: steps 3 to 5 in one script (scripts.ts).
        // A reconnect since the lease is checked before it is sent (see below); one during
        // it resends it before the new connection's check, like the compare-and-set alone.
        const reconnected = this.refusedIfReconnected(resource, result, epoch);
        if (reconnected) return reconnected;
        const checkedAfter = ++this.step;
        const written = await this.redis.walcacheFillChecked(
          2 + 2 * tags.length,
          valueKey,
          leaseKey,
          ...tags.map((tag) => this.keys.tagSet(tag)),
          ...tags.map((tag) => this.markers.version(tag)),
          token,
          entry(),
          ttlMs,
          s0,
          tags.length,
        );
        return this.filledOrRefused(resource, result, written, checkedAfter);
      }
      // Step 3: register the key under every tag before checking versions, so an
      // invalidation either sees this key in the set or left a version this fill sees.
      // Step 4: any tag invalidated after s0 means the load may predate that commit.
      if (tags.length > 0 && this.clustered) {
        // The tag sets lie in many slots, and a cluster pipeline must stay on one node: one
        // command each (auto-pipelined per node), every one answered before the version read.
        await Promise.all(tags.map((tag) => this.redis.sadd(this.keys.tagSet(tag), valueKey)));
      }
      const checkedAfter = ++this.step;
      let versions: (string | null)[] = [];
      const markerKeys = tags.map((t) => this.markers.version(t));
      if (tags.length > 0 && this.clustered) versions = await this.redis.mget(markerKeys);
      else if (tags.length > 0) {
        // One server: the registrations and the version read in one round trip, the read
        // behind them on the same connection (which runs them in the order sent).
        const register = this.redis.pipeline();
        for (const tag of tags) register.sadd(this.keys.tagSet(tag), valueKey);
        versions = (await execPipeline(register.mget(markerKeys))).at(-1) as (string | null)[];
      }
      if (versions.some((v) => v !== null && Number(v) > s0)) {
        this.options.events?.fillRefused?.(resource.name, 'tag-invalidated');
        await this.releaseLease(leaseKey, token);
        return { ...result, cached: false };
      }
      await hooks?.beforeCas?.(key);
      // A reconnect since the lease: this server may be a restored or promoted one whose
      // markers predate the invalidations the load may have missed. (A compare-and-set sent
      // before a drop is resent before the new connection's check, whose flush then covers it.)
      const reconnected = this.refusedIfReconnected(resource, result, epoch);
      if (reconnected) return reconnected;
      // Step 5: compare-and-set against our lease (and against a newer cached entry).
      const written = await this.redis.walcacheFillCas(valueKey, leaseKey, token, entry(), ttlMs, s0);
      return this.filledOrRefused(resource, result, written, checkedAfter);
    } catch (error) {
      if (mode === 'refresh') throw error;
      // Fail open: the reader gets the loaded value, uncached; the failure is counted.
      this.redisFailed('fill', error);
      this.options.events?.fillRefused?.(resource.name, 'redis-error');
      return { ...result, cached: false };
    }
  }

  /** A fill refused because the connection dropped since its lease (the server may be another generation). */
  private refusedIfReconnected(
    resource: AnyResource<Db>,
    result: CacheResult & { freshAfter: number },
    epoch: number,
  ): Filled | undefined {
    if (this.generation.holds(epoch)) return undefined;
    this.options.events?.fillRefused?.(resource.name, 'reconnected');
    return { ...result, cached: false };
  }

  /** What a compare-and-set answered (scripts.ts: 1 written, 0, 2 or 3 refused), reported. */
  private filledOrRefused(
    resource: AnyResource<Db>,
    result: CacheResult & { freshAfter: number },
    written: number,
    checkedAfter: number,
  ): Filled {
    if (written === 1) {
      this.options.events?.filled?.(resource.name);
      // Cached under the protocol: as fresh as any hit read after its version check.
      return { ...result, cached: true, freshAfter: checkedAfter };
    }
    const reason = written === 3 ? 'tag-invalidated' : written === 2 ? 'newer-cached' : 'lease-lost';
    this.options.events?.fillRefused?.(resource.name, reason);
    return { ...result, cached: false };
  }

  private decodeHit(raw: Buffer, countUnreadable = true): CacheResult | undefined {
    try {
      const entry = decodeEntryHead(raw);
      return { status: 'HIT', body: entry.body, etag: entry.etag, found: !isNullBody(entry.body) };
    } catch (error) {
      // An entry we cannot read (a newer or older codec during a rolling deploy): treat it
      // as a miss, whose fill overwrites it, and count it.
      if (error instanceof CorruptEntryError) {
        if (countUnreadable) this.options.events?.redisError?.('decode', error);
        return undefined;
      }
      throw error;
    }
  }

  private redisFailed(operation: string, error: unknown): void {
    // A reply error (OOM under `maxmemory`, a script error) comes from a Redis that answers:
    // reads still work, so it must not open the breaker and turn every hit into a BYPASS;
    // it counts as an answer (a half-open probe that got one must end, or the breaker stays
    // half-open for good). A reply that says Redis cannot serve at all (-LOADING after a
    // restart, -MASTERDOWN, -BUSY) is a failure like a dropped connection.
    if (isReplyError(error) && !isUnavailableReply(error)) this.breaker.success();
    else this.breaker.failure();
    this.options.events?.redisError?.(operation, error);
  }

  private async releaseLease(leaseKey: string, token: string): Promise<void> {
    // Best effort: an unreleased lease only expires later (leaseMs); count it, do not fail the read.
    await this.redis
      .walcacheReleaseLease(leaseKey, token)
      .catch((error: unknown) => this.options.events?.redisError?.('release', error));
  }

  /** Another process holds the lease: give it a moment to write, then load without caching. */
  private async waitForOtherFill(valueKey: string, epoch: number): Promise<Filled | undefined> {
    const deadline = Date.now() + this.leaseWaitMs;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, timings.leasePollMs));
      // A value read from Redis now is as fresh as any hit read now.
      const freshAfter = ++this.step;
      let raw: Buffer | null;
      try {
        raw = await this.redis.getBuffer(valueKey);
      } catch (error) {
        this.redisFailed('lease-wait', error);
        return undefined;
      }
      if (!this.generation.holds(epoch)) return undefined;
      const hit = raw ? this.decodeHit(raw) : undefined;
      if (hit) return { ...hit, cached: false, freshAfter };
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
    const body = bodyOf(value);
    return { status, body, etag: etagOf(body), found: value !== null };
  }

  private async timedLoad<P, V>(resource: Resource<Db, P, V>, params: P): Promise<V | null> {
    const started = performance.now();
    try {
      return await resource.load(this.options.db, params);
    } catch (error) {
      // Unavailable → SourceUnavailableError (the API's 503); anything else is a bug: rethrown as is.
      throw isSourceUnavailable(error) ? new SourceUnavailableError(error) : error;
    } finally {
      this.options.events?.load?.(resource.name, performance.now() - started);
    }
  }

  private report(resource: AnyResource<Db>, result: CacheResult): CacheResult {
    this.options.events?.outcome?.(resource.name, result.status);
    return result;
  }
}

/** Reply errors of a Redis that answers but serves nothing (its error code is the first word). */
const UNAVAILABLE_REPLIES = new Set(['LOADING', 'MASTERDOWN', 'BUSY', 'TRYAGAIN', 'CLUSTERDOWN']);

function isUnavailableReply(error: unknown): boolean {
  return error instanceof Error && UNAVAILABLE_REPLIES.has(error.message.split(' ', 1)[0] ?? '');
}

/**
 * A TTL shortened by up to `timings.ttlJitter` of itself, so keys filled together (after a
 * deploy, a flush) do not all expire in the same second. Never below one second.
 */
export function jitteredTtlMs(ttlSeconds: number, random: number): number {
  return Math.max(1000, Math.round(ttlSeconds * 1000 * (1 - timings.ttlJitter * random)));
}

/** ioredis pipelines report per-command errors in their result; turn the first into a throw. */
export async function execPipeline(pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([error]) => error);
  if (failed?.[0]) throw failed[0];
  return results.map(([, value]) => value);
}
