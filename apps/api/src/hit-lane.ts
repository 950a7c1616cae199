import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReadThroughCache, WatermarkReader } from '@walcache/core';
import type { Logger } from '@walcache/observability';
import type { CompiledResource, Db, Params } from '@walcache/resources';
import type { CachedAnswers } from './answer.ts';
import type { ApiDeps } from './app.ts';
import type { ApiMetrics } from './metrics.ts';
import { type QueryValues, type ValuesCheck, valuesCheck } from './params.ts';
import { AFTER_HEADER, AFTER_QUERY, watermarkText } from './read-your-writes.ts';
import { nodeHeader } from './request-headers.ts';
import { requestIdFor } from './request-id.ts';
import { type V1Route, v1Routes } from './routes.ts';
import { serverTiming } from './server-timing.ts';

/** A Node request listener: what `http.createServer` takes. */
export type RequestListener = (request: IncomingMessage, response: ServerResponse) => unknown;

export interface HitLaneDeps {
  routes: readonly V1Route[];
  cache: ReadThroughCache<Db>;
  answers: CachedAnswers;
  watermark: WatermarkReader;
  metrics: ApiMetrics;
  logger: Logger;
  draining?: () => boolean;
}

/** The lane of an app built from these deps: the same config, cache, answers, metrics and shutdown flag. */
export function laneDepsOf(deps: ApiDeps & { answers: CachedAnswers }): HitLaneDeps {
  return {
    routes: v1Routes(deps.resources.resources),
    cache: deps.cache,
    answers: deps.answers,
    watermark: deps.readYourWrites.watermark,
    metrics: deps.metrics,
    logger: deps.logger,
    ...(deps.draining ? { draining: deps.draining } : {}),
  };
}

/**
 * The hit lane: a `/v1` GET whose answer Redis holds is answered from Node's own request,
 * before the Hono app sees it. A hit is most of a read cache's traffic, and on that path the
 * framework was most of the cost: @hono/node-server parses every URL with `new URL`, builds a
 * request object and a context, runs the middleware chain, and turns a Response back into
 * `writeHead` (docs/benchmarks.md, "The hit lane", has the profile). The answer is the same
 * one: built by answer.ts, routed by the same table (routes.ts `v1Routes`), parameters checked
 * by the same schemas, counted in the same metrics.
 *
 * Everything that is not a plain hit goes to `fallback` (the Hono app) untouched, which
 * answers it as it always did: another method, a path or query this lane does not read the
 * way the URL parser would (percent-escapes, `+`, dot segments, a parameter without `=`), an
 * invalid parameter, a read-your-writes token, a batch, a miss or a cached "not found", the
 * cache not usable now (cache.peek), shutdown, debug-level access logs. A request declined
 * after its GET (a miss) is read from Redis twice: a miss costs a Postgres query anyway.
 */
export function hitLane(deps: HitLaneDeps, fallback: RequestListener): RequestListener {
  const table = deps.routes.map((route) => laneRoute(route, deps.metrics));
  // Routing and the parameter check are pure functions of the target, and readers ask for the
  // same pages again and again: each target the lane takes is remembered with its route,
  // params and key (bounded; the oldest goes first). Targets it leaves to the app are not, so
  // a scan of random paths cannot push the hot ones out.
  const matched = new Map<string, Matched>();
  const matchOf = (target: string): Matched | undefined => {
    let found = matched.get(target);
    if (found === undefined) {
      found = match(table, target);
      if (found === undefined) return undefined;
      if (matched.size >= REMEMBERED_TARGETS) matched.delete(matched.keys().next().value!);
      matched.set(target, found);
    }
    return found;
  };
  const serve = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const started = performance.now();
    const found = matchOf(request.url!);
    if (found === undefined) return void fallback(request, response);
    const { route, params, key } = found;
    // The watermark before the cache read: the answer reflects every commit up to it.
    const watermark = deps.watermark.known();
    const hit = await deps.cache.peek(route.resource, params, key);
    if (hit === undefined) return void fallback(request, response);
    const answer = deps.answers.build(
      {
        acceptEncoding: nodeHeader(request, 'accept-encoding'),
        ifNoneMatch: nodeHeader(request, 'if-none-match'),
        requestId: requestIdFor(nodeHeader(request, 'x-request-id')),
        watermark: watermarkText(watermark),
      },
      hit.status,
      hit.body,
      hit.etag,
      serverTiming(performance.now() - started, undefined),
    );
    const { headers, body } = answer;
    // As the Hono app does for an answer that began before shutdown: its connection closes.
    if (deps.draining?.()) headers.connection = 'close';
    if (body) headers['Content-Length'] = String(body.byteLength);
    response.writeHead(answer.status, headers);
    response.end(body ?? undefined);
    (answer.status === 200 ? route.ok : route.notModified).observe((performance.now() - started) / 1000);
  };
  return (request, response) => {
    if (!takes(request, deps)) return fallback(request, response);
    serve(request, response).catch((error: unknown) => {
      // A bug of this lane must not take the request down with it: the app answers it.
      deps.logger.error({ err: error, path: request.url }, 'hit lane failed; the app answers');
      if (!response.headersSent) fallback(request, response);
      else response.destroy();
    });
  };
}

interface LaneRoute {
  /** Path segments: a literal, or (null) a parameter, named in `names` in order. */
  segments: (string | null)[];
  names: string[];
  /** Undefined for a route this lane leaves to the app (a batch). */
  resource: CompiledResource | undefined;
  /** The batch parameter of a list that shares its path with a batch: with it, the app answers. */
  batchQuery: string | undefined;
  check: ValuesCheck;
  hasQuery: boolean;
  ok: { observe(seconds: number): void };
  notModified: { observe(seconds: number): void };
}

function laneRoute(route: V1Route, metrics: ApiMetrics): LaneRoute {
  const parts = route.path.split('/');
  const { answer } = route;
  // Labels checked once per route (prom-client still hashes them on each observation).
  const child = (status: string) => metrics.requestDuration.labels(route.path, 'GET', status, 'HIT');
  return {
    segments: parts.map((part) => (part.startsWith(':') ? null : part)),
    names: parts.filter((part) => part.startsWith(':')).map((part) => part.slice(1)),
    resource: answer.kind === 'resource' ? answer.resource : undefined,
    batchQuery: answer.kind === 'resource' ? answer.batch?.batch.query : undefined,
    check: valuesCheck(route.definition.request),
    hasQuery: route.definition.request.query !== undefined,
    ok: child('200'),
    notModified: child('304'),
  };
}

/**
 * A target the URL parser would leave as it is, and that Hono would route and decode exactly as
 * this lane splits it: unreserved characters and sub-delimiters, no `%` (escapes are decoded
 * differently in paths and queries), no `+` (a space in a query), no `'` (escaped in a query).
 */
const PLAIN_TARGET = /^\/[\w\-.~!$&()*,;=:@/]*(\?[\w\-.~!$()*,;=:@/&]*)?$/;
/** `.` and `..` segments, which the URL parser resolves. */
const DOT_SEGMENT = /\/\.\.?(?:\/|\?|$)/;
/** A Host the adapter accepts as it is (it refuses one the URL parser would change). */
const PLAIN_HOST = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

function takes(request: IncomingMessage, deps: HitLaneDeps): boolean {
  if (request.method !== 'GET') return false;
  const target = request.url;
  if (target === undefined || !target.startsWith('/v1/')) return false;
  if (!PLAIN_TARGET.test(target) || DOT_SEGMENT.test(target)) return false;
  const host = request.headers.host;
  if (host === undefined || !PLAIN_HOST.test(host)) return false;
  if (request.headers[AFTER_HEADER] !== undefined) return false;
  // Shutdown and debug access lines are the app's: one place for each.
  if (deps.draining?.() || deps.logger.isLevelEnabled('debug')) return false;
  return true;
}

/** How many targets the lane remembers: a few MB at most, far more pages than a hot set. */
const REMEMBERED_TARGETS = 10_000;

interface Matched {
  route: LaneRoute & { resource: CompiledResource };
  params: Readonly<Params>;
  /** The resource's cache key for these params. */
  key: string;
}

function match(table: readonly LaneRoute[], target: string): Matched | undefined {
  const mark = target.indexOf('?');
  const path = mark < 0 ? target : target.slice(0, mark);
  const segments = path.split('/');
  for (const route of table) {
    const values = pathValues(route, segments);
    if (values === undefined) continue;
    // The first route that matches answers, as in the app: a batch's is the app's to answer.
    if (route.resource === undefined) return undefined;
    let query: QueryValues = {};
    if (mark >= 0) {
      const parsed = queryValues(target.slice(mark + 1));
      if (parsed === undefined || AFTER_QUERY in parsed) return undefined;
      // The app checks no query on a route that declares none.
      if (route.hasQuery) query = parsed;
    }
    const checked = route.check(query, values);
    // An async schema or a bad parameter: the app answers (with its 400).
    if (checked instanceof Promise || 'errors' in checked) return undefined;
    if (route.batchQuery !== undefined && checked.params[route.batchQuery] !== undefined) return undefined;
    const resource = route.resource;
    return {
      route: route as LaneRoute & { resource: CompiledResource },
      params: Object.freeze(checked.params),
      key: resource.key(checked.params),
    };
  }
  return undefined;
}

function pathValues(route: LaneRoute, segments: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== route.segments.length) return undefined;
  const values: Record<string, string> = {};
  let n = 0;
  for (let i = 0; i < segments.length; i++) {
    const expected = route.segments[i];
    const segment = segments[i]!;
    if (expected === null) {
      // Hono's `:name` matches one non-empty segment.
      if (segment === '') return undefined;
      values[route.names[n++]!] = segment;
    } else if (segment !== expected) return undefined;
  }
  return values;
}

/** `a=1&b=2&a=3` → `{a: ['1', '3'], b: '2'}`, as the app's check reads a query; undefined for a pair without a name or `=`. */
function queryValues(query: string): QueryValues | undefined {
  const values: QueryValues = {};
  if (query === '') return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const seen = values[name];
    if (seen === undefined) values[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else values[name] = [seen, value];
  }
  return values;
}
