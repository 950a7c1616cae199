/**
 * An invalidator that dies holding a job (SIGKILL, OOM, a lost node) leaves that job active
 * under its lock, and the keys it was to delete stay cached and stale until another worker's
 * stall check hands the job out again. With BullMQ's default locks that is up to 90 s; the
 * invalidator's own (jobLocks) bound it to the lock plus two checks, 20 s.
 *
 * The dead worker is forced: a BullMQ worker with the invalidator's locks takes the job and
 * is closed by force mid-job (its lock is no longer renewed, as when its process is gone).
 */
import { decodeEntry, QUEUE_PREFIX, ReadThroughCache } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { jobLocks, startInvalidator } from '../../apps/invalidator/src/main.ts';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

let servers: Servers;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 5, tags: 2, commentsPerArticle: 1 });
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await servers?.stop();
});

it('a job whose worker died mid-job runs again on another worker, within its lock and two stall checks', async () => {
  const env = testEnv(servers);
  const redis = new Redis(env.REDIS_URL);
  const db = createDb(createPool({ connectionString: env.DATABASE_URL, max: 2 }));
  const writer = new pg.Client({ connectionString: env.DATABASE_URL });
  await writer.connect();
  closers.push(
    () => redis.disconnect(),
    () => db.destroy(),
    () => writer.end(),
  );
  const cache = new ReadThroughCache({ redis, db, prefix: env.CACHE_PREFIX });
  const cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 500 });
  closers.push(() => cdc.close());
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });

  const doomedRedis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null });
  closers.push(() => doomedRedis.disconnect());
  // The doomed worker: takes the first job that comes and never finishes it.
  let taken = false;
  const doomed = new Worker(
    env.QUEUE_NAME,
    async () => {
      taken = true;
      await new Promise(() => {});
    },
    { connection: doomedRedis, prefix: QUEUE_PREFIX, ...jobLocks },
  );

  const before = (JSON.parse((await cache.get(userProfile, { id: '3' })).body.toString()) as { name: string })
    .name;
  await writer.query("update users set name = 'After the crash' where id = 3");
  await waitFor(() => taken, { what: 'the doomed worker to take the job', timeoutMs: 20_000 });
  await doomed.close(true);

  const invalidator = await startInvalidator(env, silentLogger());
  closers.push(() => invalidator.close());
  // Deleted, or refreshed: either way no longer the stale name.
  const cachedName = async () => {
    const raw = await redis.getBuffer(cache.keys.value('user:3'));
    return raw ? (JSON.parse(decodeEntry(raw).body.toString()) as { name: string }).name : null;
  };
  // The 20 s the locks promise (docs/cache.md), and slack for a loaded machine; BullMQ's
  // defaults take up to 90 s and fail here.
  await waitFor(async () => (await cachedName()) !== before, {
    what: "the stale profile to be invalidated by the dead worker's job, run again",
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  const { body } = await cache.get(userProfile, { id: '3' });
  expect((JSON.parse(body.toString()) as { name: string }).name).toBe('After the crash');
}, 90_000);
