import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { acceptsGzip, GzipMemo, ifNoneMatchMatches, shouldCompress } from '../src/http-cache.ts';

describe('If-None-Match', () => {
  const etag = '"abc"';
  it.each([
    ['"abc"', true],
    ['W/"abc"', true],
    ['"x", "abc"', true],
    ['"x",W/"abc" , "y"', true],
    ['*', true],
    [' * ', true],
    ['"abcd"', false],
    ['abc', false],
    ['"x", "y"', false],
    ['', false],
  ])('%j → %s', (header, expected) => {
    expect(ifNoneMatchMatches(header, etag)).toBe(expected);
  });
  it('no header never matches', () => {
    expect(ifNoneMatchMatches(undefined, etag)).toBe(false);
  });
});

describe('Accept-Encoding', () => {
  it.each([
    ['gzip', true],
    ['gzip, deflate, br', true],
    ['br;q=1.0, gzip;q=0.5', true],
    ['GZIP', true],
    ['x-gzip', true],
    ['*', true],
    ['gzip;q=0', false],
    ['gzip;q=0, *', false],
    ['*;q=0', false],
    ['br', false],
    ['identity', false],
    ['', false],
  ])('%j → %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
  it('small bodies are never compressed', () => {
    expect(shouldCompress(100, 'gzip')).toBe(false);
    expect(shouldCompress(5000, 'gzip')).toBe(true);
    expect(shouldCompress(5000, undefined)).toBe(false);
  });
});

describe('GzipMemo', () => {
  const body = (n: number) =>
    Buffer.from(JSON.stringify({ items: Array.from({ length: n }, (_, i) => ({ i })) }));

  it('compresses a body once per ETag: a hit returns the same bytes without gzipping again', () => {
    const memo = new GzipMemo(1024 * 1024);
    const first = memo.gzip('"a"', body(100));
    const second = memo.gzip('"a"', body(100));
    expect(second).toBe(first);
    expect(gunzipSync(first).equals(body(100))).toBe(true);
  });

  it('holds at most its byte bound, dropping the least recently used first', () => {
    const one = new GzipMemo(1024 * 1024).gzip('"x"', body(200)).length;
    const memo = new GzipMemo(one * 2 + 1);
    const a = memo.gzip('"a"', body(200));
    const b = memo.gzip('"b"', body(200));
    expect(memo.gzip('"a"', body(200))).toBe(a); // a is now the most recently used
    memo.gzip('"c"', body(200)); // over the bound: b goes
    expect(memo.size).toBe(2);
    expect(memo.bytes).toBeLessThanOrEqual(one * 2 + 1);
    expect(memo.gzip('"a"', body(200))).toBe(a);
    expect(memo.gzip('"b"', body(200))).not.toBe(b); // evicted: compressed anew
    expect(memo.size).toBe(2);
  });
});
