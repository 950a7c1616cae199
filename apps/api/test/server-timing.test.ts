import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let api: TestApi;

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
});

afterAll(async () => {
  await api?.close();
  await servers?.stop();
});

const get = (path: string, headers: Record<string, string> = {}) => api.app.request(path, { headers });

/** `cache;dur=0.31, db;dur=2.10` → { cache: 0.31, db: 2.1 }; a metric without `dur` → NaN. */
function metrics(header: string | null): Record<string, number> {
  expect(header, 'Server-Timing header').not.toBeNull();
  const out: Record<string, number> = {};
  for (const entry of header!.split(',')) {
    const [name = '', ...params] = entry.trim().split(';');
    const dur = params.find((p) => p.startsWith('dur='));
    out[name] = dur ? Number(dur.slice(4)) : Number.NaN;
  }
  return out;
}

describe('Server-Timing on every /v1 answer', () => {
  it('a MISS names the cache and the database load; the HIT after it only the cache', async () => {
    await api.redis.flushdb();
    const miss = await get('/v1/articles/11');
    expect(miss.headers.get('x-cache')).toBe('MISS');
    const missTiming = metrics(miss.headers.get('server-timing'));
    expect(Object.keys(missTiming).sort()).toEqual(['cache', 'db']);
    expect(missTiming.db).toBeGreaterThan(0);
    expect(missTiming.cache).toBeGreaterThanOrEqual(0);

    const hit = await get('/v1/articles/11');
    expect(hit.headers.get('x-cache')).toBe('HIT');
    const hitTiming = metrics(hit.headers.get('server-timing'));
    expect(Object.keys(hitTiming)).toEqual(['cache']);
    expect(hitTiming.cache).toBeGreaterThanOrEqual(0);
  });

  it('a batch: its one query as db on a MISS, only the cache on a HIT', async () => {
    await api.redis.flushdb();
    const miss = await get('/v1/articles?ids=3,4,5');
    expect(miss.headers.get('x-cache')).toBe('MISS');
    expect(metrics(miss.headers.get('server-timing')).db).toBeGreaterThan(0);
    const hit = await get('/v1/articles?ids=3,4,5');
    expect(hit.headers.get('x-cache')).toBe('HIT');
    expect(Object.keys(metrics(hit.headers.get('server-timing')))).toEqual(['cache']);
  });

  it('a 304 and a 404 carry it; a list MISS has its db part', async () => {
    const etag = (await get('/v1/users/4')).headers.get('etag')!;
    const revalidated = await get('/v1/users/4', { 'if-none-match': etag });
    expect(revalidated.status).toBe(304);
    expect(Object.keys(metrics(revalidated.headers.get('server-timing')))).toEqual(['cache']);

    await api.redis.flushdb();
    const notFound = await get('/v1/users/987654321');
    expect(notFound.status).toBe(404);
    expect(Object.keys(metrics(notFound.headers.get('server-timing'))).sort()).toEqual(['cache', 'db']);

    const page = await get('/v1/articles?limit=3');
    expect(page.headers.get('x-cache')).toBe('MISS');
    expect(metrics(page.headers.get('server-timing')).db).toBeGreaterThan(0);
  });

  it('a 400 says the cache was not read (no duration to report)', async () => {
    const bad = await get('/v1/articles/abc');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('server-timing')).toBe('cache;desc="not read"');
    const empty = await get('/v1/users/');
    expect(empty.status).toBe(400);
    expect(empty.headers.get('server-timing')).toBe('cache;desc="not read"');
  });

  it('a 503 (the database gone for a miss) still says where the time went', async () => {
    const down = await buildApi(servers, {
      pool: { connectionString: 'postgres://nobody@127.0.0.1:1/none' },
    });
    try {
      const res = await down.app.request('/v1/articles/12');
      expect(res.status).toBe(503);
      expect(Object.keys(metrics(res.headers.get('server-timing'))).sort()).toEqual(['cache', 'db']);
      const batch = await down.app.request('/v1/users?ids=1,2');
      expect(batch.status).toBe(503);
      expect(Object.keys(metrics(batch.headers.get('server-timing'))).sort()).toEqual(['cache', 'db']);
    } finally {
      await down.close();
    }
  });
});
