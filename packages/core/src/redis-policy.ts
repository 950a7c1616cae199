import type { Redis } from 'ioredis';
import { mastersOf, type RedisClient } from './connect.ts';
import { WalcacheError } from './errors.ts';
import { withTimeout } from './timeout.ts';

/**
 * What each Redis must be configured like for the protocol to stay correct under memory
 * pressure (docs/architecture.md, "Redis and Postgres settings"). Checked at startup by
 * the CDC and the invalidator, which refuse a configuration that cannot stay correct.
 */
export type RedisRole = 'cache' | 'queue' | 'shared';

export interface RedisMemoryConfig {
  policy: string;
  /** Bytes; 0 = no limit. */
  maxmemory: number;
}

/** A Redis configuration that can serve stale values or lose invalidations. */
export class RedisConfigError extends WalcacheError {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super('WALCACHE_REDIS_CONFIG', `${message}\n  fix: ${fix}`);
  }
}

/** `maxmemory-policy` and `maxmemory`, or undefined where CONFIG is not allowed (managed Redis). */
export async function readMemoryConfig(redis: Redis): Promise<RedisMemoryConfig | undefined> {
  let reply: unknown;
  try {
    reply = await redis.call('CONFIG', 'GET', 'maxmemory*');
  } catch (error) {
    if (error instanceof Error && error.name === 'ReplyError') return undefined;
    throw error;
  }
  const flat = Array.isArray(reply) ? reply.map(String) : [];
  const get = (name: string) => {
    const i = flat.indexOf(name);
    return i >= 0 && i % 2 === 0 ? flat[i + 1] : undefined;
  };
  const policy = get('maxmemory-policy');
  if (policy === undefined) return undefined;
  return { policy, maxmemory: Number(get('maxmemory') ?? 0) };
}

/** The problem with a configuration for a role, or undefined when it can stay correct. */
export function memoryConfigProblem(
  role: RedisRole,
  config: RedisMemoryConfig,
): RedisConfigError | undefined {
  const { policy, maxmemory } = config;
  if (role === 'queue' && policy !== 'noeviction')
    return new RedisConfigError(
      `the queue Redis (QUEUE_REDIS_URL) runs maxmemory-policy ${policy}: it may evict invalidation jobs (a lost invalidation)`,
      'CONFIG SET maxmemory-policy noeviction on it (and put it in its redis.conf)',
    );
  if (role === 'cache' && policy.startsWith('allkeys-'))
    return new RedisConfigError(
      `the cache Redis (REDIS_URL) runs maxmemory-policy ${policy}: it may evict version markers, tag sets or the sequence, which lets stale values be cached`,
      'CONFIG SET maxmemory-policy volatile-lru on it (only values and leases carry TTLs, so only they are evicted)',
    );
  if (role === 'shared') {
    const split =
      'give the queue its own Redis: QUEUE_REDIS_URL=<a Redis with maxmemory-policy noeviction>, and run the cache Redis on volatile-lru';
    if (policy !== 'noeviction')
      return new RedisConfigError(
        `REDIS_URL also holds the queue (QUEUE_REDIS_URL unset) and runs maxmemory-policy ${policy}: it may evict invalidation jobs`,
        `${split}; or CONFIG SET maxmemory-policy noeviction with maxmemory 0`,
      );
    if (maxmemory > 0)
      return new RedisConfigError(
        `REDIS_URL also holds the queue (QUEUE_REDIS_URL unset) with maxmemory ${maxmemory} and noeviction: once full it refuses new jobs and markers while it still answers GETs, so cached values stay stale`,
        `${split}; or CONFIG SET maxmemory 0 on the shared Redis`,
      );
  }
  return undefined;
}

/**
 * Checks the cache and queue Redis at startup (the same client twice when they are one
 * server). Throws RedisConfigError for a configuration that cannot stay correct. What it
 * cannot check (CONFIG refused, as on some managed services; Redis not reachable yet: the
 * apps' reconnect loops handle that) is reported to `warn` and does not stop the start.
 */
export async function checkRedisMemoryPolicies(
  cache: RedisClient,
  queue: RedisClient,
  warn: (message: string, error?: unknown) => void,
): Promise<void> {
  // On a Redis Cluster each master has its own configuration: every master is checked.
  const roles: [RedisRole, RedisClient][] =
    cache === queue
      ? [['shared', cache]]
      : [
          ['cache', cache],
          ['queue', queue],
        ];
  const targets = roles.flatMap(([role, client]) => mastersOf(client).map((node) => [role, node] as const));
  for (const [role, redis] of targets) {
    let config: RedisMemoryConfig | undefined;
    try {
      // Why 5 s: a reachable Redis answers CONFIG GET in a millisecond.
      config = await withTimeout(readMemoryConfig(redis), 5_000, `CONFIG GET on the ${role} Redis`);
    } catch (error) {
      warn(`could not check the memory policy of the ${role} Redis at start`, error);
      continue;
    }
    if (!config) {
      warn(
        `could not read maxmemory-policy of the ${role} Redis (CONFIG GET refused); make sure it is ${role === 'cache' ? 'volatile-lru (or noeviction)' : 'noeviction'}`,
      );
      continue;
    }
    const problem = memoryConfigProblem(role, config);
    if (problem) throw problem;
  }
}
