import { quantile, targetOfKey } from '@walcache/auditor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor, resourceForKey } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';

let servers: Servers;
beforeAll(async () => {
  // The blog's resources are compiled against a real catalog (no rows needed).
  servers = await startServers(false);
});
afterAll(() => servers?.stop());

describe('targetOfKey: the auditor reloads exactly the value a key was built from', () => {
  const cursor = encodeCursor({ at: '2026-01-02 03:04:05.123456+00', id: '17' });
  it.each([
    ['article:42', 'article', { id: '42' }],
    ['user:7', 'user', { id: '7' }],
    ['tags:all', 'tags', {}],
    ['articles:20:-', 'articles', { limit: 20 }],
    [`articles:5:${cursor}`, 'articles', { limit: 5, cursor }],
    ['comments:9:10:-', 'comments', { id: '9', limit: 10 }],
    [`comments:9:10:${cursor}`, 'comments', { id: '9', limit: 10, cursor }],
  ])('%s', (key, resource, params) => {
    const target = targetOfKey(key, resourceForKey);
    expect(target?.resource.name).toBe(resource);
    expect(target?.params).toEqual(params);
  });

  it.each([
    'article:abc',
    'article:42:extra',
    'articles:500:-',
    'comments:9',
    'comments:abc:10:-',
    'nope:1',
    'user:0',
  ])('refuses %s (not a key walcache builds)', (key) => {
    expect(targetOfKey(key, resourceForKey)).toBeUndefined();
  });
});

describe('quantile', () => {
  it('is the nearest-rank quantile of sorted samples', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(samples, 0.5)).toBe(50);
    expect(quantile(samples, 0.99)).toBe(99);
    expect(quantile([3], 0.99)).toBe(3);
    expect(quantile([], 0.5)).toBeNull();
  });
});
