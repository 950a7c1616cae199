import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type Listening, type Servers, startServers, type TestApi } from './support.ts';

/**
 * The hit lane (src/hit-lane.ts) answers hits from Node's request, before the Hono app: its
 * answers must be the app's, byte for byte, and everything else must reach the app untouched.
 * Each case sends the same request to the API with the lane and to the same app served
 * without it (both over real HTTP, same cache), and compares what a client receives.
 */

let servers: Servers;
let api: TestApi;
let lane: Listening;
let appOnly: Listening;

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
  lane = await api.listen();
  appOnly = await api.listen({ lane: false });
});

afterAll(async () => {
  await lane?.close();
  await appOnly?.close();
  await api?.close();
  await servers?.stop();
});

interface Received {
  status: number;
  /** Raw header lines as sent, names as spelled, in order (Date dropped, Server-Timing's figure masked). */
  headers: string[];
  body: Buffer;
}

/** Raw HTTP/1.1, so what is compared is exactly what went over the socket. */
function get(base: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<Received>((resolve, reject) => {
    // Host, port and path apart: a URL string would be normalised (dot segments) before sending.
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const lines: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!;
          const value = res.rawHeaders[i + 1]!;
          if (name.toLowerCase() === 'date') continue;
          lines.push(
            `${name.toLowerCase()}: ${name.toLowerCase() === 'server-timing' ? mask(value) : value}`,
          );
        }
        // An answer from Postgres carries the WAL position after its load, which moves between two.
        const fromPostgres = lines.includes('x-cache: BYPASS');
        const shown = fromPostgres
          ? lines.map((l) => l.replace(/^(x-walcache-watermark: ).*/, '$1N'))
          : lines;
        resolve({ status: res.statusCode ?? 0, headers: shown.sort(), body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const mask = (timing: string) => timing.replaceAll(/dur=[\d.]+/g, 'dur=N');

/** Sends one request to both servers; returns both answers and whether the lane answered it itself. */
async function both(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const before = lane.passed();
  const viaLane = await get(lane.url, path, headers, method);
  const tookIt = lane.passed() === before;
  const viaApp = await get(appOnly.url, path, headers, method);
  return { viaLane, viaApp, tookIt };
}

const ID = { 'x-request-id': 'lane-test-1' };

describe('hits: the lane answers them as the app does', () => {
  it.each([
    ['an entity', '/v1/articles/1', {}],
    ['an entity, gzip accepted', '/v1/articles/2', { 'accept-encoding': 'gzip' }],
    ['a list page', '/v1/articles?limit=5', {}],
    [
      'a list page, gzip accepted (a body big enough to compress)',
      '/v1/articles?limit=50',
      { 'accept-encoding': 'gzip, br' },
    ],
    ['a nested list', '/v1/articles/3/comments', {}],
    ['a list with a query it does not declare', '/v1/tags?x=1', {}],
  ])('%s', async (_, path, headers) => {
    // A first read fills the key (through the app: a miss is not the lane's).
    const fill = await both(path, { ...ID, ...headers });
    expect(fill.tookIt).toBe(false);
    const { viaLane, viaApp, tookIt } = await both(path, { ...ID, ...headers });
    expect(tookIt).toBe(true);
    expect(viaLane.status).toBe(200);
    expect(viaLane.headers).toContain('x-cache: HIT');
    expect(viaLane).toEqual(viaApp);
  });

  it('remembers how to route a target, never its answer: a deleted value is a miss again', async () => {
    await get(lane.url, '/v1/articles/8');
    const hit = await both('/v1/articles/8', ID);
    expect(hit.tookIt).toBe(true);
    await api.redis.del(api.cache.keys.value('article:8'));
    const before = lane.passed();
    const again = await get(lane.url, '/v1/articles/8', ID);
    expect(lane.passed()).toBe(before + 1);
    expect(again.headers).toContain('x-cache: MISS');
    expect(again.body).toEqual(hit.viaLane.body);
  });

  it('a 304 for a matching If-None-Match, the same as the app', async () => {
    const first = await get(lane.url, '/v1/articles/4', ID);
    const etag = first.headers.find((h) => h.startsWith('etag: '))!.slice(6);
    const { viaLane, viaApp, tookIt } = await both('/v1/articles/4', { ...ID, 'if-none-match': etag });
    expect(tookIt).toBe(true);
    expect(viaLane.status).toBe(304);
    expect(viaLane).toEqual(viaApp);
  });

  it('a request id of its own when the client sends none (or an invalid one)', async () => {
    await get(lane.url, '/v1/articles/5');
    for (const headers of [{}, { 'x-request-id': 'not valid!' }] as Record<string, string>[]) {
      const a = await get(lane.url, '/v1/articles/5', headers);
      const b = await get(lane.url, '/v1/articles/5', headers);
      const id = (r: Received) => r.headers.find((h) => h.startsWith('x-request-id: '));
      expect(id(a)).toMatch(/^x-request-id: [0-9a-f-]{36}$/);
      expect(id(a)).not.toEqual(id(b));
    }
  });

  it('counts a hit in the request and cache metrics as the app does', async () => {
    await get(lane.url, '/v1/users/1');
    const requests = async () =>
      (await api.metrics.requestDuration.get()).values
        .filter(
          (v) =>
            v.metricName?.endsWith('_count') &&
            v.labels.route === '/v1/users/:id' &&
            v.labels.status === '200' &&
            v.labels.cache === 'HIT',
        )
        .reduce((sum, v) => sum + v.value, 0);
    const hits = async () =>
      (await api.metrics.cacheOutcomes.get()).values
        .filter((v) => v.labels.resource === 'user' && v.labels.outcome === 'HIT')
        .reduce((sum, v) => sum + v.value, 0);
    const requestsBefore = await requests();
    const hitsBefore = await hits();
    const passed = lane.passed();
    await get(lane.url, '/v1/users/1');
    expect(lane.passed()).toBe(passed);
    expect(await requests()).toBe(requestsBefore + 1);
    expect(await hits()).toBe(hitsBefore + 1);
  });
});

describe('everything else: the app answers it, untouched', () => {
  beforeAll(async () => {
    await get(lane.url, '/v1/articles/6');
    await get(lane.url, '/v1/articles/6/comments');
  });

  it.each([
    ['a percent-escaped parameter', '/v1/articles/%36', {}, 'GET'],
    ['a dot segment', '/v1/articles/../articles/6', {}, 'GET'],
    ['an invalid parameter', '/v1/articles/abc', {}, 'GET'],
    ['an invalid query parameter', '/v1/articles?limit=0', {}, 'GET'],
    ['a trailing slash', '/v1/articles/6/', {}, 'GET'],
    ['an empty path parameter', '/v1/articles//comments', {}, 'GET'],
    ['a query parameter without a value', '/v1/articles?limit', {}, 'GET'],
    ['a `+` in the query', '/v1/articles?cursor=a+b', {}, 'GET'],
    ['a query parameter given twice', '/v1/articles?limit=2&limit=3', {}, 'GET'],
    ['a read-your-writes token (header)', '/v1/articles/6', { 'x-walcache-after': '0/0' }, 'GET'],
    ['a read-your-writes token (query)', '/v1/articles/6?walcache_after=0/0', {}, 'GET'],
    ['a bad read-your-writes token', '/v1/articles/6', { 'x-walcache-after': 'soon' }, 'GET'],
    ['HEAD', '/v1/articles/6', {}, 'HEAD'],
    ['POST', '/v1/articles/6', {}, 'POST'],
    ['an unknown route', '/v1/nothing/here', {}, 'GET'],
    ['a Host the adapter refuses', '/v1/articles/6', { host: 'EXAMPLE.com' }, 'GET'],
  ])('%s', async (_, path, headers, method) => {
    const { viaLane, viaApp, tookIt } = await both(path, { ...ID, ...headers }, method);
    expect(tookIt).toBe(false);
    expect(viaLane).toEqual(viaApp);
  });

  it('a miss, and then a cached "not found"', async () => {
    const miss = await both('/v1/articles/900001', ID);
    expect(miss.tookIt).toBe(false);
    expect(miss.viaLane.status).toBe(404);
    const negative = await both('/v1/articles/900001', ID);
    expect(negative.tookIt).toBe(false);
    expect(negative.viaLane.headers).toContain('x-cache: HIT');
    expect(negative.viaLane).toEqual(negative.viaApp);
  });

  it('with the breaker open, the app answers from Postgres (BYPASS)', async () => {
    for (let i = 0; i < 5; i++) api.cache.breaker.failure();
    try {
      const { viaLane, tookIt } = await both('/v1/articles/6', ID);
      expect(tookIt).toBe(false);
      expect(viaLane.headers).toContain('x-cache: BYPASS');
    } finally {
      api.cache.breaker.success();
    }
  });
});

describe('shutdown', () => {
  it('a hit while draining is left to the app', async () => {
    let draining = false;
    const drainingLane = await api.listen({ draining: () => draining });
    try {
      await get(drainingLane.url, '/v1/articles/7');
      await get(drainingLane.url, '/v1/articles/7');
      expect(drainingLane.passed()).toBe(1);
      draining = true;
      await get(drainingLane.url, '/v1/articles/7');
      expect(drainingLane.passed()).toBe(2);
    } finally {
      await drainingLane.close();
    }
  });
});
