import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUEUE_PREFIX } from '@walcache/core';
import { Queue } from 'bullmq';
import { ACHIEVED_SHARE, DRAIN_TIMEOUT_MS, LAG_LIMIT_MS } from '../config.ts';
import type { Ctx } from '../context.ts';
import { LagProbe, quantiles } from '../lag.ts';
import { progress, root, runToEnd, sleep } from '../procs.ts';
import type { InvalidationResult, RateStep } from '../results.ts';
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

  const script = join(root, 'bench-output', `pgbench-${rowsPerCommit}.sql`);
  writeFileSync(
    script,
    `\\set id random(1, ${bulkMax})\nupdate articles set title = 'Bulk write ' || :id, updated_at = now() where id between :id and :id + ${rowsPerCommit - 1};\n`,
  );
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
  const achievedCommits = tps + (probed.latenciesMs.length + probed.missing) / stepS;
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
  };
  progress(
    `  achieved ${Math.round(step.achievedCommitsPerS)} commits/s (${Math.round(step.achievedChangesPerS)} rows/s); ` +
      `commit→deleted p50 ${invalidation.p50Ms.toFixed(1)} p99 ${invalidation.p99Ms.toFixed(1)} max ${invalidation.maxMs.toFixed(1)} ms (n=${invalidation.count}); ` +
      `lag max ${Math.round(lagQ.maxMs)} ms; ${step.sustained ? 'sustained' : `NOT sustained: ${step.why}`}` +
      ` | cpu ${Object.entries(cpu)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}`,
  );
  await drain(lag, queue);
  return step;
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
