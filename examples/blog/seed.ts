import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

export interface SeedSize {
  users: number;
  articles: number;
  tags: number;
  commentsPerArticle: number;
}

export const defaultSeedSize: SeedSize = { users: 500, articles: 3000, tags: 40, commentsPerArticle: 3 };

const firstNames = [
  'Ada',
  'Grace',
  'Alan',
  'Edsger',
  'Barbara',
  'Ken',
  'Dennis',
  'Margaret',
  'Linus',
  'Radia',
  'Donald',
  'Frances',
  'John',
  'Leslie',
  'Hedy',
  'Tim',
];
const lastNames = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Dijkstra',
  'Liskov',
  'Thompson',
  'Ritchie',
  'Hamilton',
  'Torvalds',
  'Perlman',
  'Knuth',
  'Allen',
  'McCarthy',
  'Lamport',
  'Lamarr',
  'Berners-Lee',
];
const topics = [
  'postgres',
  'redis',
  'caching',
  'replication',
  'wal',
  'typescript',
  'queues',
  'latency',
  'consistency',
  'indexes',
  'vacuum',
  'sharding',
  'observability',
  'testing',
  'backups',
  'locks',
  'transactions',
  'mvcc',
  'json',
  'http',
];
const verbs = [
  'Understanding',
  'Tuning',
  'Debugging',
  'Scaling',
  'Measuring',
  'Designing',
  'Operating',
  'Testing',
];

/**
 * Fills an empty sample database deterministically: the same sizes give the same rows, so
 * benchmarks and bug reports are comparable. Rows are generated inside Postgres
 * (generate_series) so a few thousand rows take well under a second.
 * Returns false (and writes nothing) when the database already has users.
 */
export async function seedBlog(db: Kysely<Database>, size: SeedSize = defaultSeedSize): Promise<boolean> {
  const existing = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (existing) return false;
  await db.transaction().execute(async (trx) => {
    await sql`
      insert into users (name, bio, created_at, updated_at)
      select (${sql.val(firstNames)}::text[])[1 + (i % ${firstNames.length})] || ' ' ||
             (${sql.val(lastNames)}::text[])[1 + ((i / ${firstNames.length}) % ${lastNames.length})] || ' ' || i,
             case when i % 3 = 0 then null else 'Writes about ' || (${sql.val(topics)}::text[])[1 + (i % ${topics.length})] end,
             timestamptz '2025-01-01' + (i || ' hours')::interval,
             timestamptz '2025-01-01' + (i || ' hours')::interval
      from generate_series(1, ${size.users}) as i`.execute(trx);
    await sql`
      insert into tags (name)
      select case when i <= ${topics.length} then (${sql.val(topics)}::text[])[i] else 'topic-' || i end
      from generate_series(1, ${size.tags}) as i`.execute(trx);
    await sql`
      insert into articles (author_id, title, body, published, created_at, updated_at)
      select 1 + ((i * 7919) % ${size.users}),
             (${sql.val(verbs)}::text[])[1 + (i % ${verbs.length})] || ' ' ||
               (${sql.val(topics)}::text[])[1 + ((i * 31) % ${topics.length})] || ', part ' || i,
             repeat('A deterministic paragraph about ' || (${sql.val(topics)}::text[])[1 + (i % ${topics.length})] || '. ', 1 + i % 12),
             i % 10 <> 0,
             timestamptz '2025-02-01' + (i || ' minutes')::interval,
             timestamptz '2025-02-01' + (i || ' minutes')::interval
      from generate_series(1, ${size.articles}) as i`.execute(trx);
    await sql`
      insert into article_tags (article_id, tag_id)
      select distinct a.id, 1 + ((a.id * k * 13) % ${size.tags})
      from articles a, generate_series(1, 2) as k`.execute(trx);
    await sql`
      insert into comments (article_id, author_id, body, created_at)
      select a.id, 1 + ((a.id * 17 + k) % ${size.users}),
             'Comment ' || k || ' on article ' || a.id,
             a.created_at + (k || ' minutes')::interval
      from articles a, generate_series(1, ${size.commentsPerArticle}) as k`.execute(trx);
  });
  return true;
}
