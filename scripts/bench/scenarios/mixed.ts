import { waitFor } from '@walcache/testkit';
import { type Ctx, measure } from '../context.ts';
import { type Child, progress, runToEnd } from '../procs.ts';
import type { HttpRow, MixedResult } from '../results.ts';
import { BENCH_NAMES } from '../stack.ts';
import { memorySampler, type ProcessGroup } from '../sys.ts';
import type { MixedOutput } from '../writer.ts';

/** Starts the writer process in one of its modes; resolves with its parsed result line. */
export function startWriter<T>(ctx: Ctx, name: string, config: Record<string, unknown>) {
  const child: Child = ctx.children.spawnTs(name, 'scripts/bench/writer.ts', {
    args: [JSON.stringify(config)],
  });
  const result = runToEnd(child).then((out) => {
    const line = out.split('\n').find((l) => l.startsWith('WRITERJSON '));
    if (!line) throw new Error(`${name} printed no result:\n${child.output()}`);
    return JSON.parse(line.slice('WRITERJSON '.length)) as T;
  });
  return { child, result };
}

/**
 * Scenario 4: 95 % reads from the load generator, 5 % writes from a separate writer process
 * with a stale-read checker. Run against walcache, then against the naive cache-aside (which
 * nothing invalidates) under the same writes, to show what the stale-read figure means.
 * Memory of every process is sampled during the walcache run (scenario 7).
 */
export async function mixedScenario(
  ctx: Ctx,
  rows: HttpRow[],
  memoryGroups: ProcessGroup[],
): Promise<{ results: MixedResult[]; memory: Record<string, number> }> {
  const { profile, apps, paths, groups } = ctx;
  // The writer starts at 5/95 of the hit throughput measured in scenario 2 (or a fixed guess if
  // the read scenarios were skipped), then follows the reads actually served; the share
  // reached is reported.
  const hitRps = rows.find((r) => r.id === 'wc-detail')?.rps ?? 2000;
  const writeRate = Math.max(1, Math.round((hitRps * profile.writeShare) / (1 - profile.writeShare)));
  const ids: [number, number] = [1, paths.detail.length];
  const results: MixedResult[] = [];
  let memory: Record<string, number> = {};

  const targets = [
    {
      target: 'walcache',
      baseUrl: apps.apiUrl,
      prefix: '',
      server: groups.api,
      walcache: true,
      ceilingId: 'wc-detail',
    },
    {
      target: 'naive cache-aside',
      baseUrl: apps.baselineUrl,
      prefix: '/naive',
      server: groups.baseline,
      walcache: false,
      ceilingId: 'naive-detail',
    },
  ];
  for (const t of targets) {
    progress(
      `mixed (${t.target}): reads on ${ids[1]} articles + writes from a separate process at 5/95 of the reads (starting at ${writeRate}/s)`,
    );
    const sampler = t.walcache ? memorySampler(memoryGroups) : undefined;
    // The writer loads now and starts writing when the measured run starts (SIGUSR2), for as long.
    const writer = startWriter<MixedOutput>(ctx, `writer (mixed, ${t.target})`, {
      mode: 'mixed',
      databaseUrl: ctx.servers.pg.url,
      checkUrl: `${t.baseUrl}${t.prefix}/v1/articles/`,
      ids,
      rate: writeRate,
      writeShare: profile.writeShare,
      readCounterUrl: t.walcache ? `${apps.apiUrl}/metrics` : `${apps.baselineUrl}/stats`,
      durationMs: profile.mixedS * 1000,
      staleBoundMs: profile.staleBoundMs,
      cache: t.walcache ? { redisUrl: ctx.servers.redis.url, prefix: BENCH_NAMES.CACHE_PREFIX } : undefined,
    });
    await waitFor(
      () => {
        if (writer.child.proc.exitCode !== null)
          throw new Error(`the writer exited:\n${writer.child.output()}`);
        return writer.child.stdout().includes('WRITER READY');
      },
      {
        timeoutMs: 30_000,
        what: 'the writer to load',
      },
    );
    const row = await measure(
      ctx,
      {
        id: `mixed-${t.walcache ? 'walcache' : 'naive'}`,
        scenario: '4 mixed 95/5',
        label: `mixed reads, ${t.target}`,
        baseUrl: t.baseUrl,
        paths: paths.detail.map((p) => `${t.prefix}${p}`),
        server: t.server,
        ceilingId: t.ceilingId,
        walcache: t.walcache,
        extraGroups: [
          groups.cdc,
          groups.invalidator,
          { name: 'writer', memory: 'rss', pids: () => [writer.child.pid] },
        ],
        durationS: profile.mixedS,
        onMeasureStart: () => writer.child.proc.kill('SIGUSR2'),
      },
      // A copy: the ceiling is looked up in the read rows, the mixed row is reported apart.
      [...rows],
    );
    if (sampler) memory = sampler.stop();
    const w = await writer.result;
    const result: MixedResult = {
      target: t.target,
      reads: row,
      writes: w.writes,
      writeRate: w.writeRate,
      writeShare: w.writes / (w.writes + row.requests),
      hitRatio: row.hitRatio,
      staleChecks: w.checks,
      reorderedChecks: w.reordered,
      staleReads: w.stale,
      staleBoundMs: profile.staleBoundMs,
      staleFollowed: w.staleFollowed,
      staleStill: w.staleStill,
      staleFreshAfterMaxMs: w.staleLateMs.length ? Math.max(...w.staleLateMs) : undefined,
      staleExamples: w.staleExamples,
    };
    if (w.checkErrors) progress(`mixed (${t.target}): ${w.checkErrors} stale checks failed to read`);
    if (w.reordered)
      progress(
        `mixed (${t.target}): ${w.reordered} checks skipped: Postgres itself held an older title (writes reordered)`,
      );
    progress(
      `mixed (${t.target}): ${Math.round(row.rps)} reads/s p99 ${row.p99Ms.toFixed(1)} ms, ${Math.round(w.writeRate)} writes/s, ` +
        `hit ratio ${result.hitRatio === undefined ? '–' : `${(result.hitRatio * 100).toFixed(1)}%`}, stale ${w.stale}/${w.checks}` +
        (w.staleFollowed ? ` (followed ${w.staleFollowed}: ${w.staleStill} never fresh within 10 s)` : ''),
    );
    results.push(result);
  }
  return { results, memory };
}
