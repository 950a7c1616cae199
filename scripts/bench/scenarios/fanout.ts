import { QUEUE_PREFIX } from '@walcache/core';
import { Queue } from 'bullmq';
import { articleDetail } from '../../../test/support/blog.ts';
import { type Ctx, fillAll, keys } from '../context.ts';
import { type KeyDeletions, watchKeyDeletions } from '../key-events.ts';
import { LagProbe } from '../lag.ts';
import { progress, sleep } from '../procs.ts';
import type { FanoutJob, FanoutResult } from '../results.ts';
import { BENCH_NAMES, pgClient } from '../stack.ts';
import { cpuMeter } from '../sys.ts';

/** The author who receives the articles: an existing user, so the rename is a plain UPDATE. */
const AUTHOR_ID = 1;
/** How long the rename may take to invalidate everything before the scenario reports what it saw. */
const FANOUT_TIMEOUT_MS = 60_000;

/**
 * Scenario 6: articles 1…N moved under one author and cached through the API; one UPDATE of
 * that author's name must delete all N keys (each article embeds the author's name).
 */
export async function fanoutScenario(ctx: Ctx): Promise<FanoutResult> {
  const { profile, servers, apps, redis } = ctx;
  const n = profile.fanout;
  const writer = await pgClient(servers.pg.url, 'walcache-bench-fanout');
  const poller = await pgClient(servers.pg.url, 'walcache-bench-fanout-lag');
  const queueRedis = redis.duplicate({ maxRetriesPerRequest: null });
  const queue = new Queue(BENCH_NAMES.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => progress(`queue error: ${err.message}`));
  let events: KeyDeletions | undefined;
  try {
    progress(`fan-out: moving articles 1…${n} under user ${AUTHOR_ID}`);
    await writer.query('update articles set author_id = $1 where id <= $2', [AUTHOR_ID, n]);
    // That move invalidates those articles itself: wait until it is fully processed before filling.
    const lag = new LagProbe(writer, poller, BENCH_NAMES.SLOT_NAME);
    lag.start();
    // A few markers (one per 200 ms) after the move; 30 s for them is far more than a
    // 9 000-row transaction takes to decode and enqueue.
    await sleep(300);
    await lag.stop(30_000);
    // Then the queue must be empty (up to 60 s: the move's job deletes every cached article).
    for (let i = 0; i < 600; i++) {
      const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
      if (Object.values(c).every((v) => v === 0)) break;
      await sleep(100);
    }
    progress(`fan-out: reading ${n} articles through the API so they are cached`);
    const paths = Array.from({ length: n }, (_, i) => `/v1/articles/${i + 1}`);
    // Every one of these reads is a miss (the move deleted them all): what a fill costs.
    const fillCpu = cpuMeter([ctx.groups.api, ctx.groups.postgres, ctx.groups.redis]);
    const fillStarted = performance.now();
    await fillAll(apps.apiUrl, redis, paths);
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    const fillUse = fillCpu.stop();
    const perMiss = (name: string) => Math.round((((fillUse[name] ?? 0) / 100) * fillSeconds * 1e6) / n);
    const fill = {
      misses: n,
      seconds: fillSeconds,
      apiUsPerMiss: perMiss('api'),
      postgresUsPerMiss: perMiss('postgres'),
      redisUsPerMiss: perMiss('redis'),
    };
    progress(
      `fan-out: ${n} misses in ${fillSeconds.toFixed(1)} s; CPU per miss: api ${fill.apiUsPerMiss} µs, postgres ${fill.postgresUsPerMiss} µs, redis ${fill.redisUsPerMiss} µs`,
    );
    const valueKeys = Array.from({ length: n }, (_, i) =>
      keys.value(articleDetail.key(articleDetail.params.parse({ id: String(i + 1) }))),
    );
    const wanted = new Set(valueKeys);
    const cachedBefore = (await Promise.all(valueKeys.map((k) => redis.exists(k)))).filter(
      (x) => x === 1,
    ).length;

    await redis.config('SET', 'notify-keyspace-events', 'Eg');
    const deletedAt: number[] = [];
    const seen = new Set<string>();
    events = await watchKeyDeletions(servers.redis.url, (key, at) => {
      if (!wanted.has(key) || seen.has(key)) return;
      seen.add(key);
      deletedAt.push(at);
    });

    progress(`fan-out: renaming user ${AUTHOR_ID} (${cachedBefore} of its articles cached)`);
    const { rows } = await writer.query<{ at: number }>(
      `update users set name = 'Renamed by the benchmark', updated_at = now() where id = $1
       returning (extract(epoch from clock_timestamp()) * 1000)::float8 as at`,
      [AUTHOR_ID],
    );
    const commitMs = rows[0]?.at ?? Date.now();
    const deadline = Date.now() + FANOUT_TIMEOUT_MS;
    // Polled every 20 ms; the deletion times themselves come from the key events, not this loop.
    while (seen.size < cachedBefore && Date.now() < deadline) await sleep(20);
    const remainingAfter = (await Promise.all(valueKeys.map((k) => redis.exists(k)))).filter(
      (x) => x === 1,
    ).length;
    // The job completes after its keys are gone (it still has to read its reply and refresh).
    let job: FanoutJob | undefined;
    for (let i = 0; i < 100 && !job; i++) {
      job = await renameJob(queue, commitMs);
      if (!job) await sleep(50);
    }
    const result: FanoutResult = {
      keys: n,
      cachedBefore,
      firstMs: (deletedAt[0] ?? Number.NaN) - commitMs,
      lastMs: (deletedAt[deletedAt.length - 1] ?? Number.NaN) - commitMs,
      remainingAfter,
      fill,
      ...(job ? { job } : {}),
    };
    progress(
      `fan-out: ${seen.size} keys deleted, first ${result.firstMs.toFixed(0)} ms, last ${result.lastMs.toFixed(0)} ms after the commit; ${remainingAfter} remain${job ? `; its job started at ${job.startedMs.toFixed(0)} ms, invalidated in ${job.invalidateMs.toFixed(0)} ms` : ''}`,
    );
    return result;
  } finally {
    events?.close();
    await queue.close();
    queueRedis.disconnect();
    await Promise.allSettled([writer.end(), poller.end()]);
  }
}

/**
 * Where the rename's time went, from its job's own record (BullMQ's timestamps and the
 * processor's `ms`): the newest completed job whose commit is the rename's.
 */
async function renameJob(queue: Queue, commitMs: number): Promise<FanoutJob | undefined> {
  for (const job of await queue.getJobs(['completed'], 0, 10)) {
    const data = job.data as { firstCommitMs?: number; tags?: unknown[] };
    if (data.firstCommitMs === undefined || Math.abs(data.firstCommitMs - commitMs) > 5) continue;
    const ms = (job.returnvalue as { ms?: { visible?: number; invalidate?: number } } | null)?.ms;
    return {
      tags: data.tags?.length ?? 0,
      addedMs: job.timestamp - commitMs,
      startedMs: (job.processedOn ?? Number.NaN) - commitMs,
      visibleMs: ms?.visible ?? Number.NaN,
      invalidateMs: ms?.invalidate ?? Number.NaN,
      finishedMs: (job.finishedOn ?? Number.NaN) - commitMs,
    };
  }
  return undefined;
}
