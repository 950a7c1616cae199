import type { Env } from '@walcache/config';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type { Queue } from 'bullmq';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import {
  adminPool,
  assertNoStaleValues,
  type CacheFixture,
  CacheReaders,
  cachedKeys,
  cacheFixture,
  StormWriter,
  testQueue,
  waitCaughtUp,
  warmCache,
} from '../support/cdc-harness.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// Postgres and Redis restart under a write storm. The CDC reconnects with backoff and resumes
// from the slot; while Redis is down it acknowledges nothing. Afterwards every cached value
// is gone or fresh.

const SEED = Number(process.env.CDC_RESTART_SEED ?? Date.now() % 100_000);

let servers: Servers;
let env: Env;
let admin: pg.Pool;
let queue: Queue;
let fixture: CacheFixture;
let cdc: RunningCdc;
let invalidator: Awaited<ReturnType<typeof startInvalidator>>;

beforeAll(async () => {
  // The queue's Redis runs with AOF in production: jobs survive a Redis crash.
  servers = await startServers(undefined, { appendonly: true });
  env = testEnv(servers);
  admin = adminPool(servers.pg.url);
  queue = testQueue(env);
  fixture = cacheFixture(env);
  cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 500, maxBackoffMs: 1_000 });
  invalidator = await startInvalidator(env, silentLogger());
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
});

afterAll(async () => {
  await cdc?.close();
  await invalidator?.close();
  await fixture?.close();
  await queue?.close();
  await admin?.end();
  await servers?.stop();
});

describe('restarts of Postgres and Redis during a write storm', () => {
  it(`loses no invalidation (seed ${SEED})`, async () => {
    await warmCache(fixture);
    const writer = new StormWriter(servers.pg.url, SEED);
    const readers = new CacheReaders(fixture, SEED + 1, 2);
    const commitsPast = async (n: number, what: string) => {
      const target = writer.commits + n;
      await waitFor(() => writer.commits >= target, { timeoutMs: 60_000, what });
    };
    try {
      try {
        await commitsPast(100, 'the storm to start');
        await servers.pg.restart();
        await commitsPast(100, 'commits after the Postgres restart');
        await waitFor(() => cdc.stream.state === 'streaming', {
          timeoutMs: 30_000,
          what: 'the CDC to resume',
        });
        await commitsPast(60, 'commits while streaming again');

        await servers.redis.kill();
        // Commits go on while Redis is down: the CDC cannot store them and must not ack them.
        await commitsPast(150, 'commits while Redis is down');
        await servers.redis.startServer();
        await commitsPast(20, 'commits after the Redis restart');
        // Reads that cache again while the storm goes on (after a restart the caches first check
        // the server's generation): the final check must have values filled under writes to
        // judge. Counted in values cached, not reads: the storm's last jobs delete some of them,
        // and on a loaded machine 300 reads once left 17 for the check.
        const readsBack = readers.reads;
        await waitFor(
          async () => readers.reads >= readsBack + 300 && (await cachedKeys(fixture)).length >= 80,
          {
            timeoutMs: 60_000,
            intervalMs: 250,
            what: 'reads after the Redis restart to cache 80 values',
          },
        );
      } finally {
        await writer.stop();
      }
      // The storm's last jobs delete most of what the readers cached: the readers go on while
      // those jobs run (fills racing pending invalidations, what the check is for), so the
      // final check has values to judge (a run once drained down to 1).
      await waitCaughtUp(admin, env, queue, 90_000);
    } finally {
      await readers.stop();
    }
    const { checked, stale } = await assertNoStaleValues(fixture);
    expect(stale).toEqual([]);
    expect(checked, `reads ${readers.reads}, failures ${readers.failures}`).toBeGreaterThan(20);
    expect(writer.errors).toBeGreaterThan(0); // the restart did hit the writer
  }, 150_000);
});
