/**
 * The comparison servers of the benchmark, in one process (one route is loaded at a time):
 *
 * - `/const`                  ceiling: Hono returning a constant body (an article-sized JSON).
 * - `/raw/:kind/:n`           ceiling: one raw Redis GET answered as is (`bench:raw:<kind>:<n>`),
 *                             the best a cache-hit route can do on this machine.
 * - `/pg/v1/articles[/:id]`   no cache: the resources' own `load` straight to Postgres.
 * - `/naive/v1/articles[/:id]` the cache-aside a user writes by hand: GET, else load + SET EX.
 *                             No tags, no leases, no invalidation.
 *
 * Same HTTP server (`@hono/node-server`), same pool factory and same JSON as the API, so the
 * differences measured are the caching strategies, not the plumbing.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { AnyResource } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { type Context, Hono } from 'hono';
import { Redis } from 'ioredis';
import { articleDetail, articleList, compileBlog } from '../../../test/support/blog.ts';

/**
 * The HTTP adapter is resolved from the API package, so this server runs the very same
 * `@hono/node-server` version as the API under test (and the root needs no copy of it).
 */
interface NodeServerModule {
  serve(options: { fetch: Hono['fetch']; port: number; hostname: string }): Server;
}
const apiRequire = createRequire(new URL('../../../apps/api/package.json', import.meta.url));
const { serve } = (await import(
  pathToFileURL(apiRequire.resolve('@hono/node-server')).href
)) as NodeServerModule;

const env = process.env;
const port = Number(env.PORT);
const databaseUrl = env.DATABASE_URL;
const redisUrl = env.REDIS_URL;
if (!databaseUrl || !redisUrl || !Number.isInteger(port)) {
  throw new Error('baseline server needs DATABASE_URL, REDIS_URL and PORT');
}

const pool = createPool({ connectionString: databaseUrl, applicationName: 'walcache-bench-baseline' });
const db = createDb(pool);
const redis = new Redis(redisUrl, { connectionName: 'walcache-bench-baseline' });
redis.on('error', (err) => process.stderr.write(`baseline redis error: ${err.message}\n`));

/** The naive cache's TTL: the same hour the sample resources use, the only thing that ends a stale value. */
const NAIVE_TTL_SECONDS = 3600;
/**
 * A fresh headers object per answer: Hono hands a single-entry object to the Response as is
 * and the node adapter writes into it, so a shared one breaks the second request.
 */
const json = () => ({ 'content-type': 'application/json' });

// An article-sized body, fixed at start: the constant route answers the same bytes as a hit.
await compileBlog(pool);
const constBody = Buffer.from(JSON.stringify(await articleDetail.load(db, { id: '1' })));

const app = new Hono();
app.get('/const', (c) => c.body(constBody, 200, json()));
app.get('/raw/:kind/:n', async (c) => {
  const body = await redis.getBuffer(`bench:raw:${c.req.param('kind')}:${c.req.param('n')}`);
  return body ? c.body(body as Uint8Array<ArrayBuffer>, 200, json()) : c.body(null, 404);
});

const direct = async (c: Context, resource: AnyResource<Db>, raw: Record<string, unknown>) => {
  const parsed = resource.params.safeParse(raw);
  if (!parsed.success) return c.body(null, 400);
  const value = await resource.load(db, parsed.data);
  return value === null ? c.body(null, 404) : c.body(JSON.stringify(value), 200, json());
};
app.get('/pg/v1/articles', (c) => direct(c, articleList, c.req.query()));
app.get('/pg/v1/articles/:id', (c) => direct(c, articleDetail, { id: c.req.param('id') }));

/** Naive-cache reads served so far: the mixed scenario's writer follows this rate. */
let naiveReads = 0;
const naive = async (c: Context, resource: AnyResource<Db>, raw: Record<string, unknown>) => {
  naiveReads += 1;
  const parsed = resource.params.safeParse(raw);
  if (!parsed.success) return c.body(null, 400);
  const key = `naive:${resource.key(parsed.data)}`;
  const cached = await redis.getBuffer(key);
  if (cached) return c.body(cached as Uint8Array<ArrayBuffer>, 200, { ...json(), 'x-cache': 'HIT' });
  const value = await resource.load(db, parsed.data);
  if (value === null) return c.body(null, 404);
  const body = JSON.stringify(value);
  await redis.set(key, body, 'EX', NAIVE_TTL_SECONDS);
  return c.body(body, 200, { ...json(), 'x-cache': 'MISS' });
};
app.get('/naive/v1/articles', (c) => naive(c, articleList, c.req.query()));
app.get('/naive/v1/articles/:id', (c) => naive(c, articleDetail, { id: c.req.param('id') }));
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.get('/stats', (c) => c.json({ reads: naiveReads }));
app.onError((error, c) => {
  process.stderr.write(`baseline: ${c.req.path}: ${error.stack ?? error.message}\n`);
  return c.body(null, 500);
});

const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
const shutdown = () => {
  server.close(() => {
    void Promise.allSettled([pool.end(), redis.quit()]).then(() => process.exit(0));
  });
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
