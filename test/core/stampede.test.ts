/**
 * Stampede protection: a cold key read by many requests at once costs one database load,
 * in one process (single-flight) and across processes (the lease: the others wait for the
 * leaseholder's value instead of loading).
 */
import { keyspace, ReadThroughCache } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { articleDetail } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { counting, EventCounter, Parking } from './support.ts';

let servers: Servers;
let pool: pg.Pool;
let db: Db;
const clients: Redis[] = [];

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 20, tags: 3, commentsPerArticle: 1 });
  pool = createPool({ connectionString: servers.pg.url, max: 4 });
  db = createDb(pool);
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await db?.destroy();
  await servers?.stop();
});

/** One "process": its own Redis connection and cache instance. */
function processCache(prefix: string, options: { parking?: Parking; events?: EventCounter } = {}) {
  const redis = new Redis(servers.redis.url);
  clients.push(redis);
  return new ReadThroughCache({
    redis,
    db,
    prefix,
    hooks: options.parking?.hooks,
    events: options.events,
    // Why 10 s: the waiting process must wait for the parked leaseholder however long the
    // test takes to release it; production waits timings.leaseWaitMs.
    leaseWaitMs: 10_000,
  });
}

describe('stampede', () => {
  it('200 concurrent requests for one cold key cause exactly one database load', async () => {
    const resource = counting(articleDetail);
    const events = new EventCounter();
    const cache = processCache('stampede1', { events });
    const answers = await Promise.all(Array.from({ length: 200 }, () => cache.get(resource, { id: '3' })));
    expect(resource.calls).toBe(1);
    expect(events.loads).toBe(1);
    expect(new Set(answers.map((a) => a.body.toString())).size).toBe(1);
    expect(answers.every((a) => a.found)).toBe(true);
    // And the value is cached: the next read is a hit without a load.
    expect((await cache.get(resource, { id: '3' })).status).toBe('HIT');
    expect(resource.calls).toBe(1);
  });

  it('across two processes the others wait for the leaseholder and get its value', async () => {
    const resource = counting(articleDetail);
    const parking = new Parking();
    const eventsA = new EventCounter();
    const eventsB = new EventCounter();
    const a = processCache('stampede2', { parking, events: eventsA });
    const b = processCache('stampede2', { events: eventsB });
    // Process A takes the lease and is held right there, before its load.
    const held = parking.park('afterLease', 'article:4');
    const fromA = Array.from({ length: 100 }, () => a.get(resource, { id: '4' }));
    await held.arrived;
    const fromB = Array.from({ length: 100 }, () => b.get(resource, { id: '4' }));
    await waitFor(() => eventsB.leaseWaits > 0, { what: 'process B to find the lease taken' });
    held.release();

    const answersA = await Promise.all(fromA);
    const answersB = await Promise.all(fromB);
    expect(resource.calls).toBe(1);
    expect(eventsA.fills).toBe(1);
    // B's single-flight waited on A's lease and answered with A's value, from Redis.
    expect(eventsB.leaseWaits).toBe(1);
    expect(eventsB.loads).toBe(0);
    expect(answersB.every((r) => r.status === 'HIT')).toBe(true);
    expect(new Set([...answersA, ...answersB].map((r) => r.etag)).size).toBe(1);
  });

  it('a lease whose holder died expires, and the next reader fills', async () => {
    const resource = counting(articleDetail);
    const cache = processCache('stampede3');
    const keys = keyspace('stampede3');
    // A crashed process's lease, with a short remaining life.
    await clients[0]!.set(keys.lease('article:5'), 'dead-process', 'PX', 50);
    await waitFor(async () => (await clients[0]!.exists(keys.lease('article:5'))) === 0, {
      what: 'the dead lease to expire',
    });
    expect((await cache.get(resource, { id: '5' })).status).toBe('MISS');
    expect((await cache.get(resource, { id: '5' })).status).toBe('HIT');
  });
});
