import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArticleListSchema, CommentListSchema } from '../../../examples/blog/contract.ts';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let api: TestApi;
let writer: pg.Client;

beforeAll(async () => {
  servers = await startServers();
  api = await buildApi(servers);
  // A writer that knows nothing about walcache, on its own connection.
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  await api?.close();
  await servers?.stop();
});

/**
 * Follows nextCursor from the first page to the last. Every page request runs concurrently
 * with a writer's INSERT (both in flight at once, either may commit first), so rows appear
 * throughout the walk. Bounded: one insert per page, not a tight loop that floods the machine.
 */
async function walk(
  url: (cursor: string | undefined) => string,
  parse: (body: unknown) => { items: { id: string }[]; nextCursor: string | null },
  insert: () => Promise<string>,
  inserted: string[],
): Promise<{ ids: string[]; hits: number; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  let hits = 0;
  let pages = 0;
  for (;;) {
    const [res, id] = await Promise.all([api.app.request(url(cursor)), insert()]);
    inserted.push(id);
    expect(res.status).toBe(200);
    if (res.headers.get('x-cache') === 'HIT') hits += 1;
    pages += 1;
    const page = parse(await res.json());
    ids.push(...page.items.map((i) => i.id));
    if (!page.nextCursor) return { ids, hits, pages };
    cursor = page.nextCursor;
  }
}

/** Every row that existed at the start exactly once, in order; anything else is a row inserted since. */
function expectCompleteWalk(ids: string[], existing: string[], inserted: string[]) {
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.filter((id) => existing.includes(id))).toEqual(existing);
  const extra = ids.filter((id) => !existing.includes(id));
  expect(extra.every((id) => inserted.includes(id))).toBe(true);
}

const insertArticle = async () => {
  const { rows } = await writer.query<{ id: string }>(
    "insert into articles (author_id, title, body) values (1, 'written during the walk', 'b') returning id",
  );
  return rows[0]!.id;
};

describe('cursor pagination under concurrent inserts', () => {
  const publishedNewestFirst = async () =>
    (
      await writer.query<{ id: string }>(
        'select id from articles where published order by created_at desc, id desc',
      )
    ).rows.map((r) => r.id);

  it.each([7, 1, 100])(
    'the article list (limit %i) sees every published article exactly once',
    async (limit) => {
      const existing = await publishedNewestFirst();
      expect(existing.length).toBeGreaterThan(100);
      const inserted: string[] = [];
      const first = await walk(
        (cursor) => `/v1/articles?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`,
        (b) => ArticleListSchema.parse(b),
        insertArticle,
        inserted,
      );
      expectCompleteWalk(first.ids, existing, inserted);
    },
  );

  it('a second walk, served from the cache while inserts go on, is just as complete', async () => {
    const existing = await publishedNewestFirst();
    const url = (cursor: string | undefined) => `/v1/articles?limit=9${cursor ? `&cursor=${cursor}` : ''}`;
    const inserted: string[] = [];
    const first = await walk(url, (b) => ArticleListSchema.parse(b), insertArticle, inserted);
    expectCompleteWalk(first.ids, existing, inserted);
    const second = await walk(url, (b) => ArticleListSchema.parse(b), insertArticle, inserted);
    // No CDC runs here, so nothing invalidates: the second walk is all hits, and a cached
    // first page (older than the inserts) must still lead to a complete walk.
    expect(second.hits).toBe(second.pages);
    expectCompleteWalk(second.ids, existing, inserted);
  });

  it('the comments of an article: every comment exactly once, newest first', async () => {
    // Article 11 gets more comments than fit on a few pages, some with equal timestamps (ties
    // are broken by id).
    await writer.query(
      `insert into comments (article_id, author_id, body, created_at)
       select 11, 1 + (i % 5), 'seeded ' || i, timestamptz '2025-03-01' + ((i / 3) || ' seconds')::interval
       from generate_series(1, 40) as i`,
    );
    const existing = (
      await writer.query<{ id: string }>(
        'select id from comments where article_id = 11 order by created_at desc, id desc',
      )
    ).rows.map((r) => r.id);
    const inserted: string[] = [];
    const result = await walk(
      (cursor) => `/v1/articles/11/comments?limit=4${cursor ? `&cursor=${cursor}` : ''}`,
      (b) => CommentListSchema.parse(b),
      async () => {
        const { rows } = await writer.query<{ id: string }>(
          "insert into comments (article_id, author_id, body) values (11, 3, 'written during the walk') returning id",
        );
        return rows[0]!.id;
      },
      inserted,
    );
    expectCompleteWalk(result.ids, existing, inserted);
  });

  it('one page per cursor value, however spelled, the first time and every time after', async () => {
    const first = ArticleListSchema.parse(await (await api.app.request('/v1/articles?limit=5')).json());
    const canonical = first.nextCursor!;
    // The same order values in JSON written another way: a different cursor text, one page.
    const values = JSON.parse(Buffer.from(canonical, 'base64url').toString('utf8')) as string[];
    const respelled = Buffer.from(` ${JSON.stringify(values, null, 1)} `, 'utf8').toString('base64url');
    expect(respelled).not.toBe(canonical);
    const etags: (string | null)[] = [];
    for (const cursor of [respelled, canonical, respelled, canonical]) {
      const res = await api.app.request(`/v1/articles?limit=5&cursor=${cursor}`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      if (etags.length > 0) expect(res.headers.get('x-cache')).toBe('HIT');
      etags.push(res.headers.get('etag'));
    }
    expect(new Set(etags).size).toBe(1);
    // Remembered valid cursors do not make a bad one pass.
    const bad = Buffer.from(JSON.stringify(['not a date', 'x']), 'utf8').toString('base64url');
    expect((await api.app.request(`/v1/articles?limit=5&cursor=${bad}`)).status).toBe(400);
  });

  it('the last page says so: nextCursor is null', async () => {
    const { rows } = await writer.query<{ n: string }>('select count(*) as n from articles where published');
    const res = await api.app.request(`/v1/articles?limit=100`);
    const page = ArticleListSchema.parse(await res.json());
    expect(Number(rows[0]!.n)).toBeGreaterThan(100);
    expect(page.nextCursor).not.toBeNull();
    const empty = await api.app.request('/v1/articles/12/comments?limit=100');
    expect(CommentListSchema.parse(await empty.json()).nextCursor).toBeNull();
  });
});
