import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { serve } from '@hono/node-server';
import { etagOf } from '@walcache/core';
import { createLogger } from '@walcache/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArticleDetailSchema,
  ArticleListSchema,
  CommentListSchema,
  TagListSchema,
  UserProfileSchema,
} from '../../../examples/blog/contract.ts';
import { openApiProblems } from '../../../test/support/openapi-valid.ts';
import { SqlActivity } from '../../../test/support/sql-activity.ts';
import { API_APPLICATION_NAME } from '../src/db.ts';
import { problemTypes } from '../src/problem.ts';
import { ProblemSchema } from '../src/schemas.ts';
import { documentValidators, type OpenApiDocument, openApiDocument, responseComponent } from './openapi.ts';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let api: TestApi;
let doc: OpenApiDocument;
let activity: SqlActivity;
let validator: (name: string) => ReturnType<ReturnType<typeof documentValidators>>;
let rawDocument: unknown;

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
  activity = await SqlActivity.connect(servers.pg.url, API_APPLICATION_NAME);
  const res = await api.app.request('/openapi.json');
  rawDocument = await res.json();
  doc = openApiDocument.parse(rawDocument);
  validator = documentValidators(doc);
});

afterAll(async () => {
  await activity?.close();
  await api?.close();
  await servers?.stop();
});

const get = (path: string, headers: Record<string, string> = {}) => api.app.request(path, { headers });

/** Every /v1 route: a request that answers 200, its document path and its zod schema. */
const routes = [
  { url: '/v1/articles/7', path: '/v1/articles/{id}', schema: ArticleDetailSchema },
  { url: '/v1/articles?limit=5', path: '/v1/articles', schema: ArticleListSchema },
  { url: '/v1/articles/7/comments?limit=1', path: '/v1/articles/{id}/comments', schema: CommentListSchema },
  { url: '/v1/users/3', path: '/v1/users/{id}', schema: UserProfileSchema },
  { url: '/v1/tags', path: '/v1/tags', schema: TagListSchema },
] as const;

describe('every route answers the shape its OpenAPI document promises', () => {
  it('the document is OpenAPI 3.1 and lists exactly the five /v1 routes and the users batch', () => {
    expect(doc.openapi).toBe('3.1.0');
    // The article batch shares /v1/articles with the list (batch.test.ts); the users batch has its own path.
    expect(Object.keys(doc.paths).sort()).toEqual([...routes.map((r) => r.path), '/v1/users'].sort());
    for (const route of routes) expect(doc.paths[route.path]?.get?.operationId).toBeTruthy();
  });

  it('the document generated from the config passes an OpenAPI 3.1 validator', async () => {
    expect(await openApiProblems(rawDocument)).toEqual([]);
    // It can fail: a document without info is not OpenAPI.
    expect(await openApiProblems({ ...(rawDocument as object), info: undefined })).not.toEqual([]);
  });

  it.each(routes)('GET $url: 200 JSON valid against the document and the zod schema', async (route) => {
    const res = await get(route.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body: unknown = await res.json();
    const component = responseComponent(doc, route.path, '200', 'application/json');
    const fromDocument = validator(component).safeParse(body);
    expect(fromDocument.error).toBeUndefined();
    expect(route.schema.safeParse(body).error).toBeUndefined();
    const statuses = route.path === '/v1/tags' ? ['304', '503'] : ['304', '400', '503'];
    for (const status of statuses) expect(doc.paths[route.path]?.get?.responses[status]).toBeDefined();
  });

  it('the document validator rejects answers that break the contract (it can fail)', () => {
    const article = validator('ArticleDetail');
    const good = {
      id: '1',
      title: 't',
      body: 'b',
      published: true,
      author: { id: '2', name: 'n' },
      tags: [],
      commentCount: 0,
      updatedAt: '2025-01-01T00:00:00.000Z',
    };
    expect(article.safeParse(good).success).toBe(true);
    expect(article.safeParse({ ...good, id: 1 }).success).toBe(false);
    expect(article.safeParse({ ...good, author: { id: '2' } }).success).toBe(false);
    expect(article.safeParse({ ...good, extra: true }).success).toBe(false);
    expect(article.safeParse({ ...good, updatedAt: 'yesterday' }).success).toBe(false);
    expect(
      validator('UserProfile').safeParse({ id: '1', name: 'n', bio: null, articleCount: 0 }).success,
    ).toBe(true);
    expect(validator('ArticleList').safeParse({ items: [], nextCursor: 5 }).success).toBe(false);
  });

  it('the article list is published articles only, newest first, default 20 per page', async () => {
    const page = ArticleListSchema.parse(await (await get('/v1/articles')).json());
    expect(page.items).toHaveLength(20);
    expect(page.nextCursor).toEqual(expect.any(String));
    const ids = page.items.map((i) => BigInt(i.id));
    // Seeded articles are created one minute apart in id order: newest first is descending ids.
    expect([...ids].sort((a, b) => (a > b ? -1 : 1))).toEqual(ids);
    const { rows } = await api.pool.query<{ published: boolean }>(
      'select published from articles where id = any($1)',
      [page.items.map((i) => i.id)],
    );
    expect(rows.every((r) => r.published)).toBe(true);
  });
});

describe('HTTP caching', () => {
  it.each(routes)(
    'GET $url: MISS, then a HIT with the same bytes and ETag and no SQL at all',
    async (route) => {
      await api.redis.flushdb();
      // Both measures, the pool's checkouts and what the server saw, move on the MISS: the
      // same measures staying still on the HIT is then evidence, not a counter that is dead.
      const beforeMiss = { checkouts: api.checkouts(), server: await activity.snapshot() };
      const first = await get(route.url);
      expect(first.headers.get('x-cache')).toBe('MISS');
      const firstBody = Buffer.from(await first.arrayBuffer());
      expect(api.checkouts()).toBeGreaterThan(beforeMiss.checkouts);
      const afterMiss = await activity.snapshot();
      expect(SqlActivity.ranSql(beforeMiss.server, afterMiss)).toBe(true);

      const before = api.checkouts();
      const hit = await get(route.url);
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-cache')).toBe('HIT');
      expect(Buffer.from(await hit.arrayBuffer()).equals(firstBody)).toBe(true);
      expect(hit.headers.get('etag')).toBe(first.headers.get('etag'));
      expect(api.checkouts()).toBe(before);
      expect(SqlActivity.ranSql(afterMiss, await activity.snapshot())).toBe(false);
    },
  );

  it('the ETag is strong and derived from the body bytes; Cache-Control asks to revalidate', async () => {
    const res = await get('/v1/users/3');
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('etag')).toBe(etagOf(body));
    expect(res.headers.get('etag')).not.toMatch(/^W\//);
    expect(res.headers.get('cache-control')).toBe('public, no-cache');
  });

  it('If-None-Match: exact tag, a list, a weak form and * give 304; another tag gives 200', async () => {
    const res = await get('/v1/articles/7');
    const etag = res.headers.get('etag')!;
    for (const header of [etag, `"nope", ${etag}`, `W/${etag}`, '*']) {
      const revalidated = await get('/v1/articles/7', { 'if-none-match': header });
      expect(revalidated.status, header).toBe(304);
      expect(await revalidated.text()).toBe('');
      expect(revalidated.headers.get('etag')).toBe(etag);
      expect(revalidated.headers.get('x-cache')).toBe('HIT');
    }
    const other = await get('/v1/articles/7', { 'if-none-match': '"something-else"' });
    expect(other.status).toBe(200);
  });

  it('a 304 costs no SQL either', async () => {
    const etag = (await get('/v1/tags')).headers.get('etag')!;
    const before = { checkouts: api.checkouts(), server: await activity.snapshot() };
    expect((await get('/v1/tags', { 'if-none-match': etag })).status).toBe(304);
    expect(api.checkouts()).toBe(before.checkouts);
    expect(SqlActivity.ranSql(before.server, await activity.snapshot())).toBe(false);
  });

  it('If-None-Match: * on an unknown id is still a 404 (nothing to match)', async () => {
    const res = await get('/v1/articles/999999', { 'if-none-match': '*' });
    expect(res.status).toBe(404);
  });

  it('a large page is gzip-compressed (weak ETag, Vary) and revalidates; a small body is not', async () => {
    const plain = await get('/v1/articles?limit=100');
    const plainBody = Buffer.from(await plain.arrayBuffer());
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.headers.get('vary')).toBe('Accept-Encoding');

    const zipped = await get('/v1/articles?limit=100', { 'accept-encoding': 'gzip, br' });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(zipped.headers.get('vary')).toBe('Accept-Encoding');
    expect(zipped.headers.get('etag')).toBe(`W/${plain.headers.get('etag')}`);
    const compressed = Buffer.from(await zipped.arrayBuffer());
    expect(compressed.length).toBeLessThan(plainBody.length / 3);
    expect(gunzipSync(compressed).equals(plainBody)).toBe(true);

    const revalidated = await get('/v1/articles?limit=100', {
      'accept-encoding': 'gzip',
      'if-none-match': zipped.headers.get('etag')!,
    });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get('vary')).toBe('Accept-Encoding');

    const small = await get('/v1/users/3', { 'accept-encoding': 'gzip' });
    expect(small.headers.get('content-encoding')).toBeNull();
    expect(small.headers.get('vary')).toBeNull();

    const refused = await get('/v1/articles?limit=100', { 'accept-encoding': 'gzip;q=0, identity' });
    expect(refused.headers.get('content-encoding')).toBeNull();
  });

  it('HEAD answers the headers of GET without a body', async () => {
    const res = await api.app.request('/v1/users/3', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toMatch(/^"/);
    expect(await res.text()).toBe('');
  });
});

async function expectProblem(res: Response, status: number, type: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const body = ProblemSchema.parse(await res.json());
  expect(validator('Problem').safeParse(body).error).toBeUndefined();
  expect(body.type).toBe(type);
  expect(body.status).toBe(status);
  return body;
}

describe('errors are problem+json with a stable type, never 500 for bad input', () => {
  const badIds = [
    'abc',
    '-1',
    '0',
    '1.5',
    '1e3',
    '0x10',
    '+1',
    '%201',
    '9223372036854775808',
    '99999999999999999999999999',
    '%D9%A1%D9%A2', // Arabic-Indic digits
    "1'%20or%20'1'='1",
    '1%3Bselect',
    '%7Barticle%3A1%7D',
    '*',
  ];
  it.each(badIds.flatMap((id) => [`/v1/articles/${id}`, `/v1/articles/${id}/comments`, `/v1/users/${id}`]))(
    'GET %s → 400 naming the id',
    async (url) => {
      const body = await expectProblem(await get(url), 400, problemTypes.invalidParameter);
      expect(body.errors).toEqual([expect.objectContaining({ parameter: 'id', in: 'path' })]);
    },
  );

  it.each(['/v1/users/', '/v1/articles/', '/v1/articles//comments'])(
    'GET %s (empty id) → 400 naming the id',
    async (url) => {
      const body = await expectProblem(await get(url), 400, problemTypes.invalidParameter);
      expect(body.errors).toEqual([{ parameter: 'id', in: 'path', message: 'must not be empty' }]);
    },
  );

  it('every route fits the RegExpRouter (a `//` route made Hono fall back to its slower TrieRouter)', async () => {
    await get('/v1/articles/7');
    expect(api.app.router.name).toBe('SmartRouter + RegExpRouter');
  });

  it.each(['/v1/users/', '/v1/articles//comments'])(
    'DELETE %s (empty id) → 405 as on the route',
    async (url) => {
      const res = await api.app.request(url, { method: 'DELETE' });
      await expectProblem(res, 405, problemTypes.methodNotAllowed);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    },
  );

  it('an id with leading zeros is the same article (one canonical cache key)', async () => {
    const canonical = await get('/v1/articles/7');
    const padded = await get('/v1/articles/0007');
    expect(padded.status).toBe(200);
    expect(padded.headers.get('etag')).toBe(canonical.headers.get('etag'));
  });

  const badLimits = ['0', '101', '-1', '1.5', 'abc', '', '1e1', '0x10', '%205', '1000000000000'];
  it.each(badLimits.flatMap((l) => [`/v1/articles?limit=${l}`, `/v1/articles/7/comments?limit=${l}`]))(
    'GET %s → 400 naming limit',
    async (url) => {
      const body = await expectProblem(await get(url), 400, problemTypes.invalidParameter);
      expect(body.errors).toEqual([expect.objectContaining({ parameter: 'limit', in: 'query' })]);
    },
  );

  it('a repeated limit is a 400, not a guess', async () => {
    await expectProblem(await get('/v1/articles?limit=1&limit=2'), 400, problemTypes.invalidParameter);
  });

  const forged = (text: string) => Buffer.from(text).toString('base64url');
  const badCursors = [
    '!!',
    'a'.repeat(129),
    forged('not a cursor'),
    forged('2025-02-01 00:00:00+00|abc'),
    forged('2025-02-30 00:00:00+00|5'), // no such day: Postgres would reject it
    forged('0000-01-01 00:00:00+00|5'), // no year 0 in Postgres
    forged('2025-13-01 00:00:00+00|5'),
    forged('2025-01-01 25:00:00+00|5'),
    forged('2025-01-01 00:00:00+00|99999999999999999999'),
    '%00',
  ];
  it.each(badCursors.flatMap((c) => [`/v1/articles?cursor=${c}`, `/v1/articles/7/comments?cursor=${c}`]))(
    'GET %s → 400 naming cursor',
    async (url) => {
      const body = await expectProblem(await get(url), 400, problemTypes.invalidParameter);
      expect(body.errors).toEqual([expect.objectContaining({ parameter: 'cursor', in: 'query' })]);
    },
  );

  it('several bad parameters are all named', async () => {
    const body = await expectProblem(
      await get('/v1/articles?limit=0&cursor=!'),
      400,
      problemTypes.invalidParameter,
    );
    expect(body.errors?.map((e) => e.parameter).sort()).toEqual(['cursor', 'limit']);
  });

  it.each(['/v1/articles/999999', '/v1/articles/999999/comments', '/v1/users/9223372036854775807'])(
    'GET %s (unknown id) → 404 not-found',
    async (url) => {
      const body = await expectProblem(await get(url), 404, problemTypes.notFound);
      expect(body.instance).toBe(url);
    },
  );

  it.each(['/', '/v1', '/v2/articles', '/v1/articles/7/likes', '/v1/comments', '/v1/tags/x'])(
    'GET %s (unknown route) → 404 route-not-found',
    async (url) => {
      await expectProblem(await get(url), 404, problemTypes.routeNotFound);
    },
  );

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('%s on a route → 405 with Allow', async (method) => {
    for (const url of ['/v1/articles', '/v1/articles/7', '/v1/tags', '/openapi.json']) {
      const res = await api.app.request(url, { method });
      await expectProblem(res, 405, problemTypes.methodNotAllowed);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
  });

  it('a body over the limit → 413', async () => {
    const res = await api.app.request('/v1/articles', {
      method: 'POST',
      body: 'x'.repeat(100 * 1024),
      headers: { 'content-type': 'text/plain' },
    });
    await expectProblem(res, 413, problemTypes.payloadTooLarge);
  });
});

describe('request ids', () => {
  it('every answer carries X-Request-Id; a valid one from the client is kept, a hostile one replaced', async () => {
    const generated = await get('/v1/tags');
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const kept = await get('/v1/nope', { 'x-request-id': 'trace-abc_123' });
    expect(kept.headers.get('x-request-id')).toBe('trace-abc_123');
    const replaced = await get('/v1/tags', { 'x-request-id': 'a b"}; drop' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('over a real socket (headers read from Node, not from a WHATWG Request)', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: api.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server?.close(() => resolve())));

  /** Raw HTTP/1.1, so a header can be sent twice (fetch would merge it first). */
  const raw = (path: string, headerLines: string[]) =>
    new Promise<{ status: number; headers: Record<string, string> }>((resolve, reject) => {
      const req = request(`${base}${path}`, { method: 'GET' }, (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string> }),
        );
      });
      for (const line of headerLines) {
        const [name, value] = line.split(': ');
        const previous = req.getHeader(name!);
        req.setHeader(name!, previous === undefined ? value! : [String(previous), value!].flat());
      }
      req.on('error', reject);
      req.end();
    });

  it('If-None-Match, X-Request-Id, Accept-Encoding and X-Walcache-After act as under app.request()', async () => {
    const first = await fetch(`${base}/v1/articles/7`, { headers: { 'X-Request-Id': 'sock-1' } });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-request-id')).toBe('sock-1');
    const etag = first.headers.get('etag')!;
    const again = await fetch(`${base}/v1/articles/7`, { headers: { 'If-None-Match': `"other", ${etag}` } });
    expect(again.status).toBe(304);
    const zipped = await fetch(`${base}/v1/articles?limit=100`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    const bad = await fetch(`${base}/v1/articles/7`, { headers: { 'X-Walcache-After': 'nope' } });
    expect(bad.status).toBe(400);
  });

  it('a header sent twice is read as its values joined, as Headers.get joins them', async () => {
    const first = await fetch(`${base}/v1/articles/7`);
    const etag = first.headers.get('etag')!;
    expect((await raw('/v1/articles/7', ['if-none-match: "other"', `if-none-match: ${etag}`])).status).toBe(
      304,
    );
    // "abc, abc" is not a valid id (a space and a comma): replaced, as a hostile one is.
    const twice = await raw('/v1/articles/7', ['x-request-id: abc', 'x-request-id: abc']);
    expect(twice.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
  });
});

describe('request ids in the logs', () => {
  it('the access line and the error line of a request carry its id', async () => {
    const lines: string[] = [];
    const logger = createLogger('api', {
      level: 'debug',
      destination: { write: (l: string) => lines.push(l) },
    });
    const logged = await buildApi(servers, { deps: { logger } });
    try {
      await logged.app.request('/v1/users/3', { headers: { 'x-request-id': 'trace-ok-1' } });
      await logged.app.request('/v1/users/x', { headers: { 'x-request-id': 'trace-bad-2' } });
      const entries = lines.map((l) => JSON.parse(l) as { reqId?: string; status?: number; path?: string });
      expect(entries).toContainEqual(
        expect.objectContaining({ reqId: 'trace-ok-1', status: 200, path: '/v1/users/3' }),
      );
      expect(entries).toContainEqual(expect.objectContaining({ reqId: 'trace-bad-2', status: 400 }));
    } finally {
      await logged.close();
    }
  });
});

describe('documentation and operations', () => {
  it('/docs renders the reference page with its script served locally, not from a CDN', async () => {
    const page = await get('/docs');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<script src="/docs/scalar.js"');
    expect(html).toContain('/openapi.json');
    expect(html).not.toMatch(/src="https?:/);
    const script = await get('/docs/scalar.js', { 'accept-encoding': 'gzip' });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect(gunzipSync(Buffer.from(await script.arrayBuffer())).toString('utf8', 0, 2000)).toMatch(/\S/);
    const again = await get('/docs/scalar.js', { 'if-none-match': script.headers.get('etag')! });
    expect(again.status).toBe(304);
  });

  it('/openapi.json revalidates with its ETag', async () => {
    const res = await get('/openapi.json');
    expect((await get('/openapi.json', { 'if-none-match': res.headers.get('etag')! })).status).toBe(304);
  });

  it('/healthz, /readyz and /metrics answer', async () => {
    expect(await (await get('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toContain('walcache_api_request_duration_seconds_bucket');
    expect(metrics).toContain('walcache_cache_requests_total{resource="article",outcome="HIT"');
  });
});
