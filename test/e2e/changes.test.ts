import { waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiveSystem, type Stack, startLiveSystem } from '../support/stack.ts';

let stack: Stack;
let writer: pg.Client;
let live: LiveSystem;

beforeAll(async () => {
  // As the documented least-privilege role (docs/operations.md): what production runs.
  live = await startLiveSystem({}, {}, { leastPrivilege: true });
  ({ stack, writer } = live);
});

afterAll(async () => {
  await live?.stop();
});

interface Article {
  title: string;
  author: { name: string };
  commentCount: number;
}

async function read(path: string): Promise<{ status: number; cache: string | null; body: unknown }> {
  const res = await fetch(`${stack.api.url}${path}`);
  return { status: res.status, cache: res.headers.get('x-cache'), body: await res.json() };
}

/** Reads until cached (a HIT), so the test then proves an invalidation, not a cold miss. */
async function cached(path: string) {
  await read(path);
  const second = await read(path);
  expect(second.cache).toBe('HIT');
  return second;
}

async function jobCount(): Promise<number> {
  const counts = await stack.cdc.queue.getJobCounts('completed', 'waiting', 'active', 'delayed', 'failed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('changes behind the article resource invalidate it', () => {
  it('UPDATE of the article row', async () => {
    await cached('/v1/articles/20');
    await writer.query("update articles set title = 'Updated' where id = 20");
    await waitFor(async () => ((await read('/v1/articles/20')).body as Article).title === 'Updated', {
      what: 'the updated title',
    });
  });

  it('UPDATE of a row it embeds (the author is renamed)', async () => {
    const { body } = await cached('/v1/articles/21');
    const authorId = (body as { author: { id: string } }).author.id;
    await writer.query("update users set name = 'Renamed Author' where id = $1", [authorId]);
    await waitFor(
      async () => ((await read('/v1/articles/21')).body as Article).author.name === 'Renamed Author',
      {
        what: 'the new author name',
      },
    );
  });

  it('INSERT of a comment changes the comment count', async () => {
    const { body } = await cached('/v1/articles/22');
    const before = (body as Article).commentCount;
    await writer.query("insert into comments (article_id, author_id, body) values (22, 1, 'new comment')");
    await waitFor(async () => ((await read('/v1/articles/22')).body as Article).commentCount === before + 1, {
      what: 'the new comment count',
    });
  });

  it('INSERT ends a cached "not found"', async () => {
    const { rows } = await writer.query<{ next: string }>(
      "select nextval(pg_get_serial_sequence('articles', 'id'))::text as next",
    );
    const id = Number(rows[0]!.next) + 1;
    expect((await read(`/v1/articles/${id}`)).status).toBe(404);
    expect((await read(`/v1/articles/${id}`)).cache).toBe('HIT');
    await writer.query(
      "insert into articles (id, author_id, title, body) overriding system value values ($1, 1, 'Brand new', 'body')",
      [id],
    );
    await waitFor(async () => (await read(`/v1/articles/${id}`)).status === 200, {
      what: 'the inserted article',
    });
  });

  it('DELETE of the article row', async () => {
    await cached('/v1/articles/23');
    await writer.query('delete from articles where id = 23');
    await waitFor(async () => (await read('/v1/articles/23')).status === 404, {
      what: 'a 404 after the delete',
    });
  });

  it('a change in a table no resource depends on enqueues nothing', async () => {
    await writer.query(
      'create table audit_log (id bigint generated always as identity primary key, note text)',
    );
    // In the publication (shared with another consumer, say): Postgres then streams its
    // changes, and only walcache's own filter stands between them and the queue.
    await writer.query(`alter publication ${stack.env.PUBLICATION_NAME} add table audit_log`);
    const { rows: published } = await writer.query(
      "select 1 from pg_publication_tables where pubname = $1 and tablename = 'audit_log'",
      [stack.env.PUBLICATION_NAME],
    );
    expect(published).toHaveLength(1);
    // Drain: wait until every job so far is done, then count.
    await waitFor(async () => (await stack.cdc.queue.getJobCounts('waiting', 'active')).waiting === 0);
    const before = await jobCount();
    await writer.query("insert into audit_log (note) values ('not cached anywhere')");
    await writer.query("update audit_log set note = 'still not cached'");
    // A marker change in a tracked table, committed after the audit_log writes: once it is
    // invalidated, the CDC has read past them.
    await cached('/v1/articles/24');
    await writer.query("update articles set title = 'Marker' where id = 24");
    await waitFor(async () => ((await read('/v1/articles/24')).body as Article).title === 'Marker', {
      what: 'the marker',
    });
    expect(await jobCount()).toBe(before + 1);
    const jobs = await stack.cdc.queue.getJobs(['completed', 'waiting', 'active']);
    expect(jobs.flatMap((j) => j.data.tags).filter((t) => t.includes('audit_log'))).toEqual([]);
  });
});
