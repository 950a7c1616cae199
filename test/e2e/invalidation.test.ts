import { waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_APPLICATION_NAME } from '../../apps/api/src/db.ts';
import { SqlActivity } from '../support/sql-activity.ts';
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

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${stack.api.url}${path}`, { headers });

describe('end to end: a write by any client invalidates the cached article', () => {
  it('MISS, then HIT without SQL, then the new title after a plain UPDATE', async () => {
    const activity = await SqlActivity.connect(live.servers.pg.url, API_APPLICATION_NAME);
    try {
      // The MISS moves both measures (the pool's checkouts, what the server saw) ...
      const beforeMiss = { queries: stack.apiQueries(), server: await activity.snapshot() };
      const first = await get('/v1/articles/7');
      expect(first.status).toBe(200);
      expect(first.headers.get('x-cache')).toBe('MISS');
      const before = (await first.json()) as { title: string };
      expect(stack.apiQueries()).toBeGreaterThan(beforeMiss.queries);
      const afterMiss = await activity.snapshot();
      expect(SqlActivity.ranSql(beforeMiss.server, afterMiss)).toBe(true);

      // ... and the HIT moves neither.
      const queriesBeforeHit = stack.apiQueries();
      const second = await get('/v1/articles/7');
      expect(second.headers.get('x-cache')).toBe('HIT');
      expect(((await second.json()) as { title: string }).title).toBe(before.title);
      expect(stack.apiQueries()).toBe(queriesBeforeHit);
      expect(SqlActivity.ranSql(afterMiss, await activity.snapshot())).toBe(false);
    } finally {
      await activity.close();
    }

    await writer.query('update articles set title = $1 where id = 7', ['A title written by psql']);
    await waitFor(
      async () =>
        ((await (await get('/v1/articles/7')).json()) as { title: string }).title ===
        'A title written by psql',
      { what: 'the API to answer the new title' },
    );
  });
});
