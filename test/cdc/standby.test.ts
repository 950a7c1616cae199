import type { Env } from '@walcache/config';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { articleDetail } from '../support/blog.ts';
import { adminPool, type CacheFixture, cacheFixture } from '../support/cdc-harness.ts';
import { type CdcProcess, spawnCdc } from '../support/cdc-process.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// Two CDC processes for one slot: Postgres lets one stream, the other waits as a standby and
// takes over when the first dies. Graceful shutdown (SIGTERM) exits cleanly.

let servers: Servers;
let env: Env;
let sql: pg.Pool;
let fixture: CacheFixture;
let invalidator: Awaited<ReturnType<typeof startInvalidator>>;
const children: CdcProcess[] = [];

beforeAll(async () => {
  servers = await startServers();
  env = testEnv(servers);
  sql = adminPool(servers.pg.url);
  fixture = cacheFixture(env);
  invalidator = await startInvalidator(env, silentLogger());
});

afterAll(async () => {
  for (const child of children) await child.kill('SIGKILL');
  await invalidator?.close();
  await fixture?.close();
  await sql?.end();
  await servers?.stop();
});

const cached = async (id: string) =>
  fixture.redis.getBuffer(fixture.cache.keys.value(articleDetail.key({ id })));

/** Caches article `id`, changes it with a plain client, waits for the value to be invalidated. */
async function changeIsInvalidated(id: string, title: string): Promise<void> {
  await fixture.cache.get(articleDetail, { id });
  expect(await cached(id)).not.toBeNull();
  await sql.query('update articles set title = $1 where id = $2', [title, id]);
  await waitFor(async () => (await cached(id)) === null, {
    timeoutMs: 30_000,
    what: `article ${id} to be invalidated`,
  });
}

// Why 150 s: two CDC processes to reach their state (30 s each) and two invalidations
// (30 s each): the test timeout covers its own waits, so a slow machine fails on the wait
// that names what it missed.
describe('standby takeover', { timeout: 150_000 }, () => {
  it('kill the active CDC: the standby takes the slot and invalidates the next change', async () => {
    const a = await spawnCdc(env);
    children.push(a);
    await a.waitForState('streaming');
    const b = await spawnCdc(env);
    children.push(b);
    await b.waitForState('standby');
    expect(await b.metrics()).toMatch(/^walcache_cdc_standby\{[^}]*\} 1$/m);
    await changeIsInvalidated('21', 'while a is active');

    await a.kill('SIGKILL');
    await changeIsInvalidated('22', 'after a was killed');
    expect((await b.health())?.state).toBe('streaming');
  });

  it('SIGTERM stops the active CDC cleanly (exit 0 in its log) and the slot is released', async () => {
    const active = children.find((c) => !c.exited);
    if (!active) throw new Error('no running CDC');
    await active.kill('SIGTERM');
    expect(active.output()).toMatch(/"msg":"stopped"/);
    await waitFor(
      async () =>
        (
          await sql.query<{ active: boolean }>(
            'select active from pg_replication_slots where slot_name = $1',
            [env.SLOT_NAME],
          )
        ).rows[0]?.active === false,
      { what: 'the slot to be released' },
    );
  });
});
