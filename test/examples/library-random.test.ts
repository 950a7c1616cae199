import { join } from 'node:path';
import { loadConfigFile } from '@walcache/config';
import { bodyOf, decodeEntry, keyspace, resourceKeyOf } from '@walcache/core';
import { createDb } from '@walcache/db';
import { type CompiledConfig, compileConfig } from '@walcache/resources';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, rng, testQueue, waitCaughtUp } from '../support/cdc-harness.ts';
import type { Stack } from '../support/stack.ts';
import { type ExampleSystem, sqlFile, startSystem } from './support.ts';

/**
 * Randomized: many INSERT/UPDATE/DELETE on every table and column the library config reads,
 * from a plain client, while readers fill the cache; once quiet, every cached value equals a
 * fresh load. WALCACHE_SEED replays a run (the operation sequence depends on the seed only).
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'library');
const MUTATIONS = 400;
const seed = Number(process.env.WALCACHE_SEED ?? Math.floor(Math.random() * 1_000_000));

let system: ExampleSystem;
let stack: Stack;
let writer: pg.Client;
let admin: pg.Pool;
let compiled: CompiledConfig;

beforeAll(async () => {
  const configPath = join(fixture, 'walcache.config.yaml');
  system = await startSystem(sqlFile(join(fixture, 'schema.sql')), configPath);
  ({ stack, writer } = system);
  // Guarded: Postgres stops at the end with this pool's idle clients possibly still closing.
  admin = adminPool(stack.env.DATABASE_URL);
  compiled = await compileConfig(await loadConfigFile(configPath), admin);
});

afterAll(async () => {
  await admin?.end().catch(() => undefined);
  await system?.stop();
});

/** One random change, with the SQL that made it (named in a failure). */
function mutation(random: () => number): { sql: string; values: unknown[] } {
  const pick = (n: number) => 1 + Math.floor(random() * n);
  const book = pick(1000);
  const author = pick(100);
  switch (Math.floor(random() * 14)) {
    case 0:
      return {
        sql: 'update lib.authors set name = $1 where id = $2',
        values: [`Author r${pick(1e6)}`, author],
      };
    case 1:
      return { sql: 'update lib.books set title = $1 where id = $2', values: [`Title r${pick(1e6)}`, book] };
    case 2:
      return { sql: 'update lib.books set author_id = $1 where id = $2', values: [author, book] };
    case 3:
      return {
        sql: 'update lib.books set price = price + 1, keywords = keywords || $1::text, meta = meta || $2::jsonb where id = $3',
        values: [`k${pick(9)}`, JSON.stringify({ r: pick(99) }), book],
      };
    case 4:
      return {
        sql: "update lib.books set isbn = '978-' || lpad($1::text, 9, '0') where id = $2 and not exists (select 1 from lib.books where isbn = '978-' || lpad($1::text, 9, '0'))",
        values: [String(2000 + pick(5000)), book],
      };
    case 5:
      return {
        sql: 'update lib.genres set label = $1 where code = $2',
        values: [`Genre r${pick(1e6)}`, `g${pick(12)}`],
      };
    case 6:
      return {
        sql: 'insert into lib.book_genres (book_id, genre_code) values ($1, $2) on conflict do nothing',
        values: [book, `g${pick(12)}`],
      };
    case 7:
      return {
        sql: 'delete from lib.book_genres where book_id = $1 and genre_code = $2',
        values: [book, `g${pick(12)}`],
      };
    case 8:
      return {
        sql: "update lib.loans set status = (array['active','returned','lost']::lib.loan_status[])[$1] where id = $2",
        values: [pick(3), pick(2000)],
      };
    case 9:
      return {
        sql: "insert into lib.loans (member_id, book_id, status, loaned_at) values ($1, $2, 'active', timestamptz '2026-01-01' + ($3 || ' minutes')::interval)",
        values: [pick(300), book, pick(400_000)],
      };
    case 10:
      return { sql: 'update lib.loans set book_id = $1 where id = $2', values: [book, pick(2000)] };
    case 11:
      return {
        sql: "update lib.members set email = 'm' || $1 || '@example.org', name = $2 where id = $3 and not exists (select 1 from lib.members where email = 'm' || $1 || '@example.org')",
        values: [String(pick(1e6)), `Member r${pick(1e6)}`, pick(300)],
      };
    case 12:
      return {
        sql: "insert into lib.books (author_id, isbn, title, price) select $1, '978-' || lpad($2::text, 9, '0'), $3, 9.99 where not exists (select 1 from lib.books where isbn = '978-' || lpad($2::text, 9, '0'))",
        values: [author, String(10_000 + pick(50_000)), `New r${pick(1e6)}`],
      };
    default:
      return { sql: 'delete from lib.loans where id = $1', values: [pick(2000)] };
  }
}

/** Paths a reader visits: every resource, a few parameters each. */
function readPath(random: () => number): string {
  const pick = (n: number) => 1 + Math.floor(random() * n);
  const paths = [
    () => `/v1/book/${pick(40)}`,
    () => `/v1/books/isbn/978-${String(pick(40)).padStart(9, '0')}`,
    () => `/v1/books?limit=${pick(3) * 5}`,
    () => `/v1/author/${pick(20)}`,
    () => `/v1/genre/g${pick(12)}`,
    () => `/v1/members/${pick(20)}/loans?limit=5`,
    () => `/v1/members/by-email/member${pick(20)}@example.org`,
  ];
  return paths[Math.floor(random() * paths.length)]!();
}

describe(`randomized mutations on the library schema (seed ${seed}, ${MUTATIONS} mutations)`, () => {
  it('once quiet, every cached value equals a fresh load', async () => {
    console.log(`library random seed ${seed} (WALCACHE_SEED=${seed} replays it), ${MUTATIONS} mutations`);
    const random = rng(seed);
    // Mutations and reads interleave from one seeded sequence; the focus ids (≤ 40) are
    // both written and read, so invalidations race fills.
    const focus = () => random() * 0.5;
    let done = false;
    const readers = Array.from({ length: 3 }, async (_, r) => {
      const readRandom = rng(seed + r + 1);
      // At least 150 reads each: on a fast machine the writer can finish before readers warm up.
      for (let reads = 0; !done || reads < 150; reads++) {
        await fetch(`${stack.api.url}${readPath(readRandom)}`).then((res) => res.arrayBuffer());
      }
    });
    const applied: string[] = [];
    for (let i = 0; i < MUTATIONS; i++) {
      const m = mutation(() => (random() < 0.6 ? focus() : random()));
      await writer.query(m.sql, m.values);
      applied.push(`${m.sql} ${JSON.stringify(m.values)}`);
    }
    done = true;
    await Promise.all(readers);
    await waitCaughtUp(admin, stack.env, testQueue(stack.env), 60_000);

    const redis = new Redis(stack.env.REDIS_URL);
    const keys = keyspace(stack.env.CACHE_PREFIX);
    const db = createDb(admin);
    const stale: string[] = [];
    let checked = 0;
    let cursor = '0';
    try {
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${keys.prefix}:{*}`, 'COUNT', 500);
        cursor = next;
        for (const redisKey of batch) {
          const key = resourceKeyOf(keys, redisKey);
          if (!key) continue; // a lease
          const resource = compiled.resourceForKey(key);
          const params = resource?.paramsFromKey?.(key);
          if (!resource || !params) throw new Error(`a key walcache did not build: ${redisKey}`);
          const raw = await redis.getBuffer(redisKey);
          if (!raw) continue;
          checked += 1;
          const value = await resource.load(db, resource.params.parse(params));
          const fresh = bodyOf(value);
          const cachedBody = decodeEntry(raw).body;
          if (!cachedBody.equals(fresh))
            stale.push(`${key}: cached ${cachedBody} but the database says ${fresh}`);
        }
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    console.log(JSON.stringify({ seed, mutations: applied.length, checked, stale: stale.length }));
    // A check of nothing proves nothing: enough values must have been cached by the readers.
    expect(checked).toBeGreaterThan(15);
    expect(stale).toEqual([]);
  }, 180_000);
});
