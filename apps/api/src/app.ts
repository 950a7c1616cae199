import { OpenAPIHono } from '@hono/zod-openapi';
import type { RedisClient } from '@walcache/core';
import {
  type CacheResult,
  etagOf,
  getMany,
  loadManyFresh,
  type ReadThroughCache,
  SourceUnavailableError,
} from '@walcache/core';
import type { Logger, Registry } from '@walcache/observability';
import type { CompiledConfig, CompiledResource, Db, Params } from '@walcache/resources';
import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { methodNotAllowed } from 'hono/method-not-allowed';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { CachedAnswers } from './answer.ts';
import { type BatchRoute, batchBody, batchParams, batchStatus } from './batch.ts';
import { isQueryTimeout, PoolSaturatedError } from './db.ts';
import { createDocsApp } from './docs.ts';
import { checkReadiness } from './health.ts';
import { CACHE_CONTROL, ifNoneMatchMatches } from './http-cache.ts';
import { limits } from './limits.ts';
import type { ApiMetrics } from './metrics.ts';
import { paramsCheck } from './params.ts';
import { invalidParameters, problem, problemTypes } from './problem.ts';
import {
  type ReadYourWritesDeps,
  readYourWrites,
  walPositionAfterLoad,
  watermarkHeader,
} from './read-your-writes.ts';
import { requestHeader } from './request-headers.ts';
import { assignRequestId, type RequestIdVariables, sendRequestId } from './request-id.ts';
import { honoPath, type V1Route, v1Routes } from './routes.ts';
import { CACHE_SKIPPED, LoadTimes, serverTiming } from './server-timing.ts';

export interface ApiDeps {
  /** What to serve: the config compiled against the database (routes, answers, OpenAPI). */
  resources: CompiledConfig;
  cache: ReadThroughCache<Db>;
  db: Db;
  redis: RedisClient;
  registry: Registry;
  metrics: ApiMetrics;
  logger: Logger;
  /** Operator routes (status, queue dashboard), mounted at /ops only when OPS_TOKEN is set. */
  ops?: Hono;
  /** The CDC's replication slot: /readyz reports its lag. */
  slotName?: string;
  /** True once shutdown began: /readyz answers 503 so load balancers stop sending requests. */
  draining?: () => boolean;
  /** Slot lag /readyz reports as `lagging` (default limits.cdcLagWarnBytes). */
  cdcLagWarnBytes?: number;
  /** Read-your-writes tokens and the watermark header on `/v1` (read-your-writes.ts). */
  readYourWrites: ReadYourWritesDeps;
  /** The answer builder, shared with the hit lane (one gzip memo per process). */
  answers?: CachedAnswers;
}

export type ApiEnv = {
  Variables: RequestIdVariables & {
    cacheOutcome?: string;
    /** The watermark read before this request's cache read. */
    watermark?: bigint;
    /** The token is ahead of the watermark: answer from Postgres, not the cache. */
    rywBypass?: boolean;
    /** For such an answer: the WAL position read after its load. */
    bypassWatermark?: bigint;
    /** The answer already carries X-Walcache-Watermark (in its own header record). */
    watermarkSent?: boolean;
    /** The metrics' route label, when the handler knows it (a `/v1` route, an empty path parameter). */
    routeLabel?: string;
  };
};

export const OPENAPI_PATH = '/openapi.json';

export function createApp(deps: ApiDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();

  const answers = deps.answers ?? new CachedAnswers();
  const loadTimes = new LoadTimes();
  const notAllowed = (c: Context<ApiEnv>, methods: string[]) =>
    problem(
      c,
      {
        type: problemTypes.methodNotAllowed,
        title: 'Method not allowed',
        status: 405,
        detail: `${c.req.method} is not allowed here; use ${methods.join(', ')}`,
      },
      { allow: methods.join(', ') },
    );

  // Request id, metrics and the access log in one middleware: each link of Hono's chain is
  // two more promises per request, and a hit's whole budget is a few tens of microseconds.
  app.use(async (c, next) => {
    const started = performance.now();
    const id = assignRequestId(c);
    await next();
    sendRequestId(c, id);
    // While shutting down, answer and close the connection so keep-alive sockets drain too
    // (checked after the handler: a request that began before shutdown ends its socket as well).
    if (deps.draining?.()) c.res.headers.set('connection', 'close');
    const seconds = (performance.now() - started) / 1000;
    const status = c.res.status;
    // routePath is always a registered pattern (never the raw path): bounded label values.
    const route =
      c.get('routeLabel') ??
      (status === 404 && c.req.routePath === '/*' ? 'unmatched' : c.req.routePath || 'unmatched');
    const cache = c.get('cacheOutcome') ?? 'none';
    deps.metrics.requestDuration.observe(
      { route, method: c.req.method, status: String(status), cache },
      seconds,
    );
    // Access lines at debug: at tens of thousands of hits a second an info line each would cost
    // more than the hit, and so would building one that is then dropped.
    const failed = status >= 500;
    if (!failed && !deps.logger.isLevelEnabled('debug')) return;
    const line = {
      reqId: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status,
      cache,
      ms: seconds * 1000,
    };
    if (failed) deps.logger.warn(line, 'request failed');
    else deps.logger.debug(line, 'request');
  });
  app.use(methodNotAllowed({ app, onMethodNotAllowed: notAllowed }));
  const limitBody = bodyLimit({
    maxSize: limits.maxBodyBytes,
    onError: (c) =>
      problem(c, {
        type: problemTypes.payloadTooLarge,
        title: 'Payload too large',
        status: 413,
        detail: `request bodies are limited to ${limits.maxBodyBytes} bytes`,
      }),
  });
  // Only for methods that carry a body: bodyLimit reads `c.req.raw`, which makes the Node
  // adapter build a full WHATWG Request for every request — ~18 % of a cache hit's CPU in
  // the benchmark's profile (docs/benchmarks.md), for GETs that have no body to limit.
  app.use((c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limitBody(c, next)));
  app.use('/v1/*', readYourWrites(deps.readYourWrites));

  /**
   * The cache-aside answer for one resource: canonical params (validated once, by the
   * route; the only input a cache key is built from) → Redis or Postgres → the cached bytes
   * as they are.
   */
  const serve = async (c: Context<ApiEnv>, resource: CompiledResource, params: Params): Promise<Response> => {
    const started = performance.now();
    let result: CacheResult;
    try {
      if (c.get('rywBypass')) {
        result = await deps.cache.loadFresh(resource, params);
        await walPositionAfterLoad(c, deps.db);
      } else result = await deps.cache.get(resource, params);
    } catch (error) {
      // The 503 app.onError builds carries it too: where a failed miss spent its time.
      c.header('server-timing', serverTiming(performance.now() - started, loadTimes.of(params)));
      throw error;
    }
    const timing = serverTiming(performance.now() - started, loadTimes.of(params));
    c.set('cacheOutcome', result.status);
    if (!result.found) {
      return problem(
        c,
        {
          type: problemTypes.notFound,
          title: 'Not found',
          status: 404,
          detail: `${resource.name} not found`,
        },
        { 'x-cache': result.status, 'server-timing': timing },
      );
    }
    return send(c, result.status, result.body, result.etag, timing);
  };

  /**
   * A 200 (or 304) of cached bytes, as answer.ts builds it for either lane.
   * Returned as a Response built from a plain header record, not through `c.body`: Hono turns
   * a record of more than one header into a WHATWG Headers object, which @hono/node-server
   * then converts back for writeHead; a record goes to writeHead as it is (a fresh one per
   * answer: the adapter adds Content-Length to it).
   */
  const send = (
    c: Context<ApiEnv>,
    status: string,
    bytes: Buffer,
    etag: string,
    timing: string,
  ): Response => {
    const request = {
      acceptEncoding: requestHeader(c, 'accept-encoding'),
      ifNoneMatch: requestHeader(c, 'if-none-match'),
      requestId: c.get('requestId'),
      watermark: watermarkHeader(c),
    };
    c.set('requestIdSent', true);
    const answer = answers.build(request, status, bytes, etag, timing);
    return new Response(answer.body as Uint8Array<ArrayBuffer> | null, {
      status: answer.status,
      headers: answer.headers,
    });
  };

  /** A batch lookup: one MGET, the misses filled under the protocol with one query (core getMany). */
  const serveBatch = async (c: Context<ApiEnv>, route: BatchRoute, values: string[]): Promise<Response> => {
    const started = performance.now();
    // This request's database time: its pooled queries, failed ones included (a 503 shows them too).
    let dbMs: number | undefined;
    const loadMany = async (db: Db, ps: readonly Params[]) => {
      const loading = performance.now();
      try {
        return await route.batch.loadMany(db, ps);
      } finally {
        dbMs = (dbMs ?? 0) + performance.now() - loading;
      }
    };
    let results: CacheResult[];
    try {
      const params = batchParams(route.batch, values);
      if (c.get('rywBypass')) {
        results = await loadManyFresh(deps.cache, route.lookup, params, loadMany);
        await walPositionAfterLoad(c, deps.db);
      } else results = await getMany(deps.cache, route.lookup, params, loadMany);
    } catch (error) {
      c.header('server-timing', serverTiming(performance.now() - started, dbMs));
      throw error;
    }
    const timing = serverTiming(performance.now() - started, dbMs);
    const status = batchStatus(results);
    c.set('cacheOutcome', status);
    const body = batchBody(values, results);
    return send(c, status, body, etagOf(body), timing);
  };

  /**
   * A `/v1` route: its definition goes to the OpenAPI document, its handler to the router with
   * the one parameter check (params.ts) in place of @hono/zod-openapi's validator middlewares.
   */
  const v1 = (route: V1Route, handle: (c: Context<ApiEnv>, params: Params) => Promise<Response>) => {
    app.openAPIRegistry.registerPath(route.definition);
    const check = paramsCheck(route.definition.request);
    const path = route.path;
    app.get(path, async (c) => {
      // The label c.req.routePath would give, without building the list of matched routes.
      c.set('routeLabel', path);
      const checked = check(c);
      const outcome = checked instanceof Promise ? await checked : checked;
      if ('errors' in outcome)
        return invalidParameters(c, outcome.errors, { 'server-timing': CACHE_SKIPPED });
      return handle(c, outcome.params);
    });
  };

  for (const route of v1Routes(deps.resources.resources)) {
    const { answer } = route;
    if (answer.kind === 'batch') {
      const b = answer.batch;
      v1(route, (c, query) => serveBatch(c, b, query[b.batch.query] as unknown as string[]));
      continue;
    }
    const { batch } = answer;
    const timed = loadTimes.timed(answer.resource);
    v1(route, (c, params) => {
      if (batch) {
        const values = params[batch.batch.query] as unknown as string[] | undefined;
        if (values !== undefined) return serveBatch(c, batch, values);
      }
      return serve(c, timed, params);
    });
  }
  const emptyParameter = emptyPathParameters(deps.resources.resources);

  // The OpenAPI document is built once, on first request, and served as bytes with an ETag.
  let document: { body: string; etag: string } | undefined;
  app.get(OPENAPI_PATH, (c) => {
    document ??= renderDocument(app, deps.resources);
    if (ifNoneMatchMatches(c.req.header('if-none-match'), document.etag)) {
      return c.body(null, 304, { etag: document.etag, 'cache-control': CACHE_CONTROL });
    }
    return c.body(document.body, 200, {
      'content-type': 'application/json',
      etag: document.etag,
      'cache-control': CACHE_CONTROL,
    });
  });
  app.route('/docs', createDocsApp(OPENAPI_PATH));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const readiness = await checkReadiness({
      db: deps.db,
      redis: deps.redis,
      slotName: deps.slotName,
      draining: deps.draining?.() ?? false,
      lagWarnBytes: deps.cdcLagWarnBytes,
    });
    return c.json({ status: readiness.status, checks: readiness.checks }, readiness.ready ? 200 : 503, {
      'cache-control': 'no-store',
    });
  });
  app.get('/metrics', async (c) =>
    c.body(await deps.registry.metrics(), 200, { 'content-type': deps.registry.contentType }),
  );

  if (deps.ops) app.route('/ops', deps.ops);

  app.notFound((c) => {
    // An empty path parameter never reaches a `{id}` route (the router needs a non-empty
    // segment): these spellings get the 400 a bad value gets (405 for another method), not
    // "no such route". Matched here, not as routes of their own: `/v1/a//b` is a path Hono's
    // RegExpRouter refuses, which made it fall back to the slower TrieRouter for every request.
    const empty = emptyParameter(c.req.path);
    if (empty) {
      c.set('routeLabel', empty.route);
      if (c.req.method !== 'GET' && c.req.method !== 'HEAD') return notAllowed(c, ['GET', 'HEAD']);
      return invalidParameters(
        c,
        [{ parameter: empty.parameter, in: 'path', message: 'must not be empty' }],
        {
          'server-timing': CACHE_SKIPPED,
        },
      );
    }
    return problem(c, {
      type: problemTypes.routeNotFound,
      title: 'Route not found',
      status: 404,
      detail: `no route for ${c.req.method} ${c.req.path}`,
    });
  });
  app.onError((error, c) => {
    // The pool refuses before any query runs; core may pass that refusal through as it is or wrapped.
    const saturated = error instanceof SourceUnavailableError ? error.cause : error;
    if (saturated instanceof PoolSaturatedError) {
      deps.metrics.dbRefused.inc();
      deps.logger.warn({ reqId: c.get('requestId'), waiting: saturated.waiting }, 'database pool saturated');
      return problem(
        c,
        {
          type: problemTypes.overloaded,
          title: 'Overloaded',
          status: 503,
          detail: 'too many requests wait for the database; retry shortly',
        },
        { 'retry-after': '1' },
      );
    }
    if (error instanceof SourceUnavailableError) {
      deps.logger.warn(
        { err: error.cause, reqId: c.get('requestId'), path: c.req.path },
        'database unavailable for a cache miss',
      );
      return problem(
        c,
        {
          type: problemTypes.unavailable,
          title: 'Service unavailable',
          status: 503,
          detail: isQueryTimeout(error.cause)
            ? 'the database did not answer in time'
            : 'the database is unavailable',
        },
        { 'retry-after': '1' },
      );
    }
    if (error instanceof HTTPException && error.status < 500) {
      return problem(c, {
        type: problemTypes.invalidParameter,
        title: error.message || 'Bad request',
        status: error.status as ContentfulStatusCode,
      });
    }
    deps.logger.error({ err: error, path: c.req.path, reqId: c.get('requestId') }, 'unhandled error');
    return problem(c, { type: problemTypes.internal, title: 'Internal error', status: 500 });
  });
  return app;
}

function renderDocument(app: OpenAPIHono<ApiEnv>, resources: CompiledConfig): { body: string; etag: string } {
  const doc = app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: resources.openapi.title ?? 'walcache read API',
      version: '1.0.0',
      description:
        `${resources.openapi.description ?? "Answered from a Redis cache that Postgres' WAL keeps correct."} ` +
        'Every `/v1` answer carries `X-Cache` and an `ETag`; send it back in `If-None-Match` for a 304. ' +
        'Errors are `application/problem+json` with a stable `type` URI. ' +
        'Read your writes: after a commit, send `select pg_current_wal_lsn()` as `X-Walcache-After` (or the `walcache_after` query parameter) on the next reads; ' +
        'an answer then reflects that commit (from the cache once it is invalidated, else from Postgres with `X-Cache: BYPASS`).',
    },
    tags: [...new Set(resources.resources.map((r) => r.openapiTag))].map((name) => ({ name })),
  });
  const body = JSON.stringify(doc);
  return { body, etag: `"${Buffer.from(String(hash(body))).toString('base64url')}"` };
}

/** FNV-1a: the document's ETag only has to change when the document does. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * For each path parameter of each resource, the route's spelling with that parameter empty
 * (`/v1/things//parts`), other parameters any segment: which parameter a path leaves empty.
 */
function emptyPathParameters(
  resources: readonly CompiledResource[],
): (path: string) => { parameter: string; route: string } | undefined {
  const patterns: { pattern: RegExp; parameter: string; route: string }[] = [];
  for (const resource of resources) {
    for (const p of resource.routeParams.filter((q) => q.in === 'path')) {
      const source = resource.route
        .split(/(\{[^}]+\})/)
        .map((part) => {
          if (part === `{${p.name}}`) return '';
          if (part.startsWith('{')) return '[^/]+';
          return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        })
        .join('');
      patterns.push({
        pattern: new RegExp(`^${source}$`),
        parameter: p.name,
        route: honoPath(resource.route),
      });
    }
  }
  return (path) => patterns.find((p) => p.pattern.test(path));
}
