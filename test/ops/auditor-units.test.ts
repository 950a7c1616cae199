import { quantile, targetOfKey } from '@walcache/auditor';
import {
  articleComments,
  articleDetail,
  articleList,
  encodeCursor,
  tagList,
  userProfile,
} from '@walcache/resources';
import { describe, expect, it } from 'vitest';

describe('targetOfKey: the auditor reloads exactly the value a key was built from', () => {
  const cursor = encodeCursor({ at: '2026-01-02 03:04:05.123456+00', id: '17' });
  it.each([
    [articleDetail.key({ id: '42' }), 'article', { id: '42' }],
    [userProfile.key({ id: '7' }), 'user', { id: '7' }],
    [tagList.key({}), 'tags', {}],
    [articleList.key({ limit: 20 }), 'articles', { limit: 20 }],
    [articleList.key({ limit: 5, cursor }), 'articles', { limit: 5, cursor }],
    [articleComments.key({ id: '9', limit: 10 }), 'comments', { id: '9', limit: 10 }],
    [articleComments.key({ id: '9', limit: 10, cursor }), 'comments', { id: '9', limit: 10, cursor }],
  ])('%s', (key, resource, params) => {
    const target = targetOfKey(key);
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
    expect(targetOfKey(key)).toBeUndefined();
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
