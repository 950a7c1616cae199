import { join } from 'node:path';
import { keyspace } from '@walcache/core';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ExampleSystem, sqlFile, startSystem } from '../examples/support.ts';
import { testQueue } from '../support/cdc-harness.ts';

/**
 * The tags the CDC emits for a change are spelled exactly as the tags a fill registered the
 * value under. The library's loans have the primary key `(id, loaned_at)`: a fill's SQL
 * registers `row:lib.loans:509,2025-06-22 05:00:00+00` (Postgres' text of the timestamptz),
 * and the CDC once emitted `…T05:00:00.000Z` (the WAL's text parsed into a Date and printed
 * back): that row tag reached nothing, and a fill racing the commit stayed cached stale
 * (library-random.test.ts, seed 660842).
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'library');
let system: ExampleSystem;
let redis: Redis;

beforeAll(async () => {
  system = await startSystem(sqlFile(join(fixture, 'schema.sql')), join(fixture, 'walcache.config.yaml'));
  redis = new Redis(system.stack.env.REDIS_URL);
});
afterAll(async () => {
  redis?.disconnect();
  await system?.stop();
});

it('a change of a row whose key holds a timestamptz is invalidated under the row tag the cached list holds', async () => {
  const { stack, writer } = system;
  const keys = keyspace(stack.env.CACHE_PREFIX);
  const { rows } = await writer.query<{ id: string; member: string }>(
    "select id::text, member_id::text as member from lib.loans where status <> 'active' order by loaned_at desc limit 1",
  );
  const loan = rows[0]!;
  const res = await fetch(`${stack.api.url}/v1/members/${loan.member}/loans?limit=50`);
  expect(res.status).toBe(200);
  expect(((await res.json()) as { items: { id: string }[] }).items.map((i) => i.id)).toContain(loan.id);
  // The tag sets the cached list is a member of: among them its row tag for this loan.
  const valueKey = keys.value(`loans:${loan.member}:50:-`);
  const registered: string[] = [];
  for (const set of await redis.keys(`${keys.prefix}:tag:row:lib.loans:${loan.id},*`))
    if (await redis.sismember(set, valueKey)) registered.push(set.slice(`${keys.prefix}:tag:`.length));
  expect(registered).toHaveLength(1);

  const queue = testQueue(stack.env);
  try {
    const before = new Set((await queue.getCompleted()).map((j) => j.id));
    await writer.query("update lib.loans set status = 'active' where id = $1", [loan.id]);
    await waitFor(async () => (await queue.getCompleted()).some((j) => !before.has(j.id)), {
      what: 'the update’s invalidation job',
    });
    const emitted = (await queue.getCompleted()).filter((j) => !before.has(j.id)).flatMap((j) => j.data.tags);
    expect(emitted).toContain(registered[0]);
  } finally {
    await queue.close();
  }
  expect(await redis.exists(valueKey)).toBe(0);
});
