import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appMetrics, type Ctx } from '../context.ts';
import { quantiles } from '../lag.ts';
import { progress, root, runToEnd } from '../procs.ts';
import type { RywResult, RywStep } from '../results.ts';
import { pgClient } from '../stack.ts';

/** Rates of background single-row commits the token reads run under (issue 15's figures). */
const RATES = [1000, 5000];
/** Articles the token loop writes: the bench's probe range is the top 500; these sit below it. */
const LOOP_IDS = 20;

/**
 * Scenario 8: read-your-writes. Under pgbench committing at a fixed rate, a writer updates an
 * article, reads `pg_current_wal_lsn()` and reads the article with it as `X-Walcache-After`;
 * then reads it once more without a token (a plain hit). The token read's latency beside the
 * plain read's is what the token costs, and the share answered from the cache (not BYPASS)
 * says how often the watermark had already passed the commit. The invalidator's step-0 timer
 * (`walcache_invalidator_visibility_check_seconds`, issue 11 item 1) is read over the same
 * runs: its mean is what the visibility check adds to a job that queries; the jobs an
 * earlier check's snapshot covered (`walcache_invalidator_visibility_known_total`) ran none.
 */
export async function rywScenario(ctx: Ctx): Promise<RywResult> {
  const steps: RywStep[] = [];
  const before = await visibilityTotals(ctx);
  for (const rate of RATES) steps.push(await runStep(ctx, rate));
  const after = await visibilityTotals(ctx);
  const jobs = after.count - before.count;
  return {
    steps,
    visibilityCheck: {
      jobs,
      known: after.known - before.known,
      meanMs: jobs > 0 ? ((after.sum - before.sum) * 1000) / jobs : undefined,
    },
  };
}

async function runStep(ctx: Ctx, rate: number): Promise<RywStep> {
  const { profile, servers, apps, children } = ctx;
  const stepS = profile.invalidation.stepS;
  const bulkMax = profile.seed.articles - 500;
  mkdirSync(join(root, 'bench-output'), { recursive: true });
  const script = join(root, 'bench-output', 'pgbench-ryw.sql');
  writeFileSync(
    script,
    `\\set id random(${LOOP_IDS + 1}, ${bulkMax})\nupdate articles set title = 'Bulk write ' || :id, updated_at = now() where id = :id;\n`,
  );
  progress(`read-your-writes: token reads under ${rate} commits/s for ${stepS}s`);
  const pgbench = children.spawn('pgbench', 'pgbench', [
    '-n',
    '-c',
    '4',
    '-j',
    '1',
    '-R',
    String(rate),
    '-T',
    String(stepS),
    '-f',
    script,
    servers.pg.url,
  ]);
  const writer = await pgClient(servers.pg.url, 'walcache-bench-ryw');
  // Postgres' default; the bench's server runs asynchronous commit, where the write position
  // can trail a commit that returned (docs/api.md).
  await writer.query('set synchronous_commit = on');
  const token: number[] = [];
  const plain: number[] = [];
  const outcomes: Record<string, number> = {};
  let older = 0;
  const deadline = performance.now() + (stepS - 0.5) * 1000;
  try {
    for (let n = 0; performance.now() < deadline; n++) {
      const id = 1 + (n % LOOP_IDS);
      const title = `ryw ${rate} ${n}`;
      await writer.query('update articles set title = $1 where id = $2', [title, id]);
      const { rows } = await writer.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      let started = performance.now();
      const res = await fetch(`${apps.apiUrl}/v1/articles/${id}`, {
        headers: { 'x-walcache-after': rows[0]!.lsn },
      });
      const body = (await res.json()) as { title?: string };
      token.push(performance.now() - started);
      const cache = res.headers.get('x-cache') ?? String(res.status);
      outcomes[cache] = (outcomes[cache] ?? 0) + 1;
      if (body.title !== title) older += 1;
      started = performance.now();
      await (await fetch(`${apps.apiUrl}/v1/articles/${id}`)).arrayBuffer();
      plain.push(performance.now() - started);
    }
  } finally {
    await writer.end();
  }
  const out = await runToEnd(pgbench);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const t = quantiles(token);
  const p = quantiles(plain);
  const fromCache = (outcomes.HIT ?? 0) + (outcomes.MISS ?? 0);
  const step: RywStep = {
    targetCommitsPerS: rate,
    achievedCommitsPerS: tps,
    tokenRead: t,
    plainRead: p,
    addedP50Ms: t.p50Ms - p.p50Ms,
    addedP99Ms: t.p99Ms - p.p99Ms,
    fromCacheShare: t.count ? fromCache / t.count : 0,
    outcomes,
    older,
  };
  progress(
    `  ${Math.round(tps)} commits/s: token read p50 ${t.p50Ms.toFixed(2)} p99 ${t.p99Ms.toFixed(2)} ms, plain p50 ${p.p50Ms.toFixed(2)} p99 ${p.p99Ms.toFixed(2)} ms; from the cache ${(100 * step.fromCacheShare).toFixed(0)} % ${JSON.stringify(outcomes)}; older ${older}`,
  );
  return step;
}

async function visibilityTotals(ctx: Ctx): Promise<{ sum: number; count: number; known: number }> {
  const names = [
    'walcache_invalidator_visibility_check_seconds_sum',
    'walcache_invalidator_visibility_check_seconds_count',
    'walcache_invalidator_visibility_known_total',
  ] as const;
  const m = await appMetrics(ctx.apps.env.INVALIDATOR_METRICS_PORT, names);
  return { sum: m[names[0]], count: m[names[1]], known: m[names[2]] };
}
