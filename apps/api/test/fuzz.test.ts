import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArticleListSchema } from '../../../examples/blog/contract.ts';
import { encodeCursor } from '../../../test/support/blog.ts';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let api: TestApi;
const realCursors: string[] = [];

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
  // A few genuine cursors to mutate: random strings alone would almost never decode to one.
  let cursor: string | undefined;
  for (let i = 0; i < 3; i++) {
    const res = await api.app.request(`/v1/articles?limit=40${cursor ? `&cursor=${cursor}` : ''}`);
    cursor = ArticleListSchema.parse(await res.json()).nextCursor ?? undefined;
    if (cursor) realCursors.push(cursor);
  }
});

afterAll(async () => {
  await api?.close();
  await servers?.stop();
});

/** Strings that have broken parsers, SQL, Redis keys and URL handling somewhere before. */
const nasty = [
  "1'; DROP TABLE articles; --",
  '1 OR 1=1',
  '*',
  '?',
  '[a-z]',
  '{article:1}',
  'article:1',
  '}:lease',
  '\r\nFLUSHALL\r\n',
  '%',
  '%00',
  '\u0000',
  '..',
  '../users/1',
  ' 1',
  '1 ',
  '+1',
  '-0',
  '0',
  '00000000000000000000001',
  '9223372036854775807',
  '9223372036854775808',
  '18446744073709551616',
  '١٢٣',
  '１２',
  'NaN',
  'Infinity',
  '1e3',
  '0x1F',
  '$(id)',
  '\\',
  'null',
  'undefined',
  '__proto__',
  'constructor',
];

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 24 }),
  fc.string({ unit: 'binary-ascii', maxLength: 24 }),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String),
  fc.integer({ min: -5, max: 250 }).map(String),
  fc.constantFrom(...nasty),
);

/** Genuine cursors, mutated: truncated, extended, one character changed, or forged text. */
const cursorValue = fc.oneof(
  { arbitrary: text, weight: 1 },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...[0, 1, 2]).chain((i) =>
      fc.oneof(
        fc.constant(realCursors[i] ?? ''),
        fc.nat({ max: 60 }).map((n) => (realCursors[i] ?? '').slice(0, n)),
        fc
          .string({ unit: 'binary-ascii', minLength: 1, maxLength: 3 })
          .map((s) => `${realCursors[i] ?? ''}${s}`),
        fc.tuple(fc.nat({ max: 60 }), fc.constantFrom(...'AZaz09-_=+/'.split(''))).map(([at, ch]) => {
          const c = realCursors[i] ?? '';
          return c.slice(0, at) + ch + c.slice(at + 1);
        }),
      ),
    ),
  },
  // Forged cursors with calendar edge cases: the shape is right, the instant may not exist.
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(0, 1, 1970, 2024, 2025, 9999),
        fc.integer({ min: 0, max: 13 }),
        fc.constantFrom(0, 1, 28, 29, 30, 31, 32),
        fc.constantFrom('00:00:00', '23:59:59.999999', '24:00:00', '25:00:00', '12:60:00'),
        fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 19n }).map(String), text),
      )
      .map(([y, m, d, time, id]) =>
        encodeCursor({
          at: `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')} ${time}+00`,
          id,
        }),
      ),
  },
);

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const query = (params: Record<string, string | undefined>) => {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`);
  return parts.length ? `?${parts.join('&')}` : '';
};

const request = fc.oneof(
  text.map((id) => `/v1/articles/${encodeURIComponent(id)}`),
  text.map((id) => `/v1/users/${encodeURIComponent(id)}`),
  fc
    .tuple(text, optional(text), optional(cursorValue))
    .map(
      ([id, limit, cursor]) => `/v1/articles/${encodeURIComponent(id)}/comments${query({ limit, cursor })}`,
    ),
  fc
    .tuple(optional(text), optional(cursorValue), optional(text))
    .map(([limit, cursor, junk]) => `/v1/articles${query({ limit, cursor, [junk ?? 'x']: junk })}`),
  fc.tuple(text, text).map(([k, v]) => `/v1/tags${query({ [k]: v })}`),
  // Valid ids, so plenty of requests get past validation and build cache keys.
  fc.bigInt({ min: 1n, max: 400n }).map((id) => `/v1/articles/${id}/comments${query({ limit: '3' })}`),
  fc.bigInt({ min: 1n, max: 9223372036854775807n }).map((id) => `/v1/users/${id}`),
);

const ifNoneMatch = optional(
  fc.oneof(
    text,
    fc.constant('*'),
    text.map((t) => `"${t}"`),
  ),
);

describe('fuzzing path and query parameters', () => {
  it('only 200, 304, 400 or 404 come back, problems as problem+json', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, ifNoneMatch, async (url, inm) => {
        const headers: Record<string, string> = {};
        // Header values must be ByteStrings; a header the client could not send is skipped.
        if (inm !== undefined && /^[\t\x20-\x7e]*$/.test(inm)) headers['if-none-match'] = inm;
        const res = await api.app.request(url, { headers });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect([200, 304, 400, 404], `${url} → ${res.status}: ${await res.clone().text()}`).toContain(
          res.status,
        );
        if (res.status >= 400) expect(res.headers.get('content-type')).toBe('application/problem+json');
      }),
      // Why 600 runs: enough to reach every generator branch many times, about 2 s here.
      { numRuns: 600 },
    );
    // The run must have exercised both sides of validation, or it proved nothing.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(404) ?? 0).toBeGreaterThan(5);
  });

  it('every Redis key written during the run is built from canonical, validated parameters', async () => {
    const prefix = api.prefix;
    const id = '[1-9][0-9]{0,18}';
    const limit = '(?:[1-9][0-9]?|100)';
    const cursor = '[A-Za-z0-9_-]+';
    const resourceKey = new RegExp(
      `^(?:article:${id}|user:${id}|tags:all|articles:${limit}:(?:-|${cursor})|comments:${id}:${limit}:(?:-|${cursor}))$`,
    );
    const tag = new RegExp(
      `^(?:row:(?:articles|users|comments|tags|article_tags):${id}|col:(?:comments|article_tags|articles):(?:article_id|author_id|tag_id|id):${id}|col:tags:name:[a-z0-9-]+|(?:table|rows|epoch):[a-z_]+)$`,
    );
    const keys: string[] = [];
    let scan = '0';
    do {
      const [next, batch] = await api.redis.scan(scan, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      scan = next;
      keys.push(...batch);
    } while (scan !== '0');
    expect(keys.length).toBeGreaterThan(50);

    const bad: string[] = [];
    for (const key of keys) {
      const rest = key.slice(prefix.length + 1);
      const value = /^\{(.*)\}(?::lease)?$/.exec(rest);
      const tagKey = /^(?:tag|tagv):(.*)$/.exec(rest);
      if (value) {
        const k = value[1]!;
        if (!resourceKey.test(k) || !idsInRange(k) || !cursorCanonical(k)) bad.push(key);
      } else if (tagKey) {
        if (!tag.test(tagKey[1]!) || !idsInRange(tagKey[1]!)) bad.push(key);
      } else if (!/^(?:seq|flushv|tagv-expiry|generation|flushed)$/.test(rest)) {
        bad.push(key);
      }
    }
    expect(bad).toEqual([]);
  });
});

/** Every run of digits that stands for an id is at most 2^63-1. */
function idsInRange(key: string): boolean {
  return key
    .split(':')
    .filter((part) => /^[0-9]+$/.test(part))
    .every((digits) => BigInt(digits) <= 9223372036854775807n);
}

/** A cursor in a key is exactly what the resource's encoder produces from its decoded parts. */
function cursorCanonical(key: string): boolean {
  const parts = key.split(':');
  const last = parts.at(-1)!;
  if (!(parts[0] === 'articles' || parts[0] === 'comments') || last === '-') return true;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(last, 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  const [at, cursorId] = Array.isArray(decoded) && decoded.length === 2 ? (decoded as unknown[]) : [];
  if (typeof at !== 'string' || typeof cursorId !== 'string') return false;
  return (
    /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00$/.test(at) &&
    // An order value, not an id to look up: any bigint, in its one canonical spelling.
    /^-?[0-9]{1,19}$/.test(cursorId) &&
    BigInt(cursorId).toString() === cursorId &&
    encodeCursor({ at, id: cursorId }) === last
  );
}
