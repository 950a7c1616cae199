import { colTag, defineResource, rowTag, tableTag } from '@walcache/core';
import type { Database } from '@walcache/db';
import { type Kysely, sql } from 'kysely';
import { z } from 'zod';
import { cursorParam, decodeCursor, encodeCursor, idParam, limitParam } from './params.ts';
import { ttl } from './ttl.ts';

export type Db = Kysely<Database>;

/**
 * created_at as UTC text with microseconds: a JS Date would drop them and break keyset paging.
 * Qualified by the table alias: `users` has a created_at column too, and the queries join it.
 */
const createdKey = (alias: 'a' | 'c') =>
  sql<string>`to_char(${sql.ref(`${alias}.created_at`)} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`;

// ───────────────────────── article detail ─────────────────────────

export interface ArticleDetail {
  id: string;
  title: string;
  body: string;
  published: boolean;
  author: { id: string; name: string };
  tags: string[];
  commentCount: number;
  updatedAt: string;
}

export const articleDetail = defineResource({
  name: 'article',
  params: z.object({ id: idParam }),
  key: ({ id }) => `article:${id}`,
  paramsFromKey: (key) => {
    const m = /^article:(\d+)$/.exec(key);
    return m ? { id: m[1]! } : undefined;
  },
  async load(db: Db, { id }): Promise<ArticleDetail | null> {
    const row = await db
      .selectFrom('articles as a')
      .innerJoin('users as u', 'u.id', 'a.author_id')
      .select([
        'a.id',
        'a.title',
        'a.body',
        'a.published',
        'a.updated_at',
        'u.id as author_id',
        'u.name as author_name',
        sql<string>`(select count(*) from comments c where c.article_id = a.id)`.as('comment_count'),
        sql<
          string[]
        >`coalesce((select array_agg(t.name order by t.name) from article_tags at join tags t on t.id = at.tag_id where at.article_id = a.id), '{}')`.as(
          'tag_names',
        ),
      ])
      .where('a.id', '=', id)
      .executeTakeFirst();
    if (!row) return null;
    return {
      id: String(row.id),
      title: row.title,
      body: row.body,
      published: row.published,
      author: { id: String(row.author_id), name: row.author_name },
      tags: row.tag_names,
      commentCount: Number(row.comment_count),
      updatedAt: new Date(row.updated_at).toISOString(),
    };
  },
  // The article embeds its author's name, its tags' names and its comment count: each is a
  // dependency. A missing article depends on its own row so an INSERT ends the negative entry.
  tags: ({ id }, value) =>
    value
      ? [
          rowTag('articles', id),
          rowTag('users', value.author.id),
          colTag('comments', 'article_id', id),
          colTag('article_tags', 'article_id', id),
          ...value.tags.map((name) => colTag('tags', 'name', name)),
        ]
      : [rowTag('articles', id)],
  ttlSeconds: ttl.entity,
  negativeTtlSeconds: ttl.negative,
  policy: 'delete',
  watched: [
    { table: 'comments', column: 'article_id' },
    { table: 'article_tags', column: 'article_id' },
    { table: 'tags', column: 'name' },
  ],
});

// ───────────────────────── article list ─────────────────────────

export interface ArticleListItem {
  id: string;
  title: string;
  author: { id: string; name: string };
  tags: string[];
  commentCount: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export const articleList = defineResource({
  name: 'articles',
  params: z.object({ limit: limitParam, cursor: cursorParam.optional() }),
  key: ({ limit, cursor }) => `articles:${limit}:${cursor ?? '-'}`,
  paramsFromKey: (key) => {
    const m = /^articles:(\d+):([A-Za-z0-9_-]+)$/.exec(key);
    return m ? { limit: Number(m[1]), ...(m[2] === '-' ? {} : { cursor: m[2]! }) } : undefined;
  },
  async load(db: Db, { limit, cursor }): Promise<Page<ArticleListItem>> {
    let query = db
      .selectFrom('articles as a')
      .innerJoin('users as u', 'u.id', 'a.author_id')
      .select([
        'a.id',
        'a.title',
        'u.id as author_id',
        'u.name as author_name',
        createdKey('a').as('created_key'),
        sql<string>`(select count(*) from comments c where c.article_id = a.id)`.as('comment_count'),
        sql<
          string[]
        >`coalesce((select array_agg(t.name order by t.name) from article_tags at join tags t on t.id = at.tag_id where at.article_id = a.id), '{}')`.as(
          'tag_names',
        ),
      ])
      .where('a.published', '=', true)
      .orderBy('a.created_at', 'desc')
      .orderBy('a.id', 'desc')
      .limit(limit + 1);
    if (cursor) {
      const { at, id } = decodeCursor(cursor);
      query = query.where(sql<boolean>`(a.created_at, a.id) < (${at}::timestamptz, ${id}::bigint)`);
    }
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((r) => ({
        id: String(r.id),
        title: r.title,
        author: { id: String(r.author_id), name: r.author_name },
        tags: r.tag_names,
        commentCount: Number(r.comment_count),
      })),
      nextCursor:
        rows.length > limit && last ? encodeCursor({ at: last.created_key, id: String(last.id) }) : null,
    };
  },
  // Any article change can move items between pages, so pages depend on the whole table;
  // authors, comment counts and tags are per item.
  tags: (_params, value) => [
    tableTag('articles'),
    ...(value?.items.flatMap((item) => [
      rowTag('users', item.author.id),
      colTag('comments', 'article_id', item.id),
      colTag('article_tags', 'article_id', item.id),
      ...item.tags.map((name) => colTag('tags', 'name', name)),
    ]) ?? []),
  ],
  ttlSeconds: ttl.list,
  negativeTtlSeconds: ttl.negative,
  policy: 'delete',
  watched: [
    { table: 'comments', column: 'article_id' },
    { table: 'article_tags', column: 'article_id' },
    { table: 'tags', column: 'name' },
  ],
});

// ───────────────────────── comments of an article ─────────────────────────

export interface CommentItem {
  id: string;
  body: string;
  author: { id: string; name: string };
  createdAt: string;
}

export const articleComments = defineResource({
  name: 'comments',
  params: z.object({ id: idParam, limit: limitParam, cursor: cursorParam.optional() }),
  key: ({ id, limit, cursor }) => `comments:${id}:${limit}:${cursor ?? '-'}`,
  paramsFromKey: (key) => {
    const m = /^comments:(\d+):(\d+):([A-Za-z0-9_-]+)$/.exec(key);
    return m ? { id: m[1]!, limit: Number(m[2]), ...(m[3] === '-' ? {} : { cursor: m[3]! }) } : undefined;
  },
  async load(db: Db, { id, limit, cursor }): Promise<Page<CommentItem> | null> {
    const article = await db.selectFrom('articles').select('id').where('id', '=', id).executeTakeFirst();
    if (!article) return null;
    let query = db
      .selectFrom('comments as c')
      .innerJoin('users as u', 'u.id', 'c.author_id')
      .select([
        'c.id',
        'c.body',
        'c.created_at',
        'u.id as author_id',
        'u.name as author_name',
        createdKey('c').as('created_key'),
      ])
      .where('c.article_id', '=', id)
      .orderBy('c.created_at', 'desc')
      .orderBy('c.id', 'desc')
      .limit(limit + 1);
    if (cursor) {
      const at = decodeCursor(cursor);
      query = query.where(sql<boolean>`(c.created_at, c.id) < (${at.at}::timestamptz, ${at.id}::bigint)`);
    }
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((r) => ({
        id: String(r.id),
        body: r.body,
        author: { id: String(r.author_id), name: r.author_name },
        createdAt: new Date(r.created_at).toISOString(),
      })),
      nextCursor:
        rows.length > limit && last ? encodeCursor({ at: last.created_key, id: String(last.id) }) : null,
    };
  },
  tags: ({ id }, value) => [
    rowTag('articles', id),
    colTag('comments', 'article_id', id),
    ...(value?.items.map((c) => rowTag('users', c.author.id)) ?? []),
  ],
  ttlSeconds: ttl.list,
  negativeTtlSeconds: ttl.negative,
  policy: 'delete',
  watched: [{ table: 'comments', column: 'article_id' }],
});

// ───────────────────────── user profile ─────────────────────────

export interface UserProfile {
  id: string;
  name: string;
  bio: string | null;
  articleCount: number;
}

export const userProfile = defineResource({
  name: 'user',
  params: z.object({ id: idParam }),
  key: ({ id }) => `user:${id}`,
  paramsFromKey: (key) => {
    const m = /^user:(\d+)$/.exec(key);
    return m ? { id: m[1]! } : undefined;
  },
  async load(db: Db, { id }): Promise<UserProfile | null> {
    const row = await db
      .selectFrom('users as u')
      .select([
        'u.id',
        'u.name',
        'u.bio',
        sql<string>`(select count(*) from articles a where a.author_id = u.id and a.published)`.as(
          'article_count',
        ),
      ])
      .where('u.id', '=', id)
      .executeTakeFirst();
    return row
      ? { id: String(row.id), name: row.name, bio: row.bio, articleCount: Number(row.article_count) }
      : null;
  },
  // articleCount changes when an article of this author is inserted, deleted, published or
  // moved to another author: the watched author_id column carries old and new authors.
  tags: ({ id }) => [rowTag('users', id), colTag('articles', 'author_id', id)],
  ttlSeconds: ttl.entity,
  negativeTtlSeconds: ttl.negative,
  policy: 'refresh',
  watched: [{ table: 'articles', column: 'author_id' }],
});

// ───────────────────────── tag list ─────────────────────────

export interface TagList {
  items: { name: string; articleCount: number }[];
}

export const tagList = defineResource({
  name: 'tags',
  params: z.object({}),
  key: () => 'tags:all',
  paramsFromKey: (key) => (key === 'tags:all' ? {} : undefined),
  async load(db: Db): Promise<TagList> {
    const rows = await db
      .selectFrom('tags as t')
      .leftJoin('article_tags as at', 'at.tag_id', 't.id')
      .leftJoin('articles as a', (join) =>
        join.onRef('a.id', '=', 'at.article_id').on('a.published', '=', true),
      )
      .select(['t.name', sql<string>`count(a.id)`.as('article_count')])
      .groupBy('t.name')
      .orderBy('t.name')
      .execute();
    return { items: rows.map((r) => ({ name: r.name, articleCount: Number(r.article_count) })) };
  },
  tags: () => [tableTag('tags'), tableTag('article_tags'), tableTag('articles')],
  ttlSeconds: ttl.list,
  negativeTtlSeconds: ttl.negative,
  policy: 'refresh',
  watched: [],
});
