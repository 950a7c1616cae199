import { z } from '@hono/zod-openapi';
import { etagOf } from '@walcache/core';
import type { BatchLookup, CompiledResource } from '@walcache/resources';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArticleDetailSchema, UserProfileSchema } from '../../../examples/blog/contract.ts';
import { batchRoutes } from '../src/batch.ts';
import { problemTypes } from '../src/problem.ts';
import { documentValidators, type OpenApiDocument, openApiDocument, responseComponent } from './openapi.ts';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let api: TestApi;
let doc: OpenApiDocument;

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
  doc = openApiDocument.parse(await (await api.app.request('/openapi.json')).json());
});

afterAll(async () => {
  await api?.close();
  await servers?.stop();
});

const get = (path: string, headers: Record<string, string> = {}) => api.app.request(path, { headers });

const metricsOf = (header: string | null) => (header ?? '').split(',').map((m) => m.trim().split(';')[0]);

interface Batch {
  items: { id: string }[];
  missing: string[];
}

describe('batch lookups: GET /v1/<things>?ids=…', () => {
  it('answers the values in the order asked, each as its single lookup answers it; MISS then HIT', async () => {
    await api.redis.flushdb();
    const first = await get('/v1/users?ids=7,3,12');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const body = (await first.json()) as Batch;
    expect(body.items.map((i) => i.id)).toEqual(['7', '3', '12']);
    expect(body.missing).toEqual([]);
    for (const item of body.items) expect(UserProfileSchema.safeParse(item).error).toBeUndefined();

    // The batch filled the same keys a single lookup reads: each is a HIT, with the same bytes.
    for (const item of body.items) {
      const single = await get(`/v1/users/${item.id}`);
      expect(single.headers.get('x-cache')).toBe('HIT');
      expect(await single.json()).toEqual(item);
    }
    const again = await get('/v1/users?ids=7,3,12');
    expect(again.headers.get('x-cache')).toBe('HIT');
    expect(await again.json()).toEqual(body);
  });

  it('reports unknown ids in `missing`, not as an error; duplicates answered once', async () => {
    const res = await get('/v1/articles?ids=5,999999,4,5,0004');
    expect(res.status).toBe(200);
    const body = (await res.json()) as Batch;
    expect(body.items.map((i) => i.id)).toEqual(['5', '4']);
    expect(body.missing).toEqual(['999999']);
    for (const item of body.items) expect(ArticleDetailSchema.safeParse(item).error).toBeUndefined();
    // The "not found" was cached like a single lookup's.
    const single = await get('/v1/articles/999999');
    expect(single.status).toBe(404);
    expect(single.headers.get('x-cache')).toBe('HIT');
  });

  it('X-Cache is PARTIAL when some values were cached and some loaded', async () => {
    await api.redis.flushdb();
    await get('/v1/users/20');
    const res = await get('/v1/users?ids=20,21');
    expect(res.headers.get('x-cache')).toBe('PARTIAL');
    expect(((await res.json()) as Batch).items.map((i) => i.id)).toEqual(['20', '21']);
  });

  it('the misses of a batch are loaded with one query, the hits with none', async () => {
    await api.redis.flushdb();
    const ids = Array.from({ length: 30 }, (_, i) => String(i + 40));
    const before = api.checkouts();
    const res = await get(`/v1/articles?ids=${ids.join(',')}`);
    expect(((await res.json()) as Batch).items.map((i) => i.id)).toEqual(ids);
    // Pooled into one query when the fills' Redis replies arrive together (they do against a
    // local Redis); never one query per value.
    expect(api.checkouts() - before).toBeLessThan(ids.length / 3);
    const hitBefore = api.checkouts();
    expect((await get(`/v1/articles?ids=${ids.join(',')}`)).headers.get('x-cache')).toBe('HIT');
    expect(api.checkouts()).toBe(hitBefore);
  });

  it('a read-your-writes token ahead of the watermark: from Postgres in one query, order kept (BYPASS)', async () => {
    const ids = ['9', '3', '999999', '5'];
    const before = api.checkouts();
    const res = await get(`/v1/articles?ids=${ids.join(',')}`, { 'x-walcache-after': 'FFFF/0' });
    expect(res.headers.get('x-cache')).toBe('BYPASS');
    const body = (await res.json()) as Batch;
    expect(body.items.map((i) => i.id)).toEqual(['9', '3', '5']);
    expect(body.missing).toEqual(['999999']);
    // The batch's one query and the WAL position read after it; never one per value.
    expect(api.checkouts() - before).toBe(2);
    expect(metricsOf(res.headers.get('server-timing'))).toContain('db');
  });

  it('the list at the same path still answers without the parameter', async () => {
    const res = await get('/v1/articles?limit=2');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: unknown[]; nextCursor: string | null };
    expect(body.items).toHaveLength(2);
    expect('missing' in body).toBe(false);
  });

  it('ETag and 304 work as for any answer; Server-Timing is there', async () => {
    const res = await get('/v1/users?ids=1,2');
    const bytes = Buffer.from(await res.arrayBuffer());
    const etag = res.headers.get('etag')!;
    expect(etag).toBe(etagOf(bytes));
    expect(res.headers.get('server-timing')).toMatch(/^cache;dur=/);
    const revalidated = await get('/v1/users?ids=1,2', { 'if-none-match': etag });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get('x-cache')).toBe('HIT');
  });

  it.each([
    ['/v1/users?ids=', 'value 1 ("") must not be empty'],
    ['/v1/users?ids=1,,2', 'value 2 ("") must not be empty'],
    ['/v1/users?ids=1,abc', 'value 2 ("abc") must be an integer between 1 and 9223372036854775807'],
    ['/v1/users?ids=1&ids=2', 'must be given once, as one comma-separated list'],
    [
      `/v1/users?ids=${Array.from({ length: 101 }, (_, i) => i + 1).join(',')}`,
      'lists at most 100 values (got 101)',
    ],
    ['/v1/users', 'is required: 1 to 100 values separated by commas'],
    ['/v1/articles?ids=-1', 'value 1 ("-1") must be an integer between 1 and 9223372036854775807'],
  ])('%s → 400 naming ids', async (url, message) => {
    const res = await get(url);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const body = (await res.json()) as {
      type: string;
      errors: { parameter: string; in: string; message: string }[];
    };
    expect(body.type).toBe(problemTypes.invalidParameter);
    expect(body.errors).toEqual([{ parameter: 'ids', in: 'query', message }]);
  });

  it('the OpenAPI document describes both: a batch path of its own, and the parameter on a list', () => {
    const users = doc.paths['/v1/users']?.get;
    expect(users?.operationId).toBe('getUserBatch');
    const validate = documentValidators(doc);
    const component = responseComponent(doc, '/v1/users', '200', 'application/json');
    expect(validate(component).safeParse({ items: [], missing: ['9'] }).success).toBe(true);
    expect(validate(component).safeParse({ items: [] }).success).toBe(false);
    const articles = doc.paths['/v1/articles']?.get as unknown as { parameters: { name: string }[] };
    expect(articles.parameters.map((p) => p.name)).toContain('ids');
  });
});

describe('which lookups get a batch path', () => {
  const resource = (route: string, kind: CompiledResource['kind'], extra: Partial<CompiledResource> = {}) =>
    ({ route, kind, routeParams: [], name: route, ...extra }) as unknown as CompiledResource;
  const batchOf = (route: string): BatchLookup => ({
    route,
    param: 'id',
    query: 'ids',
    loadMany: async () => [],
  });
  const requiredQuery = [
    { name: 'status', in: 'query' as const, required: true, description: '', schema: z.string() },
  ];

  it('a free path or a list without required query parameters; never a path another route matches', () => {
    const free = resource('/v1/things/{id}', 'lookup', { batch: batchOf('/v1/things') });
    const onList = resource('/v1/items/{id}', 'lookup', { batch: batchOf('/v1/items') });
    const shadowed = resource('/v1/things/by-code/{code}', 'lookup', {
      batch: batchOf('/v1/things/by-code'),
    });
    const filtered = resource('/v1/jobs/{id}', 'lookup', { batch: batchOf('/v1/jobs') });
    const taken = resource('/v1/stats/{id}', 'lookup', { batch: batchOf('/v1/stats') });
    const routes = batchRoutes([
      free,
      onList,
      shadowed,
      filtered,
      taken,
      resource('/v1/items', 'list'),
      resource('/v1/jobs', 'list', { routeParams: requiredQuery }),
      resource('/v1/stats', 'custom'),
    ]);
    expect(routes.map((r) => r.batch.route)).toEqual(['/v1/things', '/v1/items']);
  });
});
