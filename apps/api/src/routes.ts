import { createRoute, type z } from '@hono/zod-openapi';
import {
  ArticleDetailSchema,
  ArticleListSchema,
  CommentListSchema,
  idPath,
  ProblemSchema,
  pageQuery,
  TagListSchema,
  UserProfileSchema,
} from './schemas.ts';

/**
 * The `/v1` routes as OpenAPI route definitions: path, parameters, every answer with its
 * headers. app.ts binds each to its resource; /openapi.json is generated from these.
 */

const cachingHeaders = {
  ETag: {
    description:
      'Strong validator of the body bytes (weak, `W/`, when the body is gzip-compressed). Send it back in `If-None-Match`.',
    schema: { type: 'string' as const, example: '"Yc3m0o2c8vR4l9yq1Dk0cA"' },
  },
  'X-Cache': {
    description:
      'HIT: answered from Redis. MISS: loaded from Postgres and cached. BYPASS: Redis unavailable, answered from Postgres.',
    schema: { type: 'string' as const, enum: ['HIT', 'MISS', 'BYPASS'] },
  },
  'Cache-Control': {
    description: 'Store, but revalidate before every use.',
    schema: { type: 'string' as const, example: 'public, no-cache' },
  },
  'X-Request-Id': {
    description:
      'The request id (yours, if you sent a valid X-Request-Id; else generated); also in the logs.',
    schema: { type: 'string' as const },
  },
};

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  headers: cachingHeaders,
  content: { 'application/json': { schema } },
});

const problemAnswer = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

const commonAnswers = {
  304: {
    description: '`If-None-Match` matched the current ETag: use your copy.',
    headers: cachingHeaders,
  },
  400: problemAnswer('A parameter is invalid (`type` …/invalid-parameter; `errors` names each one).'),
  503: problemAnswer(
    'A cache miss could not be answered: the database is down or slow (…/unavailable) or saturated (…/overloaded). Retry after `Retry-After`.',
  ),
} as const;

export const articleDetailRoute = createRoute({
  method: 'get',
  path: '/v1/articles/{id}',
  operationId: 'getArticle',
  tags: ['articles'],
  summary: 'One article, with its author, tag names and comment count',
  request: { params: idPath },
  responses: {
    200: json(ArticleDetailSchema, 'The article (published or not).'),
    ...commonAnswers,
    404: problemAnswer('No article has this id (…/not-found).'),
  },
});

export const articleListRoute = createRoute({
  method: 'get',
  path: '/v1/articles',
  operationId: 'listArticles',
  tags: ['articles'],
  summary: 'Published articles, newest first, one page at a time',
  request: { query: pageQuery },
  responses: {
    200: json(ArticleListSchema, 'A page of articles.'),
    ...commonAnswers,
  },
});

export const articleCommentsRoute = createRoute({
  method: 'get',
  path: '/v1/articles/{id}/comments',
  operationId: 'listArticleComments',
  tags: ['articles'],
  summary: 'Comments of one article, newest first, one page at a time',
  request: { params: idPath, query: pageQuery },
  responses: {
    200: json(CommentListSchema, 'A page of comments.'),
    ...commonAnswers,
    404: problemAnswer('No article has this id (…/not-found).'),
  },
});

export const userProfileRoute = createRoute({
  method: 'get',
  path: '/v1/users/{id}',
  operationId: 'getUser',
  tags: ['users'],
  summary: 'A user profile with the number of published articles',
  request: { params: idPath },
  responses: {
    200: json(UserProfileSchema, 'The user.'),
    ...commonAnswers,
    404: problemAnswer('No user has this id (…/not-found).'),
  },
});

export const tagListRoute = createRoute({
  method: 'get',
  path: '/v1/tags',
  operationId: 'listTags',
  tags: ['tags'],
  summary: 'Every tag with its number of published articles',
  responses: {
    200: json(TagListSchema, 'All tags, by name.'),
    304: commonAnswers[304],
    503: commonAnswers[503],
  },
});
