import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table users (
      id bigint generated always as identity primary key,
      name text not null,
      bio text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create table articles (
      id bigint generated always as identity primary key,
      author_id bigint not null references users(id) on delete cascade,
      title text not null,
      body text not null,
      published boolean not null default true,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index articles_feed_idx on articles (created_at desc, id desc) where published;
    create index articles_author_idx on articles (author_id);
    create table tags (
      id bigint generated always as identity primary key,
      name text not null unique
    );
    create table article_tags (
      article_id bigint not null references articles(id) on delete cascade,
      tag_id bigint not null references tags(id) on delete cascade,
      primary key (article_id, tag_id)
    );
    create index article_tags_tag_idx on article_tags (tag_id);
    create table comments (
      id bigint generated always as identity primary key,
      article_id bigint not null references articles(id) on delete cascade,
      author_id bigint not null references users(id) on delete cascade,
      body text not null,
      created_at timestamptz not null default now()
    );
    create index comments_article_idx on comments (article_id, created_at desc, id desc);
    create index comments_author_idx on comments (author_id);

    -- Watched columns (articles.author_id, comments.article_id, article_tags.*, tags.name) are read from
    -- the WAL with their OLD value on UPDATE/DELETE: a comment moved to another article must
    -- invalidate both articles. Only REPLICA IDENTITY FULL puts old non-key values in the WAL.
    alter table articles replica identity full;
    alter table comments replica identity full;
    alter table article_tags replica identity full;
    alter table tags replica identity full;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists comments, article_tags, tags, articles, users cascade`.execute(db);
}
