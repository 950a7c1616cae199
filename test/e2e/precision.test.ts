/**
 * Precision (issue 14): where the WAL carries the old row (REPLICA IDENTITY FULL), an UPDATE
 * that changes no column any resource reads invalidates nothing: the cached values stay, and
 * the CDC counts the update it skipped. A change of a column that is read still invalidates.
 */
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scrape, sum } from '../support/metrics.ts';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';

let servers: Servers;
let stack: Stack;
let writer: pg.Client;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 10, tags: 2, commentsPerArticle: 1 });
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  // A column no resource reads (added before the apps compile the config), and old rows in the WAL.
  await writer.query('alter table articles add column internal_note text');
  await writer.query('alter table articles replica identity full');
  stack = await startStack(servers);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
});

afterAll(async () => {
  await writer?.end();
  await stack?.stop();
  await servers?.stop();
});

const skipped = async () =>
  sum(
    await scrape(`http://127.0.0.1:${stack.cdc.metricsPort}/metrics`),
    'walcache_cdc_updates_skipped_total',
    {
      table: 'articles',
    },
  );

async function xCache(path: string): Promise<string | null> {
  const res = await fetch(`${stack.api.url}${path}`);
  await res.arrayBuffer();
  return res.headers.get('x-cache');
}

it('an UPDATE of a column no resource reads invalidates nothing; one of a read column does', async () => {
  await xCache('/v1/articles/2');
  await xCache('/v1/articles?limit=5');
  expect(await xCache('/v1/articles/2')).toBe('HIT');
  const jobsBefore = await stack.invalidator.queue.getCompletedCount();
  const before = await skipped();

  await writer.query("update articles set internal_note = 'only ops read this' where id = 2");
  await waitFor(async () => (await skipped()) > before, { what: 'the CDC to skip the update' });
  expect(await xCache('/v1/articles/2')).toBe('HIT');
  expect(await xCache('/v1/articles?limit=5')).toBe('HIT');
  expect(await stack.invalidator.queue.getCompletedCount()).toBe(jobsBefore);

  // The same statement that also moves a read column is an invalidation as before.
  await writer.query("update articles set internal_note = 'again', title = 'precise' where id = 2");
  await waitFor(
    async () => {
      const res = await fetch(`${stack.api.url}/v1/articles/2`);
      return ((await res.json()) as { title: string }).title === 'precise';
    },
    { what: 'the title change to reach the cache' },
  );
  expect(await skipped()).toBe(before + 1);
});

async function json<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.api.url}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

it('an edit of a shown column invalidates the values showing that row, not those that only hold its set', async () => {
  type Page = { items: { id: number }[]; nextCursor: string | null };
  const page1 = '/v1/articles?limit=3';
  const first = await json<Page>(page1);
  const page2 = `/v1/articles?limit=3&cursor=${first.nextCursor}`;
  const second = await json<Page>(page2);
  const id = second.items[0]!.id;
  const article = await json<{ author: { id: number } }>(`/v1/articles/${id}`);
  const author = `/v1/users/${article.author.id}`;
  const comments = `/v1/articles/${id}/comments`;
  const { articleCount } = await json<{ articleCount: number }>(author);
  for (const path of [page1, comments]) await xCache(path);
  for (const path of [page2, `/v1/articles/${id}`, page1, comments]) expect(await xCache(path)).toBe('HIT');
  const rowOnly = async () =>
    sum(
      await scrape(`http://127.0.0.1:${stack.cdc.metricsPort}/metrics`),
      'walcache_cdc_updates_row_only_total',
      { table: 'articles' },
    );
  const rowOnlyBefore = await rowOnly();

  // A title shows on the article and on page 2 only: page 1, the article's comments (they
  // depend on the article existing) and its author's article count are unchanged by it.
  await writer.query('update articles set title = $1 where id = $2', ['edited, not moved', id]);
  await waitFor(
    async () => (await json<{ title: string }>(`/v1/articles/${id}`)).title === 'edited, not moved',
    { what: 'the title change to reach the cache' },
  );
  expect(await xCache(page2)).toBe('MISS');
  expect(await xCache(page1)).toBe('HIT');
  expect(await xCache(comments)).toBe('HIT');
  expect(await rowOnly()).toBe(rowOnlyBefore + 1);

  // Unpublishing changes which articles the list and the author's count hold: those go.
  await writer.query('update articles set published = false where id = $1', [id]);
  await waitFor(async () => (await xCache(page1)) === 'MISS', { what: 'the list to be invalidated' });
  await waitFor(
    async () => (await json<{ articleCount: number }>(author)).articleCount === articleCount - 1,
    {
      what: "the author's count to follow",
    },
  );
});
