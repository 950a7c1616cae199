import { type AnyResource, type ReadThroughCache, SourceUnavailableError } from '@walcache/core';
import type { Logger, Registry } from '@walcache/observability';
import {
  articleComments,
  articleDetail,
  articleList,
  type Db,
  tagList,
  userProfile,
} from '@walcache/resources';
import { type Context, Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { ApiMetrics } from './metrics.ts';
import { problem, problemTypes } from './problem.ts';

export interface ApiDeps {
  cache: ReadThroughCache<Db>;
  db: Db;
  redis: Redis;
  registry: Registry;
  metrics: ApiMetrics;
  logger: Logger;
  /** Operator routes (status, queue dashboard), mounted at /ops only when OPS_TOKEN is set. */
  ops?: Hono;
}

type Env = { Variables: { cacheOutcome?: string } };

/** Clients may keep a copy but must revalidate it (cheap: a 304 from the cache). */
const CACHE_CONTROL = 'public, max-age=0, must-revalidate';

export function createApp(deps: ApiDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    const route = c.req.routePath || 'unmatched';
    deps.metrics.requestDuration.observe(
      { route, method: c.req.method, status: String(c.res.status), cache: c.get('cacheOutcome') ?? 'none' },
      (performance.now() - started) / 1000,
    );
  });

  const serve = async (c: Context<Env>, resource: AnyResource<Db>, raw: Record<string, unknown>) => {
    const parsed = resource.params.safeParse(raw);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({
        parameter: String(i.path[0] ?? 'params'),
        message: i.message,
      }));
      return problem(c, {
        type: problemTypes.invalidParameter,
        title: 'Invalid parameter',
        status: 400,
        detail: errors.map((e) => `${e.parameter} ${e.message}`).join('; '),
        errors,
      });
    }
    const result = await deps.cache.get(resource, parsed.data);
    c.set('cacheOutcome', result.status);
    const headers = { 'x-cache': result.status, etag: result.etag, 'cache-control': CACHE_CONTROL };
    if (!result.found) {
      return problem(
        c,
        {
          type: problemTypes.notFound,
          title: 'Not found',
          status: 404,
          detail: `${resource.name} not found`,
        },
        headers,
      );
    }
    if (c.req.header('if-none-match') === result.etag) return c.body(null, 304, headers);
    // Redis and JSON.stringify buffers are never shared memory; the cast only narrows the type.
    return c.body(result.body as Uint8Array<ArrayBuffer>, 200, {
      ...headers,
      'content-type': 'application/json',
    });
  };

  app.get('/v1/articles', (c) => serve(c, articleList, c.req.query()));
  app.get('/v1/articles/:id', (c) => serve(c, articleDetail, { id: c.req.param('id') }));
  app.get('/v1/articles/:id/comments', (c) =>
    serve(c, articleComments, { ...c.req.query(), id: c.req.param('id') }),
  );
  app.get('/v1/users/:id', (c) => serve(c, userProfile, { id: c.req.param('id') }));
  app.get('/v1/tags', (c) => serve(c, tagList, {}));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const [postgres, redis] = await Promise.all([
      withTimeout(sql`select 1`.execute(deps.db), 1000).then(
        () => 'ok',
        (e: unknown) => errorText(e),
      ),
      withTimeout(deps.redis.ping(), 1000).then(
        () => 'ok',
        (e: unknown) => errorText(e),
      ),
    ]);
    const ready = postgres === 'ok' && redis === 'ok';
    return c.json(
      { status: ready ? 'ready' : 'unavailable', checks: { postgres, redis } },
      ready ? 200 : 503,
    );
  });
  app.get('/metrics', async (c) =>
    c.body(await deps.registry.metrics(), 200, { 'content-type': deps.registry.contentType }),
  );

  if (deps.ops) app.route('/ops', deps.ops);

  app.notFound((c) =>
    problem(c, {
      type: problemTypes.notFound,
      title: 'Not found',
      status: 404,
      detail: `no route for ${c.req.method} ${c.req.path}`,
    }),
  );
  app.onError((error, c) => {
    if (error instanceof SourceUnavailableError) {
      deps.logger.warn({ err: error.cause, path: c.req.path }, 'database unavailable for a cache miss');
      return problem(
        c,
        {
          type: problemTypes.unavailable,
          title: 'Service unavailable',
          status: 503,
          detail: 'the database is unavailable',
        },
        { 'retry-after': '1' },
      );
    }
    deps.logger.error(
      { err: error, path: c.req.path, reqId: c.get('requestId' as never) },
      'unhandled error',
    );
    return problem(c, { type: problemTypes.internal, title: 'Internal error', status: 500 });
  });
  return app;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
