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
