import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** pg returns bigint as a string; ids stay strings end to end so no precision is lost. */
type BigId = ColumnType<string, string | number | bigint, string | number | bigint>;

export interface UsersTable {
  id: Generated<string>;
  name: string;
  bio: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ArticlesTable {
  id: Generated<string>;
  author_id: BigId;
  title: string;
  body: string;
  published: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TagsTable {
  id: Generated<string>;
  name: string;
}

export interface ArticleTagsTable {
  article_id: BigId;
  tag_id: BigId;
}

export interface CommentsTable {
  id: Generated<string>;
  article_id: BigId;
  author_id: BigId;
  body: string;
  created_at: Timestamp;
}

export interface Database {
  users: UsersTable;
  articles: ArticlesTable;
  tags: TagsTable;
  article_tags: ArticleTagsTable;
  comments: CommentsTable;
}

export type TableName = keyof Database;
