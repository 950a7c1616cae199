import type { Env } from '@walcache/config';
import { keyspace } from '@walcache/core';
import { createLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { articleDetail } from '../support/blog.ts';
import { adminPool, type CacheFixture, cacheFixture } from '../support/cdc-harness.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// A lost replication slot means changes may have been missed. The CDC must recreate the slot,
// flush the whole cache namespace before it streams again, and say so loudly (log + metric).

let servers: Servers;
let env: Env;
let sql: pg.Pool;
let fixture: CacheFixture;
let invalidator: Awaited<ReturnType<typeof startInvalidator>>;
let cdc: RunningCdc | undefined;
let logs: { level: number; msg: string; reason?: string }[] = [];

beforeAll(async () => {
  servers = await startServers();
  env = testEnv(servers);
  sql = adminPool(servers.pg.url);
  fixture = cacheFixture(env);
  invalidator = await startInvalidator(env, createLogger('invalidator', { level: 'silent' }));
});

afterEach(async () => {
  await cdc?.close();
  cdc = undefined;
});

afterAll(async () => {
  await invalidator?.close();
  await fixture?.close();
  await sql?.end();
  await servers?.stop();
});

async function start(): Promise<RunningCdc> {
  logs = [];
  const logger = createLogger('cdc', {
    level: 'info',
    destination: {
      write: (line: string) => {
        logs.push(JSON.parse(line) as { level: number; msg: string; reason?: string });
      },
    },
  });
  const running = await startCdc(env, logger, { heartbeatIntervalMs: 500 });
  await waitFor(() => running.stream.state === 'streaming', { timeoutMs: 30_000, what: 'the CDC to stream' });
  return running;
}

const cachedArticle = async (id: string) =>
  fixture.redis.getBuffer(fixture.cache.keys.value(articleDetail.key({ id })));

async function metric(running: RunningCdc, name: string, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${running.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** A value cached while the slot is gone: the change to its row is lost with the slot. */
async function staleWhileSlotIsGone(id: string, drop: () => Promise<void>): Promise<void> {
  await fixture.cache.get(articleDetail, { id });
  expect(await cachedArticle(id)).not.toBeNull();
  await drop();
  await sql.query("update articles set title = 'changed while the slot was gone' where id = $1", [id]);
  expect(await cachedArticle(id)).not.toBeNull(); // nobody streams: the value is stale now
}

// Why 100 s: a test may start the CDC twice (up to 30 s each to stream) and wait up to 10 s
// each for the slot to be lost and for an invalidation: the test timeout covers its own waits,
// so a slow machine fails on the wait that named what it missed.
describe('slot loss', { timeout: 100_000 }, () => {
  it('first start creates the slot and flushes; a restart with the slot in place does not', async () => {
    cdc = await start();
    expect(await metric(cdc, 'walcache_cdc_slot_recreations_total', 'created')).toBe(1);
    await cdc.close();
    await fixture.cache.get(articleDetail, { id: '1' });
    cdc = await start();
    expect(await cachedArticle('1')).not.toBeNull();
    expect(logs.some((l) => /flush/.test(l.msg))).toBe(false);
  });

  it('a slot dropped while the CDC was stopped: recreated, cache flushed, error logged, metric bumped', async () => {
    cdc = await start();
    await cdc.close();
    await staleWhileSlotIsGone('2', async () => {
      await sql.query('select pg_drop_replication_slot($1)', [env.SLOT_NAME]);
    });
    cdc = await start();
    // Flushed before streaming: the stale value is gone at once.
    expect(await cachedArticle('2')).toBeNull();
    expect(await metric(cdc, 'walcache_cdc_slot_recreations_total', 'dropped')).toBe(1);
    expect(await metric(cdc, 'walcache_cdc_cache_flushes_total', 'dropped')).toBe(1);
    expect(logs.some((l) => l.level >= 50 && /slot was lost/.test(l.msg))).toBe(true);
    // And it streams: a new change is invalidated.
    await fixture.cache.get(articleDetail, { id: '2' });
    await sql.query("update articles set title = 'after recreation' where id = 2");
    await waitFor(async () => (await cachedArticle('2')) === null, {
      what: 'the new change to be invalidated',
    });
  });

  it('a slot invalidated by max_slot_wal_keep_size: dropped, recreated, cache flushed', async () => {
    cdc = await start();
    await cdc.close();
    await staleWhileSlotIsGone('3', async () => {
      await sql.query("alter system set max_slot_wal_keep_size = '1MB'");
      await sql.query('select pg_reload_conf()');
      // Each switch starts a new 16 MB segment; a checkpoint then removes what the slot needs.
      for (let i = 0; i < 4; i++) {
        await sql.query('update articles set body = body where id = 4');
        await sql.query('select pg_switch_wal()');
      }
      await sql.query('checkpoint');
      await waitFor(
        async () =>
          (
            await sql.query<{ wal_status: string }>(
              'select wal_status from pg_replication_slots where slot_name = $1',
              [env.SLOT_NAME],
            )
          ).rows[0]?.wal_status === 'lost',
        { what: 'the slot to be invalidated' },
      );
    });
    await sql.query('alter system reset max_slot_wal_keep_size');
    await sql.query('select pg_reload_conf()');
    cdc = await start();
    expect(await cachedArticle('3')).toBeNull();
    expect(await metric(cdc, 'walcache_cdc_slot_recreations_total', 'invalidated')).toBe(1);
    expect(logs.some((l) => l.level >= 50 && /invalidated/.test(l.msg))).toBe(true);
  });

  it('a crash between creating the slot and finishing the flush flushes on the next start', async () => {
    cdc = await start();
    await cdc.close();
    // What a crash right after slot creation leaves behind: a slot, and no in-sync marker.
    await fixture.redis.del(keyspace(env.CACHE_PREFIX).inSync(env.SLOT_NAME));
    await fixture.cache.get(articleDetail, { id: '5' });
    cdc = await start();
    expect(await cachedArticle('5')).toBeNull();
    expect(await metric(cdc, 'walcache_cdc_cache_flushes_total', 'unverified')).toBe(1);
  });
});
