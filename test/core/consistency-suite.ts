/**
 * Randomized consistency: concurrent writers through plain `pg` (updates, renames, comment
 * inserts and deletes, tag changes, publish toggles, article inserts and deletes) while
 * concurrent readers go through the HTTP API and through a second cache instance (two API
 * processes), with the real CDC and invalidator in between. During the run, a checker
 * judges reads against the staleness bound: a key whose fresh load stays the same over a
 * window of more than the bound must be answered with that value by a read made once the
 * bound has passed. After the writers stop and the queue drains, every cached value must
 * equal a fresh load, and every read must answer the fresh value.
 * Bounded by operation counts, not by time. The seed fixes every writer's operations and
 * arguments before the run starts (WALCACHE_SEED=<seed> replays the same sequence; only the
 * interleaving of the concurrent writers and readers differs).
 * Declared by consistency.test.ts (one Redis) and test/cluster/consistency.test.ts (cache
 * and queue on a Redis Cluster), on the Redis their `start` gives.
 */
import { createHash } from 'node:crypto';
import { redisTarget } from '@walcache/config';
import { type AnyResource, createRedisClient, ReadThroughCache, type RedisClient } from '@walcache/core';
import type { Db } from '@walcache/resources';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { articleComments, articleDetail, articleList, tagList, userProfile } from '../support/blog.ts';
import { rng } from '../support/cdc-harness.ts';
import { appLogger, type Servers, startServers } from '../support/stack.ts';
import { type Pipeline, startPipeline } from './pipeline.ts';

const WRITERS = 3;
const READERS = 4;
const USERS = 20;
const ARTICLES = 40;
const SENTINEL_USER = String(USERS); // no writer touches it (see pipeline.drain)
/**
 * The staleness bound reads are judged against during the run. Why 2 s: well above the
 * invalidation p99 the bench measures at 1 000 commits/s (tens of ms), with room for a
 * machine running the rest of the suite; a read older than this is a late or lost invalidation.
 */
const BOUND_MS = 2_000;
/** Judged reads without which the in-run check proves nothing. */
const MIN_CONCLUSIVE_CHECKS = 20;
/** How often the checker re-loads a key during its window, to tell a stable key from a changing one. */
const POLL_MS = 200;

type Target = { resource: AnyResource<Db>; params: Record<string, unknown>; path: string };

const declaredTargets: Target[] = [
  ...Array.from({ length: ARTICLES + 2 }, (_, i) => ({
    resource: articleDetail,
    params: { id: String(i + 1) },
    path: `/v1/articles/${i + 1}`,
  })),
  ...Array.from({ length: USERS }, (_, i) => ({
    resource: userProfile,
    params: { id: String(i + 1) },
    path: `/v1/users/${i + 1}`,
  })),
  ...Array.from({ length: 10 }, (_, i) => ({
    resource: articleComments,
    params: { id: String(i + 1), limit: 5 },
    path: `/v1/articles/${i + 1}/comments?limit=5`,
  })),
  { resource: articleList, params: { limit: 10 }, path: '/v1/articles?limit=10' },
  { resource: articleList, params: { limit: 5 }, path: '/v1/articles?limit=5' },
  { resource: tagList, params: {}, path: '/v1/tags' },
];
/** Canonical params need the compiled resources: built once startServers has compiled them. */
let targets: Target[] = [];

let servers: Servers;
let p: Pipeline;
let second: ReadThroughCache<Db>;
let secondRedis: RedisClient;
let api: Awaited<ReturnType<typeof startApi>>;

/** A reader: a cache instance, or the HTTP API (which answers 404 problem+json for null). */
type Reader = ReadThroughCache<Db> | 'http';

/** The answer as the cache stores it: the JSON body, `null` for "not found". */
async function read(reader: Reader, t: Target): Promise<string> {
  if (reader !== 'http') return (await reader.get(t.resource, t.params)).body.toString();
  const res = await fetch(`${api.url}${t.path}`);
  const text = await res.text();
  if (res.status === 404) return 'null';
  if (res.status !== 200) throw new Error(`${t.path} answered ${res.status}: ${text}`);
  return text;
}

/** One planned write: its kind and the SQL statements (run in one transaction when several). */
type PlannedOp = { name: string; statements: [string, unknown[]][] };

/** Every writer's operations, from the seed alone (nothing here depends on timing). */
function planWrites(seed: number, opsPerWriter: number): PlannedOp[][] {
  return Array.from({ length: WRITERS }, (_, w) => {
    const random = rng(seed * 31 + w);
    const pick = (n: number) => 1 + Math.floor(random() * n);
    const userToWrite = () => pick(USERS - 1); // never the sentinel
    const kinds: [string, (n: number) => [string, unknown[]][]][] = [
      [
        'update title',
        (n) => [['update articles set title = $1 where id = $2', [`title ${n}`, pick(ARTICLES)]]],
      ],
      ['rename user', (n) => [['update users set name = $1 where id = $2', [`user ${n}`, userToWrite()]]]],
      [
        'insert comment',
        (n) => [
          [
            'insert into comments (article_id, author_id, body) select $1, $2, $3 where exists (select 1 from articles where id = $1)',
            [pick(ARTICLES), userToWrite(), `comment ${n}`],
          ],
        ],
      ],
      [
        'delete comment',
        () => [
          [
            'delete from comments where id = (select id from comments where article_id = $1 order by id limit 1)',
            [pick(ARTICLES)],
          ],
        ],
      ],
      [
        'tag an article',
        () => [
          [
            'insert into article_tags (article_id, tag_id) select a.id, t.id from articles a, tags t where a.id = $1 and t.id = $2 on conflict do nothing',
            [pick(ARTICLES), pick(6)],
          ],
        ],
      ],
      [
        'untag an article',
        () => [['delete from article_tags where article_id = $1 and tag_id = $2', [pick(ARTICLES), pick(6)]]],
      ],
      ['rename tag', (n) => [['update tags set name = $1 where id = $2', [`tag-${n}`, pick(6)]]]],
      [
        'toggle published',
        () => [['update articles set published = not published where id = $1', [pick(ARTICLES)]]],
      ],
      [
        'move article to another author',
        () => [['update articles set author_id = $1 where id = $2', [userToWrite(), pick(ARTICLES)]]],
      ],
      [
        'insert article',
        (n) => [
          [
            'insert into articles (author_id, title, body) values ($1, $2, $3)',
            [userToWrite(), `new ${n}`, 'x'],
          ],
        ],
      ],
      ['delete article', () => [['delete from articles where id = $1', [pick(ARTICLES)]]]],
      [
        'several in one transaction',
        (n) => [
          ['update users set name = $1 where id = $2', [`tx user ${n}`, userToWrite()]],
          ['update articles set title = $1 where id = $2', [`tx title ${n}`, pick(ARTICLES)]],
        ],
      ],
    ];
    const ops: PlannedOp[] = [];
    for (let k = 0; k < opsPerWriter; k++) {
      const [name, make] = kinds[Math.floor(random() * kinds.length)]!;
      // Rarer deletes, so most of the run has rows to read.
      if (name === 'delete article' && random() < 0.7) continue;
      ops.push({ name, statements: make(w * opsPerWriter + k) });
    }
    return ops;
  });
}

async function runPlanned(c: pg.Client, op: PlannedOp): Promise<void> {
  if (op.statements.length === 1) {
    const [sql, values] = op.statements[0]!;
    await c.query(sql, values);
    return;
  }
  await c.query('begin');
  for (const [sql, values] of op.statements) await c.query(sql, values);
  await c.query('commit');
}

/** A short digest of a plan, printed with the seed: the same seed prints the same digest. */
function digest(plan: PlannedOp[][]): string {
  return createHash('sha256').update(JSON.stringify(plan)).digest('hex').slice(0, 12);
}

/** Where the suite runs: Redis URLs for the apps (one server when none), stopped afterwards. */
export interface ConsistencyWorld {
  redisOverrides: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Declares the test on the world `start` builds. `opsPerWriter` sizes the run (200 on one
 * server; a cluster run in `npm test` is smaller, every node and app sharing two cores).
 */
export function describeConsistency(
  where: string,
  opsPerWriter: number,
  start: () => Promise<ConsistencyWorld | undefined>,
): void {
  let world: ConsistencyWorld | undefined;
  beforeAll(async () => {
    world = await start();
    servers = await startServers({ users: USERS, articles: ARTICLES, tags: 6, commentsPerArticle: 2 });
    targets = declaredTargets.map((t) => ({
      ...t,
      params: t.resource.params.parse(t.params) as Record<string, unknown>,
    }));
    p = await startPipeline(servers, { sentinelUser: SENTINEL_USER, overrides: world?.redisOverrides });
    secondRedis = createRedisClient(redisTarget(p.env.REDIS_URL, p.env), {});
    second = new ReadThroughCache({ redis: secondRedis, db: p.db, prefix: p.env.CACHE_PREFIX });
    api = await startApi(p.env, appLogger('api'));
  });

  afterAll(async () => {
    await api?.close();
    secondRedis?.disconnect();
    await p?.stop();
    await servers?.stop();
    await world?.stop();
  });

  it('reads during the run stay within the staleness bound; after the queue drains, every cached value equals a fresh load', async () => {
    const seed = Number(process.env.WALCACHE_SEED ?? Date.now() % 1_000_000);
    const plan = planWrites(seed, opsPerWriter);
    expect(digest(planWrites(seed, opsPerWriter))).toBe(digest(plan)); // a pure function of the seed
    console.log(
      `consistency (${where}) seed ${seed}, plan ${digest(plan)} (WALCACHE_SEED=${seed} replays it)`,
    );
    // Readers choose their targets from their own stream: it cannot shift the writers' plan.
    const readRandom = rng(seed ^ 0x5bd1e995);

    const ops: Record<string, number> = {};
    const writerClients = await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        const c = new pg.Client({ connectionString: p.env.DATABASE_URL });
        await c.connect();
        return c;
      }),
    );

    let stopReading = false;
    let reads = 0;
    const readErrors: unknown[] = [];
    const readOne = async (reader: Reader, t: Target) => {
      try {
        await read(reader, t);
        reads += 1;
      } catch (error) {
        readErrors.push(error);
      }
    };
    const randomTarget = () => targets[Math.floor(readRandom() * targets.length)]!;

    // The in-run checker: load a key, keep re-loading it for the bound, read it through a
    // cache, load it once more. When every load agreed, the key did not change for longer than
    // the bound before the read, so the read must answer exactly that value.
    const fresh = async (t: Target) => JSON.stringify(await t.resource.load(p.db, t.params));
    const checks = { conclusive: 0, inconclusive: 0 };
    const staleDuringRun: string[] = [];
    const checkOnce = async (reader: Reader, t: Target) => {
      const first = await fresh(t);
      let stable = true;
      const until = Date.now() + BOUND_MS;
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if ((await fresh(t)) !== first) stable = false;
      }
      let answer: string;
      try {
        answer = await read(reader, t);
      } catch (error) {
        readErrors.push(error);
        return;
      }
      if (!stable || (await fresh(t)) !== first) {
        checks.inconclusive += 1;
        return;
      }
      checks.conclusive += 1;
      if (answer !== first)
        staleDuringRun.push(
          `${t.path} (${reader === 'http' ? 'http' : 'second cache'}): ${answer} but ${first}`,
        );
    };
    const pendingChecks: Promise<void>[] = [];
    const checker = (async () => {
      for (let i = 0; !stopReading; i++) {
        pendingChecks.push(checkOnce(i % 2 === 0 ? 'http' : second, randomTarget()));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // Everything cached before the first write: each of those values must be invalidated.
    for (const t of targets) await readOne(p.cache, t);
    const readers = Array.from({ length: READERS }, async (_, r) => {
      const cache: Reader = r % 2 === 0 ? 'http' : second;
      while (!stopReading) await readOne(cache, randomTarget());
    });
    const writers = writerClients.map(async (c, w) => {
      for (const op of plan[w]!) {
        await runPlanned(c, op);
        ops[op.name] = (ops[op.name] ?? 0) + 1;
        // Two reads per write from this loop too, so reads keep pace with writes on a busy machine.
        await readOne(w % 2 === 0 ? 'http' : second, randomTarget());
        await readOne(w % 2 === 0 ? second : 'http', randomTarget());
      }
    });
    try {
      await Promise.all(writers);
      // A run the machine finished quickly (three writers' 200 operations in 4 s) leaves few
      // keys stable for a whole 2 s window: the checker goes on judging, the readers reading,
      // while the last writes' invalidations are still in flight, until it has concluded
      // enough checks (or 30 s passed; the assertion below then says so).
      const until = Date.now() + 30_000;
      while (checks.conclusive < MIN_CONCLUSIVE_CHECKS && Date.now() < until)
        await new Promise((r) => setTimeout(r, 100));
    } finally {
      stopReading = true;
      await Promise.all([...readers, checker]);
      await Promise.all(pendingChecks);
      await Promise.all(writerClients.map((c) => c.end()));
    }
    await p.drain();

    let cachedValues = 0;
    let staleCached = 0;
    let staleReads = 0;
    const staleKeys: string[] = [];
    for (const t of targets) {
      const key = t.resource.key(t.params);
      const now = await fresh(t);
      const held = await p.cached(key);
      if (held !== null) {
        cachedValues += 1;
        if (held !== now) {
          staleCached += 1;
          staleKeys.push(key);
        }
      }
      for (const reader of ['http', second] as const) {
        if ((await read(reader, t)) !== now) staleReads += 1;
      }
    }
    const total = Object.values(ops).reduce((a, b) => a + b, 0);
    console.log(
      JSON.stringify({
        seed,
        plan: digest(plan),
        writeOps: total,
        opsByKind: ops,
        concurrentReads: reads,
        boundMs: BOUND_MS,
        checksDuringRun: checks,
        staleDuringRun,
        cachedValuesChecked: cachedValues,
        staleCached,
        staleReadsAfterDrain: staleReads,
        fillsRefused: Object.fromEntries(p.events.refusals),
        staleKeys,
      }),
    );
    expect(readErrors).toEqual([]);
    expect(total).toBe(plan.flat().length);
    // Enough judged reads that the in-run check cannot pass by judging nothing.
    expect(checks.conclusive).toBeGreaterThanOrEqual(MIN_CONCLUSIVE_CHECKS);
    expect(staleDuringRun).toEqual([]);
    expect(cachedValues).toBeGreaterThan(0);
    expect(staleKeys).toEqual([]);
    expect(staleReads).toBe(0);
  }, 300_000);
}
