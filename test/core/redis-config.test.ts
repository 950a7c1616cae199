/**
 * Issue 11, item 2: the CDC and the invalidator refuse, at start, a Redis memory policy that
 * cannot stay correct, and the message names the fix. Real redis-servers with the policy set.
 */
import { memoryConfigProblem, RedisConfigError } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { type RedisServer, startRedis } from '@walcache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

let servers: Servers;
let allkeys: RedisServer;
let fullShared: RedisServer;
let volatile: RedisServer;

beforeAll(async () => {
  [servers, allkeys, fullShared, volatile] = await Promise.all([
    startServers(false),
    startRedis({ maxmemory: '64mb', maxmemoryPolicy: 'allkeys-lru' }),
    startRedis({ maxmemory: '64mb', maxmemoryPolicy: 'noeviction' }),
    startRedis({ maxmemory: '64mb', maxmemoryPolicy: 'volatile-lru' }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([servers?.stop(), allkeys?.stop(), fullShared?.stop(), volatile?.stop()]);
});

describe('startup refuses a Redis that cannot stay correct', () => {
  it('a cache Redis on allkeys-lru (markers and tag sets evictable)', async () => {
    const env = testEnv(servers, { REDIS_URL: allkeys.url, QUEUE_REDIS_URL: servers.redis.url });
    const refused = startInvalidator(env, silentLogger(), { auditor: false });
    await expect(refused).rejects.toBeInstanceOf(RedisConfigError);
    await expect(refused).rejects.toThrow(/allkeys-lru[\s\S]*fix: .*volatile-lru/);
    await expect(startCdc(env, silentLogger())).rejects.toThrow(/allkeys-lru/);
  });

  it('one Redis for cache and queue with a maxmemory (full: jobs refused, hits still served)', async () => {
    const env = testEnv(servers, { REDIS_URL: fullShared.url });
    await expect(startCdc(env, silentLogger())).rejects.toThrow(
      /QUEUE_REDIS_URL[\s\S]*fix: .*QUEUE_REDIS_URL=/,
    );
    await expect(startInvalidator(env, silentLogger(), { auditor: false })).rejects.toThrow(/maxmemory/);
  });

  it('a queue Redis that may evict (a lost job is a lost invalidation)', async () => {
    const env = testEnv(servers, { REDIS_URL: volatile.url, QUEUE_REDIS_URL: allkeys.url });
    await expect(startCdc(env, silentLogger())).rejects.toThrow(/queue Redis[\s\S]*fix: .*noeviction/);
  });
});

it('the rules, one per role', () => {
  const ok = (role: Parameters<typeof memoryConfigProblem>[0], policy: string, maxmemory = 0) =>
    memoryConfigProblem(role, { policy, maxmemory }) === undefined;
  expect(ok('cache', 'volatile-lru', 1e9)).toBe(true);
  expect(ok('cache', 'volatile-lfu', 1e9)).toBe(true);
  expect(ok('cache', 'noeviction', 1e9)).toBe(true); // full: fills fail open, invalidations still delete
  expect(ok('cache', 'allkeys-lru')).toBe(false);
  expect(ok('cache', 'allkeys-random')).toBe(false);
  expect(ok('queue', 'noeviction', 1e9)).toBe(true);
  expect(ok('queue', 'volatile-lru')).toBe(false);
  expect(ok('shared', 'noeviction')).toBe(true); // the default of npm start
  expect(ok('shared', 'noeviction', 1e9)).toBe(false);
  expect(ok('shared', 'volatile-lru')).toBe(false);
});
