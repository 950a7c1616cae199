import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUEUE_PREFIX } from '@walcache/core';
import { Queue } from 'bullmq';
import { ACHIEVED_SHARE, DRAIN_TIMEOUT_MS, LAG_LIMIT_MS } from '../config.ts';
import { appMetrics, type Ctx } from '../context.ts';
import { LagProbe, quantiles } from '../lag.ts';
import { progress, root, runToEnd, sleep } from '../procs.ts';
import type { InvalidationResult, JobStages, RateStep } from '../results.ts';
import { BENCH_NAMES, pgClient } from '../stack.ts';
import { cpuMeter, type ProcessGroup } from '../sys.ts';
import type { ProbeOutput } from '../writer.ts';
import { startWriter } from './mixed.ts';

/** Probe articles: the top 500 ids, never touched by pgbench, so their keys die only by a probe. */
const PROBE_IDS = 500;

/**
 * Scenario 5: commit → key deleted, and replication lag, at increasing commit rates until one
 * is not sustained; then the same with multi-row transactions for the row-change rate.
 */
export async function invalidationScenario(ctx: Ctx): Promise<InvalidationResult> {
  const { profile, servers, redis } = ctx;
  // Key events let the probe see the exact moment a key is deleted (E: key-event channel, g: DEL/UNLINK).
  await redis.config('SET', 'notify-keyspace-events', 'Eg');
  const emitter = await pgClient(servers.pg.url, 'walcache-bench-lag-emit');
  const poller = await pgClient(servers.pg.url, 'walcache-bench-lag-poll');
  const queueRedis = redis.duplicate({ maxRetriesPerRequest: null });
  const queue = new Queue(BENCH_NAMES.QUEUE_NAME, { connection: queueRedis, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => progress(`queue error: ${err.message}`));
  const lag = new LagProbe(emitter, poller, BENCH_NAMES.SLOT_NAME);
  try {
    /**
     * Ramps until a rate is not sustained. A failed step is run once more before the ramp
     * ends: on a shared machine a neighbour's burst must not decide the figure; both runs
     * are reported.
     */
    const ramp = async (rates: number[], rows: number) => {
      const steps: RateStep[] = [];
      for (const rate of rates) {
        let step = await runStep(ctx, lag, queue, rate, rows);
        steps.push(step);
        if (!step.sustained && profile.invalidation.retryFailedStep) {
          progress('  repeating that step once');
          step = await runStep(ctx, lag, queue, rate, rows);
          steps.push(step);
        }
        if (!step.sustained) break;
      }
      return steps;
    };
    const commitSteps = await ramp(profile.invalidation.commitRates, 1);
    const changeSteps = await ramp(
      profile.invalidation.changeCommitRates,
      profile.invalidation.rowsPerCommit,
    );
    const best = (steps: RateStep[], f: (s: RateStep) => number) =>
      steps
        .filter((s) => s.sustained)
        .reduce<number | undefined>((m, s) => Math.max(m ?? 0, f(s)), undefined);
    return {
      commitSteps,
      changeSteps,
      maxSustainedCommitsPerS: best(commitSteps, (s) => s.achievedCommitsPerS),
      maxSustainedChangesPerS: best([...commitSteps, ...changeSteps], (s) => s.achievedChangesPerS),
    };
  } finally {
    await queue.close();
    queueRedis.disconnect();
    await Promise.allSettled([emitter.end(), poller.end()]);
  }
}

async function runStep(
  ctx: Ctx,
  lag: LagProbe,
  queue: Queue,
  targetCommits: number,
  rowsPerCommit: number,
): Promise<RateStep> {
  const { profile, servers, apps, groups, children } = ctx;
  const { stepS, probeRate } = profile.invalidation;
  const articles = profile.seed.articles;
  const probeIds: [number, number] = [articles - PROBE_IDS + 1, articles];
  const bulkMax = articles - PROBE_IDS - rowsPerCommit;
  // Probe commits count toward the target; pgbench writes the rest.
  const bulkRate = Math.max(0, targetCommits - probeRate);
  progress(
    `invalidation: ${targetCommits} commits/s × ${rowsPerCommit} row(s) for ${stepS}s (pgbench ${bulkRate}/s + ${probeRate} probes/s)`,
  );

  mkdirSync(join(root, 'bench-output'), { recursive: true });
  const script = join(root, 'bench-output', `pgbench-${rowsPerCommit}.sql`);
  writeFileSync(
    script,
    `\\set id random(1, ${bulkMax})\nupdate articles set title = 'Bulk write ' || :id, updated_at = now() where id between :id and :id + ${rowsPerCommit - 1};\n`,
  );
  const storesBefore = await cdcStores(ctx);
  const redisBefore = await commandStats(ctx);
  const stepStartMs = Date.now();
  lag.start();
  const probe = startWriter<ProbeOutput>(ctx, 'writer (probe)', {
    mode: 'probe',
    databaseUrl: servers.pg.url,
    apiUrl: apps.apiUrl,
    redisUrl: servers.redis.url,
    cachePrefix: BENCH_NAMES.CACHE_PREFIX,
    ids: probeIds,
    rate: probeRate,
    durationMs: stepS * 1000,
  });
  const pgbench = children.spawn('pgbench', 'pgbench', [
    '-n', // no vacuum of pgbench's own tables (there are none)
    // Four clients: a commit is a sub-millisecond round trip, so four can issue ~10k/s.
    '-c',
    '4',
    '-j',
    '1',
    '-R',
    String(Math.max(1, bulkRate)),
    '-T',
    String(stepS),
    '-f',
    script,
    servers.pg.url,
  ]);
  const pgbenchGroup: ProcessGroup = { name: 'pgbench', memory: 'rss', pids: () => [pgbench.pid] };
  const meter = cpuMeter([
    groups.cdc,
    groups.invalidator,
    groups.postgres,
    groups.redis,
    groups.api,
    pgbenchGroup,
  ]);
  // Read CPU 300 ms before pgbench ends, while every process of the step still exists.
  const cpu = await new Promise<Record<string, number>>((resolve) =>
    setTimeout(() => resolve(meter.stop()), stepS * 1000 - 300),
  );
  const out = await runToEnd(pgbench);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  if (!Number.isFinite(tps)) throw new Error(`pgbench printed no tps:\n${out}`);
  // Markers written in the step's last moments get 2 s to be acknowledged; later counts as
  // unresolved (and the step as not sustained, since that is already over the 1 s limit).
  const lagQ = await lag.stop(2000);
  const probed = await probe.result;
  const storesAfter = await cdcStores(ctx);
  const redisAfter = await commandStats(ctx);
  const stages = await jobStages(queue, stepStartMs, stepStartMs + stepS * 1000);
  if (stages) {
    stages.stores = storesAfter.count - storesBefore.count;
    stages.storeMeanMs = stages.stores ? (1000 * (storesAfter.sum - storesBefore.sum)) / stages.stores : 0;
    const commits = achievedCommitsOf(tps, probedCount(probed), stepS) * stepS;
    const delta = [...redisAfter].map(([command, a]) => {
      const b = redisBefore.get(command) ?? { calls: 0, us: 0 };
      return { command, calls: a.calls - b.calls, us: a.us - b.us };
    });
    const total = (f: (d: (typeof delta)[number]) => number) => delta.reduce((x, d) => x + f(d), 0);
    stages.redis = {
      callsPerCommit: total((d) => d.calls) / commits,
      usPerCommit: total((d) => d.us) / commits,
      top: delta.sort((a, b) => b.us - a.us).slice(0, 8),
    };
  }
  const achievedCommits = achievedCommitsOf(tps, probedCount(probed), stepS);
  const invalidation = { ...quantiles(probed.latenciesMs), skipped: probed.skipped };
  const reasons: string[] = [];
  // pgbench's schedule is the rate under test (the probes are a sample on top). It draws
  // Poisson arrivals, so a short low-rate step falls short by chance: allow 3 standard
  // deviations (√n) or the 5 % shortfall, whichever is larger.
  const expected = bulkRate * stepS;
  const allowed = Math.max((1 - ACHIEVED_SHARE) * expected, 3 * Math.sqrt(expected));
  if (tps * stepS < expected - allowed) reasons.push(`pgbench reached ${Math.round(tps)} of ${bulkRate}/s`);
  if (lagQ.maxMs >= LAG_LIMIT_MS || lagQ.unresolved > 0)
    reasons.push(`lag reached ${Math.round(lagQ.maxMs)} ms`);
  if (probed.missing > 0) reasons.push(`${probed.missing} probe keys not deleted within 10 s`);
  const step: RateStep = {
    targetCommitsPerS: targetCommits,
    rowsPerCommit,
    achievedCommitsPerS: achievedCommits,
    achievedChangesPerS: tps * rowsPerCommit + (probed.latenciesMs.length + probed.missing) / stepS,
    lag: lagQ,
    invalidation,
    sustained: reasons.length === 0,
    why: reasons.join('; ') || undefined,
    cpu,
    stages,
  };
  progress(
    `  achieved ${Math.round(step.achievedCommitsPerS)} commits/s (${Math.round(step.achievedChangesPerS)} rows/s); ` +
      `commit→deleted p50 ${invalidation.p50Ms.toFixed(1)} p99 ${invalidation.p99Ms.toFixed(1)} max ${invalidation.maxMs.toFixed(1)} ms (n=${invalidation.count}); ` +
      `lag max ${Math.round(lagQ.maxMs)} ms; ${step.sustained ? 'sustained' : `NOT sustained: ${step.why}`}` +
      ` | cpu ${Object.entries(cpu)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}`,
  );
  if (stages) progress(`  ${stagesLine(stages)}`);
  // CPU time per commit is what a busy neighbour on a shared machine changes least.
  progress(
    `  cpu µs per commit: ${Object.entries(cpu)
      .filter(([k]) => k !== 'machine')
      .map(([k, v]) => `${k} ${Math.round((v * 10_000) / step.achievedCommitsPerS)}`)
      .join(', ')}`,
  );
  await drain(lag, queue);
  return step;
}

const probedCount = (p: ProbeOutput) => p.latenciesMs.length + p.missing;
const achievedCommitsOf = (tps: number, probes: number, stepS: number) => tps + probes / stepS;

/** Redis' per-command totals (INFO commandstats): calls and CPU µs. */
async function commandStats(ctx: Ctx): Promise<Map<string, { calls: number; us: number }>> {
  const text = await ctx.redis.info('commandstats');
  const stats = new Map<string, { calls: number; us: number }>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    stats.set(m[1]!, { calls: Number(m[2]), us: Number(m[3]) });
  return stats;
}

/** Up to this many of the newest completed jobs are read after a step (BullMQ keeps 10 000). */
const STAGE_SAMPLE = 5000;

/** The stages of the completed jobs whose last commit fell inside the step. */
async function jobStages(queue: Queue, fromMs: number, toMs: number): Promise<JobStages | undefined> {
  const jobs = await queue.getJobs(['completed'], 0, STAGE_SAMPLE - 1, false);
  const inStep = jobs.filter((j) => {
    const commit = Number(j.data?.lastCommitMs);
    return commit >= fromMs && commit < toMs && j.processedOn && j.finishedOn;
  });
  if (inStep.length === 0) return undefined;
  const of = (f: (j: (typeof inStep)[number]) => number | undefined) =>
    quantiles(inStep.map(f).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)));
  const spanMs = Math.max(1, Math.max(...inStep.map((j) => j.data.lastCommitMs)) - fromMs);
  const sum = (f: (j: (typeof inStep)[number]) => number) => inStep.reduce((a, j) => a + f(j), 0);
  return {
    jobs: inStep.length,
    jobsPerS: (inStep.length * 1000) / spanMs,
    commitsPerJob: sum((j) => j.data.transactions) / inStep.length,
    tagsPerJob: sum((j) => j.data.tags.length) / inStep.length,
    toStore: of((j) => j.data.enqueuedMs - j.data.lastCommitMs),
    toPickup: of((j) => (j.processedOn ?? 0) - j.data.enqueuedMs),
    visible: of((j) => j.returnvalue?.ms?.visible),
    invalidate: of((j) => j.returnvalue?.ms?.invalidate),
    watermark: of((j) => j.returnvalue?.ms?.watermark),
    attempt: of((j) => (j.finishedOn ?? 0) - (j.processedOn ?? 0)),
    stores: 0,
    storeMeanMs: 0,
  };
}

const STORE_METRICS = [
  'walcache_cdc_enqueue_duration_seconds_sum',
  'walcache_cdc_enqueue_duration_seconds_count',
] as const;

async function cdcStores(ctx: Ctx): Promise<{ sum: number; count: number }> {
  const m = await appMetrics(ctx.apps.env.CDC_METRICS_PORT, STORE_METRICS);
  return { sum: m[STORE_METRICS[0]], count: m[STORE_METRICS[1]] };
}

function stagesLine(s: JobStages): string {
  const q = (x: { p50Ms: number; p99Ms: number }) => `${x.p50Ms.toFixed(1)}/${x.p99Ms.toFixed(1)}`;
  return (
    `jobs ${s.jobs} (${Math.round(s.jobsPerS)}/s; ${s.stores} stores, ${s.storeMeanMs.toFixed(1)} ms mean; ${s.commitsPerJob.toFixed(1)} commits, ${s.tagsPerJob.toFixed(1)} tags each); p50/p99 ms: ` +
    `commit→store ${q(s.toStore)}, store→picked ${q(s.toPickup)}, visible ${q(s.visible)}, ` +
    `invalidate ${q(s.invalidate)}, watermark ${q(s.watermark)}, picked→finished ${q(s.attempt)}` +
    (s.redis
      ? `; redis ${s.redis.callsPerCommit.toFixed(1)} calls, ${s.redis.usPerCommit.toFixed(0)} µs per commit (${s.redis.top
          .slice(0, 5)
          .map((c) => `${c.command} ${c.calls}×/${Math.round(c.us / 1000)} ms`)
          .join(', ')})`
      : '')
  );
}

/** Waits until the CDC caught up and the queue is empty, so the next step starts clean. */
async function drain(lag: LagProbe, queue: Queue): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    // One or two markers (every 200 ms), each given 2 s: caught up means they were acknowledged.
    lag.start();
    await sleep(250);
    const caughtUp = (await lag.stop(2000)).unresolved === 0;
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    const queued = Object.values(counts).reduce((a, b) => a + b, 0);
    if (caughtUp && queued === 0) return;
    if (Date.now() > deadline) {
      progress(
        `  the pipeline did not drain within ${DRAIN_TIMEOUT_MS / 1000}s (${queued} jobs queued); going on`,
      );
      return;
    }
  }
}
