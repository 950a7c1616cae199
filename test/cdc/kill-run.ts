/**
 * The CDC kill suite, run unchanged on whatever Redis a world gives (one server:
 * test/cdc/kill.test.ts; cache and queue on a Redis Cluster: test/cluster/kill.test.ts).
 *
 * The CDC as a real child process, SIGKILLed at random moments of a write storm from another
 * client and restarted, again and again. Whatever it had received but not stored is replayed
 * from the slot; nothing acknowledged may be missing from the queue. At the end every cached
 * value of every resource must be gone or fresh, and no restart may have flushed the cache.
 */
import { type Env, redisTarget } from '@walcache/config';
import { createRedisClient, lsnToBigInt, mastersOf } from '@walcache/core';
import { waitFor } from '@walcache/testkit';
import type { Queue } from 'bullmq';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import {
  adminPool,
  assertNoStaleValues,
  type CacheFixture,
  CacheReaders,
  cacheFixture,
  rng,
  StormWriter,
  testQueue,
  waitCaughtUp,
  warmCache,
} from '../support/cdc-harness.ts';
import { type CdcProcess, spawnCdc } from '../support/cdc-process.ts';
import { appLogger } from '../support/stack.ts';

/** What the suite runs on: Postgres with the blog seeded, and the Redis URLs, all in `env`. */
export interface KillWorld {
  env: Env;
  stop(): Promise<void>;
}

export interface KillSuite {
  /** Named in the test's title: `one Redis`, `a Redis Cluster`. */
  where: string;
  cycles: number;
  start(): Promise<KillWorld>;
  /** The whole storm's deadline; 300 s covers 10 cycles on the shared 2-core machine. */
  timeoutMs?: number;
}

const SEED = Number(process.env.CDC_KILL_SEED ?? Date.now() % 100_000);
// Why 60 s: each restart compiles the CDC's TypeScript and bootstraps while the storm, the
// readers and the invalidator share the machine; on the shared 2-core machine under load that
// took over 30 s. The test timeout (300 s) covers 11 starts in a healthy run's ~130 s.
const STREAMING_WITHIN_MS = 60_000;

/** Every fourth cycle (the second of each four) kills the CDC without waiting for it to stream. */
const isEarly = (cycle: number) => cycle % 4 === 1;

export function describeCdcKill({ where, cycles, start, timeoutMs = 300_000 }: KillSuite): void {
  let world: KillWorld;
  let env: Env;
  let admin: pg.Pool;
  let queue: Queue;
  let fixture: CacheFixture;
  let invalidator: Awaited<ReturnType<typeof startInvalidator>>;
  const children: CdcProcess[] = [];

  beforeAll(async () => {
    world = await start();
    env = world.env;
    admin = adminPool(env.DATABASE_URL);
    queue = testQueue(env);
    fixture = cacheFixture(env);
    invalidator = await startInvalidator(env, appLogger('invalidator'));
  });

  afterAll(async () => {
    for (const child of children) await child.kill('SIGKILL');
    await invalidator?.close();
    await fixture?.close();
    await queue?.close();
    await admin?.end();
    await world?.stop();
  });

  // Kills that must find the CDC streaming: every cycle that waits for it (7 of 10).
  const streamingCycles = Array.from({ length: cycles }, (_, c) => c).filter((c) => !isEarly(c)).length;

  describe(`SIGKILL of the CDC during a write storm on ${where}`, () => {
    it(
      `loses no invalidation across ${cycles} kills and restarts (seed ${SEED})`,
      async () => {
        const random = rng(SEED);
        // The queue's Redis refuses writes while the CDC is killed: on a cluster, every master
        // (CLIENT PAUSE is per server, and a keyless command sent to the Cluster object reaches
        // one node only). The CDC's store (job and WAIT) goes to the queue's master.
        const pauser = createRedisClient(redisTarget(env.QUEUE_REDIS_URL, env), {});
        await pauser.ping(); // a cluster client knows its masters once its slot map is loaded
        const masters = mastersOf(pauser);
        const pauseWrites = () =>
          Promise.all(masters.map((node) => node.call('CLIENT', 'PAUSE', '20000', 'WRITE')));
        const unpause = () => Promise.all(masters.map((node) => node.call('CLIENT', 'UNPAUSE')));
        const spawnOne = async () => {
          const child = await spawnCdc(env, { CDC_HEARTBEAT_INTERVAL_MS: '500' });
          children.push(child);
          return child;
        };
        // First start creates the slot (and flushes the empty namespace) before the storm.
        const first = await spawnOne();
        await first.waitForState('streaming', STREAMING_WITHIN_MS);
        await warmCache(fixture);
        const writer = new StormWriter(env.DATABASE_URL, SEED, 10);
        const readers = new CacheReaders(fixture, SEED + 1);
        let stormed = false;
        let current: CdcProcess = first;
        let killedWhileStreaming = 0;
        try {
          for (let cycle = 0; cycle < cycles; cycle++) {
            // A random moment: after a random number of further commits. Early cycles kill the
            // process without waiting for it to stream (during start-up or bootstrap).
            const early = isEarly(cycle);
            const target = writer.commits + 5 + Math.floor(random() * (early ? 10 : 60));
            if (!early) await current.waitForState('streaming', STREAMING_WITHIN_MS);
            await waitFor(() => writer.commits >= target, {
              timeoutMs: 30_000,
              what: `${target} commits by the storm`,
            });
            if (!early) {
              // Force the dangerous moment: Redis refuses writes (CLIENT PAUSE WRITE), so the
              // CDC's enqueue hangs while it keeps receiving commits. Killed now, it holds
              // commits it has received but not stored; none may have been acknowledged.
              await pauseWrites();
              const c0 = writer.commits;
              await waitFor(() => writer.commits >= c0 + 5, {
                timeoutMs: 30_000,
                what: 'commits during the pause',
              });
              const { rows } = await admin.query<{ lsn: string }>(
                'select pg_current_wal_insert_lsn()::text as lsn',
              );
              const written = lsnToBigInt(rows[0]?.lsn ?? '0/0');
              await waitFor(
                async () => {
                  const h = await current.health();
                  return h?.lastReceivedLsn != null && lsnToBigInt(h.lastReceivedLsn) >= written;
                },
                { timeoutMs: 30_000, what: 'the CDC to receive the commits made during the pause' },
              );
            }
            if ((await current.health())?.state === 'streaming') killedWhileStreaming += 1;
            await current.kill('SIGKILL');
            if (!early) await unpause();
            current = await spawnOne();
          }
          await current.waitForState('streaming', STREAMING_WITHIN_MS);
          const target = writer.commits + 30;
          await waitFor(() => writer.commits >= target, {
            timeoutMs: 30_000,
            what: 'a last burst of commits',
          });
          stormed = true;
        } finally {
          await unpause();
          pauser.disconnect();
          await writer.stop();
          if (!stormed) await readers.stop();
        }
        // The readers go on while the storm's last jobs run: fills racing its final
        // invalidations are checked too, and the check has entities to judge however the storm
        // ran (stopped with the writer, a loaded run once left no article cached).
        try {
          await waitCaughtUp(admin, env, queue);
        } finally {
          await readers.stop();
        }
        const { checked, byResource, stale } = await assertNoStaleValues(fixture);

        expect(stale).toEqual([]);
        // Not vacuous: the storm committed, readers cached values, most kills hit a streaming CDC.
        expect(writer.commits).toBeGreaterThan(cycles * 10);
        // A restart that finds its slot resumes from it: only the very first start (which created
        // the slot) flushed the cache. A CDC that flushed on every restart would pass the stale
        // check trivially; this catches it.
        const flushes = children.flatMap((c) =>
          c
            .output()
            .split('\n')
            .filter((l) => l.includes('cache namespace flushed'))
            .map((l) => `pid ${c.pid}: ${l}`),
        );
        expect(flushes, flushes.join('\n')).toHaveLength(1);
        expect(flushes[0]).toContain(`pid ${first.pid}:`);
        const summary = `${JSON.stringify(byResource)}; reads ${readers.reads}, read failures ${readers.failures}`;
        // Every cached value was checked, found by SCAN (of every master): list pages and the tag
        // list whenever the readers had them cached (the storm's last commits invalidate most of
        // them); the entities always.
        for (const name of ['article', 'comments', 'user'])
          expect(byResource[name] ?? 0, summary).toBeGreaterThan(0);
        expect(checked, summary).toBeGreaterThan(20);
        expect(killedWhileStreaming).toBeGreaterThanOrEqual(streamingCycles);
        expect(readers.reads).toBeGreaterThan(100);
      },
      timeoutMs,
    );
  });
}
