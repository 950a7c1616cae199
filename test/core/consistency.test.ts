/**
 * Randomized consistency: concurrent writers through plain `pg` (updates, renames, comment
 * inserts and deletes, tag changes, publish toggles, article inserts and deletes) while
 * concurrent readers go through the HTTP API and through a second cache instance (two API
 * processes), with the real CDC and invalidator in between. After the writers stop and the queue drains, every cached
 * value must equal a fresh load, and every read must answer the fresh value.
 * Bounded by operation counts, not by time; the PRNG seed is printed to replay a failure.
 */
import { type AnyResource, ReadThroughCache } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { articleComments, articleDetail, articleList, tagList, userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { type Pipeline, startPipeline } from './pipeline.ts';

const WRITERS = 3;
const OPS_PER_WRITER = 200;
const READERS = 4;
const USERS = 20;
const ARTICLES = 40;
const SENTINEL_USER = String(USERS); // no writer touches it (see pipeline.drain)

let servers: Servers;
let p: Pipeline;
let second: ReadThroughCache<Db>;
let secondRedis: Redis;
let api: Awaited<ReturnType<typeof startApi>>;

beforeAll(async () => {
  servers = await startServers({ users: USERS, articles: ARTICLES, tags: 6, commentsPerArticle: 2 });
  targets = declaredTargets.map((t) => ({
    ...t,
    params: t.resource.params.parse(t.params) as Record<string, unknown>,
  }));
  p = await startPipeline(servers, { sentinelUser: SENTINEL_USER });
  secondRedis = new Redis(p.env.REDIS_URL);
  second = new ReadThroughCache({ redis: secondRedis, db: p.db, prefix: p.env.CACHE_PREFIX });
  api = await startApi(p.env, silentLogger());
});

afterAll(async () => {
  await api?.close();
  secondRedis?.disconnect();
  await p?.stop();
  await servers?.stop();
});

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

it('after the writers stop and the queue drains, every cached value equals a fresh load', async () => {
  const seed = Number(process.env.WALCACHE_SEED ?? Date.now() % 1_000_000);
  console.log(`consistency seed ${seed} (WALCACHE_SEED=${seed} replays it)`);
  const random = prng(seed);
  const pick = (n: number) => 1 + Math.floor(random() * n);
  const userToWrite = () => pick(USERS - 1); // never the sentinel

  const ops: Record<string, number> = {};
  const writerClients = await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      const c = new pg.Client({ connectionString: p.env.DATABASE_URL });
      await c.connect();
      return c;
    }),
  );
  const operations: [string, (c: pg.Client, n: number) => Promise<unknown>][] = [
    [
      'update title',
      (c, n) => c.query('update articles set title = $1 where id = $2', [`title ${n}`, pick(ARTICLES)]),
    ],
    [
      'rename user',
      (c, n) => c.query('update users set name = $1 where id = $2', [`user ${n}`, userToWrite()]),
    ],
    [
      'insert comment',
      (c, n) =>
        c.query(
          'insert into comments (article_id, author_id, body) select $1, $2, $3 where exists (select 1 from articles where id = $1)',
          [pick(ARTICLES), userToWrite(), `comment ${n}`],
        ),
    ],
    [
      'delete comment',
      (c) =>
        c.query(
          'delete from comments where id = (select id from comments where article_id = $1 order by id limit 1)',
          [pick(ARTICLES)],
        ),
    ],
    [
      'tag an article',
      (c) =>
        c.query(
          'insert into article_tags (article_id, tag_id) select a.id, t.id from articles a, tags t where a.id = $1 and t.id = $2 on conflict do nothing',
          [pick(ARTICLES), pick(6)],
        ),
    ],
    [
      'untag an article',
      (c) =>
        c.query('delete from article_tags where article_id = $1 and tag_id = $2', [pick(ARTICLES), pick(6)]),
    ],
    ['rename tag', (c, n) => c.query('update tags set name = $1 where id = $2', [`tag-${n}`, pick(6)])],
    [
      'toggle published',
      (c) => c.query('update articles set published = not published where id = $1', [pick(ARTICLES)]),
    ],
    [
      'move article to another author',
      (c) => c.query('update articles set author_id = $1 where id = $2', [userToWrite(), pick(ARTICLES)]),
    ],
    [
      'insert article',
      (c, n) =>
        c.query('insert into articles (author_id, title, body) values ($1, $2, $3)', [
          userToWrite(),
          `new ${n}`,
          'x',
        ]),
    ],
    ['delete article', (c) => c.query('delete from articles where id = $1', [pick(ARTICLES)])],
    [
      'several in one transaction',
      async (c, n) => {
        await c.query('begin');
        await c.query('update users set name = $1 where id = $2', [`tx user ${n}`, userToWrite()]);
        await c.query('update articles set title = $1 where id = $2', [`tx title ${n}`, pick(ARTICLES)]);
        await c.query('commit');
      },
    ],
  ];

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
  // Everything cached before the first write: each of those values must be invalidated.
  for (const t of targets) await readOne(p.cache, t);
  const readers = Array.from({ length: READERS }, async (_, r) => {
    const cache: Reader = r % 2 === 0 ? 'http' : second;
    let i = r;
    while (!stopReading) {
      const t = targets[(i * 7 + Math.floor(random() * targets.length)) % targets.length]!;
      i += 1;
      await readOne(cache, t);
    }
  });
  const writers = writerClients.map(async (c, w) => {
    for (let k = 0; k < OPS_PER_WRITER; k++) {
      // Rarer deletes, so most of the run has rows to read.
      const [name, run] = operations[Math.floor(random() * operations.length)]!;
      if (name === 'delete article' && random() < 0.7) continue;
      await run(c, w * OPS_PER_WRITER + k);
      ops[name] = (ops[name] ?? 0) + 1;
      // Two reads per write from this loop too, so reads keep pace with writes on a busy machine.
      await readOne(w % 2 === 0 ? 'http' : second, targets[Math.floor(random() * targets.length)]!);
      await readOne(w % 2 === 0 ? second : 'http', targets[Math.floor(random() * targets.length)]!);
    }
  });
  try {
    await Promise.all(writers);
  } finally {
    stopReading = true;
    await Promise.all(readers);
    await Promise.all(writerClients.map((c) => c.end()));
  }
  await p.drain();

  let cachedValues = 0;
  let staleCached = 0;
  let staleReads = 0;
  const staleKeys: string[] = [];
  for (const t of targets) {
    const key = t.resource.key(t.params);
    const fresh = JSON.stringify(await t.resource.load(p.db, t.params));
    const held = await p.cached(key);
    if (held !== null) {
      cachedValues += 1;
      if (held !== fresh) {
        staleCached += 1;
        staleKeys.push(key);
      }
    }
    for (const reader of ['http', second] as const) {
      if ((await read(reader, t)) !== fresh) staleReads += 1;
    }
  }
  const total = Object.values(ops).reduce((a, b) => a + b, 0);
  console.log(
    JSON.stringify({
      seed,
      writeOps: total,
      opsByKind: ops,
      concurrentReads: reads,
      cachedValuesChecked: cachedValues,
      staleCached,
      staleReadsAfterDrain: staleReads,
      fillsRefused: Object.fromEntries(p.events.refusals),
      staleKeys,
    }),
  );
  expect(readErrors).toEqual([]);
  expect(total).toBeGreaterThan(WRITERS * OPS_PER_WRITER * 0.8);
  expect(cachedValues).toBeGreaterThan(0);
  expect(staleKeys).toEqual([]);
  expect(staleReads).toBe(0);
});
