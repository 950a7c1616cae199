/** The static side of the resource declarations: what the CDC is configured with, and the tags each value declares. */
import type { AnyResource } from '@walcache/core';
import { describe, expect, it } from 'vitest';
import {
  type ArticleDetail,
  articleDetail,
  articleList,
  type Db,
  encodeCursor,
  resourceForKey,
  resources,
  sourceTables,
  userProfile,
  watchedColumns,
} from '../src/index.ts';

const article: ArticleDetail = {
  id: '7',
  title: 't',
  body: 'b',
  published: true,
  author: { id: '3', name: 'Ada' },
  tags: ['postgres', 'redis'],
  commentCount: 2,
  updatedAt: '2025-01-01T00:00:00.000Z',
};

describe('resources', () => {
  it('export the watched (table, column) pairs statically, deduplicated and sorted', () => {
    expect(watchedColumns).toEqual([
      { table: 'article_tags', column: 'article_id' },
      { table: 'articles', column: 'author_id' },
      { table: 'comments', column: 'article_id' },
      { table: 'tags', column: 'name' },
    ]);
    for (const w of watchedColumns) expect(sourceTables).toContain(w.table);
  });

  it('an article depends on its row, its author, its comments, its tag links and its tag names', () => {
    expect(articleDetail.tags({ id: '7' }, article)).toEqual([
      'row:articles:7',
      'row:users:3',
      'col:comments:article_id:7',
      'col:article_tags:article_id:7',
      'col:tags:name:postgres',
      'col:tags:name:redis',
    ]);
    // A missing article depends on its own row, so an INSERT of that id ends the negative entry.
    expect(articleDetail.tags({ id: '7' }, null)).toEqual(['row:articles:7']);
  });

  it('a list page depends on the whole articles table', () => {
    expect(articleList.tags({ limit: 20 }, { items: [], nextCursor: null })).toContain('table:articles');
  });

  it('every key maps back to its resource, and refresh-policy keys to their params', () => {
    const names = new Set(resources.map((r) => r.name));
    expect(names.size).toBe(resources.length);
    for (const r of resources as readonly AnyResource<Db>[]) {
      const key = r.key(r.params.parse({ id: '5' }));
      expect(resourceForKey(key)).toBe(r);
      if (r.policy === 'refresh') expect(r.paramsFromKey?.(key)).toBeDefined();
    }
    expect(userProfile.paramsFromKey?.('user:12')).toEqual({ id: '12' });
  });

  it('every resource rebuilds its params from its key (the auditor and refresh rely on it)', () => {
    const cursor = encodeCursor({ at: '2025-02-28 23:59:59.123456+00', id: '42' });
    for (const r of resources as readonly AnyResource<Db>[]) {
      for (const raw of [{ id: '5' }, { id: '5', limit: '7', cursor }]) {
        const key = r.key(r.params.parse(raw));
        const again = r.paramsFromKey?.(key);
        expect(again, `${r.name}: ${key}`).toBeDefined();
        expect(r.key(r.params.parse(again))).toBe(key);
      }
    }
  });
});
