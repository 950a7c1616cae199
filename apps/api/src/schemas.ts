import { z } from '@hono/zod-openapi';
import { problemTypes } from './problem.ts';

/**
 * The HTTP contract of the read API (DESIGN.md, "HTTP"), in zod: the OpenAPI document is
 * generated from these schemas, and the contract tests validate every answer against that
 * document. The resources in packages/resources produce the bodies; these schemas describe
 * them. Ids are Postgres bigints, sent as decimal strings so no client rounds them.
 */

// ───────────────────────── parameters ─────────────────────────

const MAX_BIGINT = 9223372036854775807n;
const ID_SHAPE = /^[0-9]{1,19}$/;
const ID_MESSAGE = 'must be an integer between 1 and 9223372036854775807';

/**
 * A bigint id in a path. Checked here before the resource's own schema (which canonicalises
 * it, "007" → "7", for the cache key) so that no input, however odd, reaches a parser that
 * could throw: the refinement only calls BigInt on text the pattern already accepted.
 */
export const idPathParam = z
  .string()
  .min(1, 'must not be empty')
  .regex(ID_SHAPE, ID_MESSAGE)
  .refine((v) => !ID_SHAPE.test(v) || (BigInt(v) >= 1n && BigInt(v) <= MAX_BIGINT), ID_MESSAGE)
  .openapi({
    param: { name: 'id', in: 'path' },
    description: 'A positive bigint id as decimal digits (1 … 9223372036854775807).',
    example: '42',
  });

export const limitQueryParam = z
  .string()
  .regex(/^[0-9]{1,3}$/, 'must be an integer between 1 and 100')
  .refine((v) => !/^[0-9]{1,3}$/.test(v) || (Number(v) >= 1 && Number(v) <= 100), {
    message: 'must be an integer between 1 and 100',
  })
  .optional()
  .openapi({
    param: { name: 'limit', in: 'query' },
    description: 'Page size, 1–100. Default 20.',
    type: 'integer',
    minimum: 1,
    maximum: 100,
    default: 20,
  });

export const cursorQueryParam = z
  .string()
  .min(1, 'is not a valid cursor')
  .max(128, 'is not a valid cursor')
  .regex(/^[A-Za-z0-9_-]+$/, 'is not a valid cursor')
  .optional()
  .openapi({
    param: { name: 'cursor', in: 'query' },
    description:
      'Opaque position returned as `nextCursor` by the previous page. Omit it for the first page. ' +
      'A walk from the first page to `nextCursor: null` sees every item that existed when it started exactly once.',
    example: 'MjAyNS0wMi0wMyAwMDowMDowMC4wMDAwMDArMDB8NDIwMA',
  });

export const idPath = z.object({ id: idPathParam });
export const pageQuery = z.object({ limit: limitQueryParam, cursor: cursorQueryParam });

// ───────────────────────── bodies ─────────────────────────

const bigintId = z
  .string()
  .regex(/^[0-9]+$/)
  .openapi({ description: 'bigint id as a decimal string', example: '42' });

export const AuthorSchema = z
  .object({ id: bigintId, name: z.string().openapi({ example: 'Grace Hopper 2' }) })
  .openapi('Author');

export const ArticleDetailSchema = z
  .object({
    id: bigintId,
    title: z.string(),
    body: z.string(),
    published: z.boolean(),
    author: AuthorSchema,
    tags: z.array(z.string()).openapi({ description: 'tag names, sorted', example: ['postgres', 'wal'] }),
    commentCount: z.number().int().min(0),
    updatedAt: z.iso.datetime().openapi({ example: '2025-02-01T00:42:00.000Z' }),
  })
  .openapi('ArticleDetail');

export const ArticleListItemSchema = z
  .object({
    id: bigintId,
    title: z.string(),
    author: AuthorSchema,
    tags: z.array(z.string()),
    commentCount: z.number().int().min(0),
  })
  .openapi('ArticleListItem');

const nextCursor = z
  .string()
  .nullable()
  .openapi({ description: 'Pass as `cursor` for the next page; `null` on the last page.' });

export const ArticleListSchema = z
  .object({ items: z.array(ArticleListItemSchema), nextCursor })
  .openapi('ArticleList', { description: 'Published articles, newest first.' });

export const CommentSchema = z
  .object({
    id: bigintId,
    body: z.string(),
    author: AuthorSchema,
    createdAt: z.iso.datetime().openapi({ example: '2025-02-01T00:43:00.000Z' }),
  })
  .openapi('Comment');

export const CommentListSchema = z
  .object({ items: z.array(CommentSchema), nextCursor })
  .openapi('CommentList', { description: 'Comments of one article, newest first.' });

export const UserProfileSchema = z
  .object({
    id: bigintId,
    name: z.string(),
    bio: z.string().nullable(),
    articleCount: z.number().int().min(0).openapi({ description: 'published articles' }),
  })
  .openapi('UserProfile');

export const TagListSchema = z
  .object({
    items: z.array(
      z
        .object({
          name: z.string(),
          articleCount: z.number().int().min(0).openapi({ description: 'published articles' }),
        })
        .openapi('TagCount'),
    ),
  })
  .openapi('TagList', { description: 'Every tag, by name.' });

export const ProblemSchema = z
  .object({
    type: z.enum(Object.values(problemTypes) as [string, ...string[]]).openapi({
      description: 'Stable URI naming the kind of problem: switch on this, never on `title` or `detail`.',
    }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().openapi({ description: 'the request path' }),
    errors: z
      .array(
        z.object({
          parameter: z.string().openapi({ example: 'id' }),
          in: z.enum(['path', 'query']),
          message: z.string(),
        }),
      )
      .optional()
      .openapi({ description: '400 only: one entry per invalid parameter' }),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details (application/problem+json).' });

export type ProblemBody = z.infer<typeof ProblemSchema>;
