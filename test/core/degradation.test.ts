/**
 * Degrade, never lie (invariant 4) at the cache engine: Postgres down → hits still answer,
 * misses raise SourceUnavailableError (503 in the API); Redis killed under load → no errors,
 * BYPASS answers from Postgres while it is down (the breaker skips Redis instead of waiting
 * on it), and caching resumes by itself after the restart.
 */
import { type BreakerState, CircuitBreaker, ReadThroughCache, SourceUnavailableError } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { startRedis, waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { articleDetail } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { EventCounter } from './support.ts';

let servers: Servers;
let pool: pg.Pool;
let db: Db;
let redis: Redis;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 30, tags: 3, commentsPerArticle: 1 });
  pool = createPool({ connectionString: servers.pg.url, max: 4 });
  db = createDb(pool);
  // The API's client settings: fail fast while Redis is down instead of queueing commands.
  redis = new Redis(servers.redis.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 250,
  });
  redis.on('error', () => {}); // connection errors are expected in this file; requests count them
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
});

afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

describe('degradation', () => {
  it('Postgres down: hits still answer, misses raise SourceUnavailableError, and recover', async () => {
    const cache = new ReadThroughCache({ redis, db, prefix: 'pgdown' });
    const warm = await cache.get(articleDetail, { id: '1' });
    expect(warm.status).toBe('MISS');

    await servers.pg.stopServer();
    try {
      const hit = await cache.get(articleDetail, { id: '1' });
      expect(hit.status).toBe('HIT');
      expect(hit.body.equals(warm.body)).toBe(true);
      await expect(cache.get(articleDetail, { id: '2' })).rejects.toBeInstanceOf(SourceUnavailableError);
      // The failed load gave its lease back: nothing is left blocking the key.
      expect(await redis.exists(cache.keys.lease('article:2'))).toBe(0);
    } finally {
      await servers.pg.startServer();
    }
    await waitFor(async () => (await cache.get(articleDetail, { id: '2' })).found, {
      what: 'misses to load again after Postgres is back',
    });
  });

  it('Redis killed under load: no errors, BYPASS while down, hits again after restart', async () => {
    const events = new EventCounter();
    const states: BreakerState[] = [];
    const cache = new ReadThroughCache({
      redis,
      db,
      prefix: 'redisdown',
      events,
      breaker: new CircuitBreaker({ onStateChange: (s) => states.push(s) }),
    });
    const errors: unknown[] = [];
    let reads = 0;
    let stop = false;
    // Four concurrent readers over 30 keys until told to stop.
    const reader = async (n: number) => {
      for (let i = n; !stop; i++) {
        try {
          const r = await cache.get(articleDetail, { id: String(1 + (i % 30)) });
          if (!r.found) errors.push(new Error(`article ${1 + (i % 30)} not found`));
          reads += 1;
        } catch (error) {
          errors.push(error);
        }
      }
    };
    const readers = [0, 1, 2, 3].map(reader);
    try {
      await waitFor(() => events.outcomes.HIT > 50, { what: 'a warm cache' });
      await servers.redis.kill();
      const bypassBefore = events.outcomes.BYPASS;
      await waitFor(() => events.outcomes.BYPASS > bypassBefore + 100, { what: 'BYPASS answers' });
      expect(states).toContain('open');
      await servers.redis.startServer();
      const hitsBefore = events.outcomes.HIT;
      // Why 20 s: the breaker probes once a second and ioredis reconnects with backoff; on a
      // loaded 2-core machine the first successful probe can take several seconds.
      await waitFor(() => events.outcomes.HIT > hitsBefore + 50, {
        timeoutMs: 20_000,
        what: 'hits after Redis is back',
      });
    } finally {
      stop = true;
      await Promise.all(readers);
    }
    expect(errors).toEqual([]);
    expect(states.at(-1)).toBe('closed');
    expect(events.redisErrors).toBeGreaterThan(0); // failing open is counted
    expect(reads).toBeGreaterThan(200);
  });

  it('Redis out of memory (noeviction): reads answer from Postgres, the breaker stays closed, errors are counted', async () => {
    // Why 1 MB: an empty redis-server already uses about that much, so every write is refused.
    const full = await startRedis({ maxmemory: '1mb', maxmemoryPolicy: 'noeviction' });
    const client = new Redis(full.url);
    try {
      const events = new EventCounter();
      const cache = new ReadThroughCache({ redis: client, db, prefix: 'oom', events });
      await expect(client.set('probe', 'x'.repeat(100_000))).rejects.toThrow(/OOM/);
      for (let i = 0; i < 10; i++) {
        // Even the lease cannot be written: each read is answered from Postgres, uncached.
        const r = await cache.get(articleDetail, { id: '1' });
        expect(r.status).toBe('BYPASS');
        expect(r.found).toBe(true);
      }
      // Redis answered every time (with an error): the breaker stays closed, so hits of
      // values already cached would still be served.
      expect(cache.breaker.state).toBe('closed');
      expect(events.redisErrors).toBeGreaterThan(0);
      expect(events.fills).toBe(0);
    } finally {
      client.disconnect();
      await full.stop();
    }
  });
});
