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

interface Batch<T> {
  items: T[];
  missing: string[];
}

interface Article {
  id: string;
  title: string;
  author: { id: string; name: string };
}

async function read<T>(path: string): Promise<{ cache: string | null; body: Batch<T> }> {
  const res = await fetch(`${stack.api.url}${path}`);
  expect(res.status).toBe(200);
  return { cache: res.headers.get('x-cache'), body: (await res.json()) as Batch<T> };
}

/** Reads until every value is cached (a HIT), so what follows proves an invalidation. */
async function cached<T>(path: string): Promise<Batch<T>> {
  await read(path);
  const second = await read<T>(path);
  expect(second.cache).toBe('HIT');
  return second.body;
}

describe('end to end: writes by a plain pg client reach batch lookups', () => {
  it('an UPDATE of one value of a cached batch: the batch shows it, the others unchanged', async () => {
    const path = '/v1/articles?ids=32,30,31';
    const before = await cached<Article>(path);
    expect(before.items.map((a) => a.id)).toEqual(['32', '30', '31']);
    await writer.query("update articles set title = 'Batch title by psql' where id = 30");
    await waitFor(async () => (await read<Article>(path)).body.items[1]?.title === 'Batch title by psql', {
      what: 'the batch to show the new title',
    });
    const after = await read<Article>(path);
    expect(after.body.items.map((a) => a.id)).toEqual(['32', '30', '31']);
    expect(after.body.items[0]).toEqual(before.items[0]);
    expect(after.body.items[2]).toEqual(before.items[2]);
  });

  it("a change to an embedded row (the author's rename) reaches every article of the batch", async () => {
    const { rows } = await writer.query<{ id: string }>(
      'select id from articles where author_id = (select author_id from articles where id = 40) order by id limit 3',
    );
    const path = `/v1/articles?ids=${rows.map((r) => r.id).join(',')}`;
    const before = await cached<Article>(path);
    await writer.query("update users set name = 'Batch Renamed' where id = $1", [before.items[0]!.author.id]);
    await waitFor(
      async () => (await read<Article>(path)).body.items.every((a) => a.author.name === 'Batch Renamed'),
      { what: 'every article of the batch to show the new author name' },
    );
  });

  it('an id reported missing (and cached as missing) appears once the row is inserted', async () => {
    const path = '/v1/users?ids=1,900001';
    const before = await cached<{ id: string; name: string }>(path);
    expect(before.missing).toEqual(['900001']);
    await writer.query(
      "insert into users (id, name) overriding system value values (900001, 'Batch Newcomer')",
    );
    await waitFor(async () => (await read(path)).body.missing.length === 0, {
      what: 'the inserted user to leave `missing`',
    });
    const after = await read<{ id: string; name: string }>(path);
    expect(after.body.items.map((u) => [u.id, u.name])).toEqual([
      ['1', before.items[0]!.name],
      ['900001', 'Batch Newcomer'],
    ]);
  });
});
