import { defineConfig } from '@walcache/config';

/**
 * The sample blog (the default of `npm start`): articles with their author, tag names and
 * comment count, the newest-first feed, an article's comments, user profiles and the tag
 * list. No tag, key or SQL is written by hand: walcache derives them from this file.
 */
export default defineConfig({
  // For editors and `npm run config-schema` readers; walcache itself ignores it.
  $schema: '../../packages/config/walcache.config.schema.json',
  resources: {
    article: {
      table: 'articles',
      by: 'id',
      route: '/v1/articles/{id}',
      columns: { id: 'id', title: 'title', body: 'body', published: 'published', updatedAt: 'updated_at' },
      embed: {
        author: { one: 'users', columns: ['id', 'name'] },
        tags: { many: 'tags', through: 'article_tags', pluck: 'name', order: ['name'] },
        commentCount: { count: 'comments' },
      },
      ttl: 3600,
      openapi: {
        name: 'ArticleDetail',
        operationId: 'getArticle',
        tag: 'articles',
        summary: 'One article, with its author, tag names and comment count',
      },
    },
    articles: {
      table: 'articles',
      list: { filter: { published: true }, order: ['-created_at', '-id'] },
      route: '/v1/articles',
      columns: ['id', 'title'],
      embed: {
        author: { one: 'users', columns: ['id', 'name'] },
        tags: { many: 'tags', through: 'article_tags', pluck: 'name', order: ['name'] },
        commentCount: { count: 'comments' },
      },
      ttl: 600,
      openapi: {
        name: 'ArticleList',
        operationId: 'listArticles',
        tag: 'articles',
        summary: 'Published articles, newest first, one page at a time',
      },
    },
    comments: {
      table: 'comments',
      list: { parent: { table: 'articles', param: 'id' }, order: ['-created_at', '-id'] },
      route: '/v1/articles/{id}/comments',
      columns: { id: 'id', body: 'body', createdAt: 'created_at' },
      embed: { author: { one: 'users', columns: ['id', 'name'] } },
      ttl: 600,
      openapi: {
        name: 'CommentList',
        operationId: 'listArticleComments',
        tag: 'articles',
        summary: 'Comments of one article, newest first, one page at a time',
      },
    },
    user: {
      table: 'users',
      by: 'id',
      route: '/v1/users/{id}',
      columns: ['id', 'name', 'bio'],
      embed: { articleCount: { count: 'articles', where: { published: true } } },
      policy: 'refresh',
      ttl: 3600,
      openapi: {
        name: 'UserProfile',
        operationId: 'getUser',
        tag: 'users',
        summary: 'A user profile with the number of published articles',
      },
    },
    tags: {
      table: 'tags',
      list: { order: ['name'], paginate: false },
      route: '/v1/tags',
      columns: ['name'],
      embed: { articleCount: { count: 'articles', through: 'article_tags', where: { published: true } } },
      policy: 'refresh',
      ttl: 600,
      openapi: {
        name: 'TagList',
        operationId: 'listTags',
        tag: 'tags',
        summary: 'Every tag with its number of published articles',
      },
    },
  },
  defaults: { negativeTtl: 30 },
  openapi: {
    title: 'walcache read API — sample blog',
    description: "Read API of the sample blog, answered from a Redis cache that Postgres' WAL keeps correct.",
  },
});
