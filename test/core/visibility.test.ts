/**
 * Issue 11, item 1: a commit is in the WAL (and decoded by the CDC) before other sessions
 * can see it. Forced for real: `synchronous_standby_names` names a standby that never
 * connects, and the writer commits with `synchronous_commit = on`, so its COMMIT waits
 * while the commit record is already decoded and its job stored. An invalidation (and the
 * refresh after it) that ran in that window would re-cache the old row for good; the
 * invalidator must wait until the transaction is visible.
 */
import { countInvisibleXids, type InvalidationJob, VisibilityHorizon } from '@walcache/core';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createInvalidatorMetrics } from '../../apps/invalidator/src/metrics.ts';
import { NotVisibleYetError, processJob } from '../../apps/invalidator/src/processor.ts';
import { userProfile } from '../support/blog.ts';
import { appLogger, type Servers, startServers } from '../support/stack.ts';
import { type Pipeline, startPipeline } from './pipeline.ts';

let servers: Servers;
let p: Pipeline;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 5, tags: 2, commentsPerArticle: 1 });
  // No auditor: it would find and delete a stale value itself, hiding what this test checks.
  p = await startPipeline(servers, { invalidator: { auditor: false } });
});

afterAll(async () => {
  await p?.writer.query('alter system reset synchronous_standby_names').catch(() => undefined);
  await p?.writer.query('select pg_reload_conf()').catch(() => undefined);
  await p?.stop();
  await servers?.stop();
});

it('an invalidation waits until its transaction is visible (a synchronous standby that never answers)', async () => {
  await p.cache.get(userProfile, { id: '5' });
  expect(JSON.parse((await p.cached('user:5'))!).name).not.toBe('renamed (item 1)');
  await p.writer.query("alter system set synchronous_standby_names = 'walcache_never_connects'");
  await p.writer.query('select pg_reload_conf()');

  const hung = new pg.Client({ connectionString: p.env.DATABASE_URL });
  await hung.connect();
  let committed = false;
  try {
    await hung.query('set synchronous_commit = on');
    const commit = hung
      .query("update users set name = 'renamed (item 1)' where id = 5")
      .then(() => (committed = true));
    commit.catch(() => undefined); // awaited below; a failed assertion before must not leave it unhandled
    // The commit is decoded, its job stored and picked up (run or put off) while the COMMIT
    // still waits for the standby.
    await waitFor(
      async () => {
        // Completed (run in the window), or delayed (put off until visible).
        const jobs = await p.invalidator.queue.getJobs(['completed', 'delayed'], 0, 100);
        return jobs.some((j) => j.data.tags.includes('row:users:5'));
      },
      { timeoutMs: 20_000, what: "the commit's job to be picked up" },
    );
    // Still invisible: other sessions read the old row.
    expect(committed).toBe(false);
    const { rows } = await p.writer.query<{ name: string }>('select name from users where id = 5');
    expect(rows[0]?.name).not.toBe('renamed (item 1)');

    // The standby requirement goes away: the commit becomes visible.
    await p.writer.query('alter system reset synchronous_standby_names');
    await p.writer.query('select pg_reload_conf()');
    await commit;
  } finally {
    await hung.end();
  }
  await p.drain();
  const fresh = JSON.stringify(await userProfile.load(p.db, { id: '5' }));
  expect(JSON.parse(fresh).name).toBe('renamed (item 1)');
  await waitFor(
    async () => {
      const held = await p.cached('user:5');
      return held === null || held === fresh;
    },
    // Why 10 s: the fix re-checks a waiting job twice a second; without it the old row
    // stays cached for its whole TTL and this bound fails the test.
    { timeoutMs: 10_000, what: 'the cached profile to be fresh' },
  );
});

/** The 32-bit xid of the client's open transaction (assigning one), as pgoutput carries it. */
const xidOf = async (client: pg.Client) => {
  const { rows } = await client.query<{ xid: string }>('select txid_current()::text as xid');
  return Number(BigInt(rows[0]!.xid) & 0xffffffffn);
};

it("a check's snapshot spares later checks only of transactions that had ended before it", async () => {
  const open = new pg.Client({ connectionString: p.env.DATABASE_URL });
  await open.connect();
  try {
    await open.query('begin');
    const running = await xidOf(open); // holds the snapshot xmin at or below it
    await p.writer.query('begin');
    const ended = await xidOf(p.writer);
    await p.writer.query("update users set name = 'horizon' where id = 4");
    await p.writer.query('commit');

    const horizon = new VisibilityHorizon();
    expect(await countInvisibleXids(p.writer, [ended], horizon)).toBe(0);
    // `ended` began after `running` but committed; `running` is still open, so the xmin
    // stays at it: neither is known visible without a query of its own.
    expect(horizon.covers([ended])).toBe(false);
    expect(horizon.covers([running])).toBe(false);
    expect(await countInvisibleXids(p.writer, [running], horizon)).toBe(1);

    await open.query('commit');
    expect(await countInvisibleXids(p.writer, [running], horizon)).toBe(0);
    // Once nothing older runs, a check's xmin passes both: a later job carrying them skips step 0.
    expect(horizon.covers([running, ended])).toBe(true);
  } finally {
    await open.end();
  }
});

it('the invalidator runs no query for a job an earlier check covered, and still invalidates it', async () => {
  const committed = async (id: number) => {
    await p.writer.query('begin');
    const xid = await xidOf(p.writer);
    await p.writer.query('update users set name = $1 where id = $2', [`covered ${xid}`, id]);
    await p.writer.query('commit');
    return xid;
  };
  const older = await committed(3);
  const newer = await committed(2);
  await p.drain(); // the pipeline's own invalidator is done with both
  const metrics = createInvalidatorMetrics(new Registry());
  const deps = {
    redis: p.redis,
    keys: p.cache.keys,
    cache: p.cache,
    metrics,
    logger: appLogger('invalidator'),
    db: p.writer,
    horizon: new VisibilityHorizon(),
    resourceForKey: () => undefined,
  };
  const job = (xid: number, tag: string): InvalidationJob => ({
    v: 1,
    tags: [tag],
    lsnFrom: '0/1',
    lsnTo: '0/1',
    firstCommitMs: Date.now(),
    lastCommitMs: Date.now(),
    transactions: 1,
    xids: [xid],
    enqueuedMs: Date.now(),
    deleteOnly: true,
  });
  const counts = async () => ({
    known: (await metrics.visibilityKnown.get()).values[0]?.value ?? 0,
    queried:
      (await metrics.visibilityCheck.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0,
  });

  await processJob(deps, job(newer, 'row:users:2'));
  expect(await counts()).toEqual({ known: 0, queried: 1 });
  // The older commit's job comes after: the newer one's check already showed it visible.
  await p.cache.get(userProfile, { id: '3' });
  expect(await p.cached('user:3')).not.toBeNull();
  await processJob(deps, job(older, 'row:users:3'));
  expect(await counts()).toEqual({ known: 1, queried: 1 });
  expect(await p.cached('user:3')).toBeNull();

  // A transaction still running is never covered: its job queries, and waits.
  const open = new pg.Client({ connectionString: p.env.DATABASE_URL });
  await open.connect();
  try {
    await open.query('begin');
    const running = await xidOf(open);
    await expect(processJob(deps, job(running, 'row:users:4'))).rejects.toBeInstanceOf(NotVisibleYetError);
    expect(await counts()).toEqual({ known: 1, queried: 2 });
  } finally {
    await open.end();
  }
});
