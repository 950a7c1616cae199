import { type AnyResource, watchedColumnsOf } from '@walcache/core';
import { articleComments, articleDetail, articleList, type Db, tagList, userProfile } from './blog.ts';

export * from './blog.ts';
export { type Cursor, cursorParam, decodeCursor, encodeCursor, idParam, limitParam } from './params.ts';
export { ttl } from './ttl.ts';

/** Every resource this deployment serves. */
export const resources = [
  articleDetail,
  articleList,
  articleComments,
  userProfile,
  tagList,
] as const satisfies readonly AnyResource<Db>[];

/** What the CDC needs from the resources: the columns whose old and new values become tags. */
export const watchedColumns = watchedColumnsOf(resources);

/** The resource a cache key belongs to (for refresh and inspect), by its `name:` prefix. */
export function resourceForKey(key: string): AnyResource<Db> | undefined {
  const name = key.slice(0, key.indexOf(':'));
  return resources.find((r) => r.name === name);
}

/**
 * The tables the CDC publishes: every table a resource reads. Changes to any other table
 * never reach the queue.
 */
export const sourceTables = ['users', 'articles', 'tags', 'article_tags', 'comments'] as const;
