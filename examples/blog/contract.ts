import { z } from 'zod';

/**
 * The blog's HTTP contract as DESIGN.md states it (field names, nesting, types), written by
 * hand: the answers walcache derives from the blog config must keep exactly these shapes.
 * The contract tests check every answer against both this and the generated OpenAPI document.
 */

// ───────────────────────── bodies ─────────────────────────

const bigintId = z.string().regex(/^[0-9]+$/);

export const AuthorSchema = z.strictObject({ id: bigintId, name: z.string() });

export const ArticleDetailSchema = z.strictObject({
  id: bigintId,
  title: z.string(),
  body: z.string(),
  published: z.boolean(),
  author: AuthorSchema,
  tags: z.array(z.string()),
  commentCount: z.number().int().min(0),
  updatedAt: z.iso.datetime(),
});

export const ArticleListItemSchema = z.strictObject({
  id: bigintId,
  title: z.string(),
  author: AuthorSchema,
  tags: z.array(z.string()),
  commentCount: z.number().int().min(0),
});

const nextCursor = z.string().nullable();

export const ArticleListSchema = z.strictObject({ items: z.array(ArticleListItemSchema), nextCursor });

export const CommentSchema = z.strictObject({
  id: bigintId,
  body: z.string(),
  author: AuthorSchema,
  createdAt: z.iso.datetime(),
});

export const CommentListSchema = z.strictObject({ items: z.array(CommentSchema), nextCursor });

export const UserProfileSchema = z.strictObject({
  id: bigintId,
  name: z.string(),
  bio: z.string().nullable(),
  articleCount: z.number().int().min(0),
});

export const TagListSchema = z.strictObject({
  items: z.array(
    z.strictObject({
      name: z.string(),
      articleCount: z.number().int().min(0),
    }),
  ),
});

export type ArticleDetail = z.infer<typeof ArticleDetailSchema>;
export type ArticleListItem = z.infer<typeof ArticleListItemSchema>;
export type CommentItem = z.infer<typeof CommentSchema>;
export type UserProfile = z.infer<typeof UserProfileSchema>;
export type TagList = z.infer<typeof TagListSchema>;
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
