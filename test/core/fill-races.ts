/**
 * The fill protocol's race contract, run unchanged against walcache's ReadThroughCache and
 * against a naive cache-aside, on whatever Redis `start` gives (one server: races.test.ts; a
 * Redis Cluster: test/cluster/cache.test.ts). Each test forces one interleaving with
 * barriers (no sleeps): a fill parked at a protocol step while a writer commits and the
 * invalidation for that commit runs. walcache must end with nothing stale cached; the naive
 * cache must end stale, which proves each test can see the bug it guards against.
 */
import {
  type CacheResult,
  decodeEntry,
  type FillHooks,
  flushNamespace,
  invalidateTags,
  type Keyspace,
  ReadThroughCache,
  type RedisClient,
  type Resource,
  rowTag,
  type Tag,
  tableTag,
} from '@walcache/core';
import type { Db } from '@walcache/resources';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { articleDetail, userProfile } from '../support/blog.ts';
import { NaiveCache } from './naive-cache.ts';
import { Parking } from './support.ts';

/** What the suite runs on: the blog schema seeded in Postgres, a cache Redis, a writer. */
export interface RaceWorld {
  redis: RedisClient;
  db: Db;
  writer: pg.Client;
  stop(): Promise<void>;
}

/** What the contract needs from a cache: reads, refreshes and what it holds. */
interface CacheUnderTest {
  keys: Keyspace;
  get<P, V>(resource: Resource<Db, P, V>, params: P): Promise<CacheResult>;
  refresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<unknown>;
}

interface Implementation {
  name: string;
  /** The naive cache is expected to end with a stale value in every test. */
  endsStale: boolean;
  make(prefix: string, parking: Parking): CacheUnderTest;
  /** The seams it has: a test parking at another stage does not apply to it. */
  stages?: ReadonlySet<keyof FillHooks>;
}

/** Declares the suite (both implementations) on the world `start` builds, shared by its tests. */
export function describeFillRaces(where: string, start: () => Promise<RaceWorld>): void {
  let w: RaceWorld;
  beforeAll(async () => {
    w = await start();
  });
  afterAll(async () => {
    await w?.stop();
  });

  const implementations: Implementation[] = [
    {
      name: 'walcache ReadThroughCache',
      endsStale: false,
      make: (prefix, parking) =>
        // leaseWaitMs: a second instance parked behind a barrier must not time out its wait.
        new ReadThroughCache({ redis: w.redis, db: w.db, prefix, hooks: parking.hooks, leaseWaitMs: 5_000 }),
    },
    {
      // Without a seam inside steps 1 and 3–5, one server runs each step as one round trip
      // (the lease with the sequence read; registration, version check and compare-and-set in
      // one script): the races below then meet those, not the step-by-step path.
      name: 'walcache ReadThroughCache, steps in one round trip each',
      endsStale: false,
      stages: new Set(['afterLease', 'afterLoad', 'joined']),
      make: (prefix, parking) => {
        const { withinStep1: _w, beforeCas: _b, ...between } = parking.hooks;
        return new ReadThroughCache({ redis: w.redis, db: w.db, prefix, hooks: between, leaseWaitMs: 5_000 });
      },
    },
    {
      name: 'naive cache-aside (GET/SET)',
      endsStale: true,
      make: (prefix, parking) => new NaiveCache({ redis: w.redis, db: w.db, prefix, hooks: parking.hooks }),
    },
  ];

  let prefixes = 0;

  describe.each(implementations)(`fill races against $name on ${where}`, (impl) => {
    /** A test that parks a fill at `stage`, skipped where the implementation has no such seam. */
    const at = (stage: keyof FillHooks) => it.skipIf(impl.stages !== undefined && !impl.stages.has(stage));
    const setup = () => {
      const parking = new Parking();
      prefixes += 1;
      const cache = impl.make(`race${prefixes}`, parking);
      /** The invalidator's work for a commit: delete policy. */
      const invalidate = (tags: Tag[]) => invalidateTags(w.redis, cache.keys, tags);
      /** What Redis holds for a key (null: nothing cached). */
      const cached = async (key: string) => {
        const raw = await w.redis.getBuffer(cache.keys.value(key));
        return raw ? decodeEntry(raw).body.toString() : null;
      };
      const fresh = async <P, V>(resource: Resource<Db, P, V>, params: P) =>
        JSON.stringify(await resource.load(w.db, params));
      /** Stale = a value cached that differs from what the database holds now. */
      const isStale = async <P, V>(resource: Resource<Db, P, V>, params: P) => {
        const held = await cached(resource.key(params));
        return held !== null && held !== (await fresh(resource, params));
      };
      return { parking, cache, invalidate, cached, fresh, isStale };
    };

    it('(a) reader loads the old row, writer commits, invalidation runs, then the reader fills', async () => {
      const { parking, cache, invalidate, isStale, fresh } = setup();
      const params = { id: '5' };
      const parked = parking.park('afterLoad', 'article:5');
      const reader = cache.get(articleDetail, params);
      await parked.arrived; // the reader holds the old row

      await w.writer.query('update articles set title = $1 where id = 5', [`(a) ${impl.name}`]);
      await invalidate([rowTag('articles', 5), tableTag('articles')]); // what the CDC emits
      parked.release();
      const answered = await reader;

      // The reader's own answer predates the commit: that is bounded staleness, not a bug.
      expect(JSON.parse(answered.body.toString()).title).not.toBe(`(a) ${impl.name}`);
      expect(await isStale(articleDetail, params)).toBe(impl.endsStale);
      if (!impl.endsStale) {
        expect((await cache.get(articleDetail, params)).body.toString()).toBe(
          await fresh(articleDetail, params),
        );
      }
    });

    it("(b) the stale dependency is only known after the load: the author's rename", async () => {
      const { parking, cache, invalidate, isStale } = setup();
      const params = { id: '6' };
      const { rows } = await w.writer.query<{ author_id: string }>(
        'select author_id from articles where id = 6',
      );
      const authorId = rows[0]!.author_id;
      const parked = parking.park('afterLoad', 'article:6');
      const reader = cache.get(articleDetail, params);
      await parked.arrived; // loaded with the old author name; row:users:<author> not registered yet

      await w.writer.query('update users set name = $1 where id = $2', [
        `renamed (b) ${impl.name}`,
        authorId,
      ]);
      await invalidate([rowTag('users', authorId), tableTag('users')]);
      parked.release();
      await reader;

      expect(await isStale(articleDetail, params)).toBe(impl.endsStale);
    });

    // (c) parks the reader after its load (it loaded before the commit, the refresh after);
    // (c2) just before its compare-and-set (registered and version-checked, about to write
    // the old value). Either way walcache keeps the refresh's value.
    for (const { label, title, stage, id } of [
      {
        label: '(c)',
        title: 'a fill racing a refresh: the reader loaded before the commit, the refresh after',
        stage: 'afterLoad',
        id: 7,
      },
      {
        label: '(c2)',
        title: 'a fill parked just before its compare-and-set while a refresh runs',
        stage: 'beforeCas',
        id: 8,
      },
    ] as const) {
      at(stage)(`${label} ${title}`, async () => {
        const { parking, cache, invalidate, isStale, cached, fresh } = setup();
        const params = { id: String(id) };
        const parked = parking.park(stage, `user:${id}`);
        const reader = cache.get(userProfile, params);
        await parked.arrived;

        await w.writer.query(`update users set name = $1 where id = ${id}`, [
          `renamed ${label} ${impl.name}`,
        ]);
        // The refresh policy's job: invalidate, then reload and write.
        await invalidate([rowTag('users', id), tableTag('users')]);
        await cache.refresh(userProfile, params);
        parked.release();
        await reader;

        expect(await isStale(userProfile, params)).toBe(impl.endsStale);
        if (!impl.endsStale) expect(await cached(`user:${id}`)).toBe(await fresh(userProfile, params));
      });
    }

    for (const stage of ['afterLoad', 'beforeCas'] as const) {
      at(stage)(
        `(d) two refresh jobs for one key finish out of order (older parked at ${stage})`,
        async () => {
          const { parking, cache, invalidate, isStale, cached, fresh } = setup();
          // A second invalidator process: same namespace, no hooks.
          const other = impl.make(cache.keys.prefix, new Parking());
          const id = stage === 'afterLoad' ? 9 : 10;
          const params = { id: String(id) };
          const key = `user:${id}`;

          await w.writer.query('update users set name = $1 where id = $2', [`first (d) ${impl.name}`, id]);
          await invalidate([rowTag('users', id)]);
          const parked = parking.park(stage, key);
          const older = cache.refresh(userProfile, params); // job 1's refresh, parked with name 1
          await parked.arrived;

          await w.writer.query('update users set name = $1 where id = $2', [`second (d) ${impl.name}`, id]);
          await invalidate([rowTag('users', id)]);
          await other.refresh(userProfile, params); // job 2's refresh finishes first
          parked.release();
          await older;

          expect(await isStale(userProfile, params)).toBe(impl.endsStale);
          if (!impl.endsStale) {
            expect(JSON.parse((await cached(key))!).name).toBe(`second (d) ${impl.name}`);
            expect(await cached(key)).toBe(await fresh(userProfile, params));
          }
        },
      );
    }

    it('(e) two concurrent invalidations write their version markers out of order', async () => {
      const { parking, cache, isStale } = setup();
      const params = { id: '11' };
      // Invalidation 1 (an earlier commit) has its sequence number and stalls before its markers.
      const stalled = new Parking().park('afterLoad', 'x');
      const first = invalidateTags(w.redis, cache.keys, [rowTag('users', 11)], {
        afterIncrement: () => stalled.wait(),
      });
      await stalled.arrived;
      // A fill starts at that sequence and loads.
      const parked = parking.park('afterLoad', 'user:11');
      const reader = cache.get(userProfile, params);
      await parked.arrived;
      // A second commit after the load; its invalidation completes first.
      await w.writer.query('update users set name = $1 where id = 11', [`renamed (e) ${impl.name}`]);
      await invalidateTags(w.redis, cache.keys, [rowTag('users', 11)]);
      // Only now does the first invalidation write its (lower) marker.
      stalled.release();
      await first;
      parked.release();
      await reader;

      expect(await isStale(userProfile, params)).toBe(impl.endsStale);
    });

    it('(f) a fill in flight across a namespace flush (a lost slot: the commit has no invalidation)', async () => {
      const { parking, cache, isStale } = setup();
      const params = { id: '12' };
      const parked = parking.park('afterLoad', 'user:12');
      const reader = cache.get(userProfile, params);
      await parked.arrived;
      // A commit whose change never reaches the invalidator; the CDC finds the gap and flushes.
      await w.writer.query('update users set name = $1 where id = 12', [`renamed (f) ${impl.name}`]);
      await flushNamespace(w.redis, cache.keys);
      parked.release();
      await reader;

      expect(await isStale(userProfile, params)).toBe(impl.endsStale);
    });
  });
}
