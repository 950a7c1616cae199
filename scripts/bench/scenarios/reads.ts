import { type Ctx, getOk, measure, pool } from '../context.ts';
import { median } from '../lag.ts';
import { progress } from '../procs.ts';
import type { HttpRow } from '../results.ts';

/** Scenarios 1–3: ceilings, walcache hits, no cache and the naive cache-aside, all read-only. */
export async function readScenarios(ctx: Ctx, rows: HttpRow[]): Promise<void> {
  const { apps, groups, paths, rawPaths } = ctx;
  const base = apps.baselineUrl;

  // Fill the naive cache first (one GET per path), so its runs are all hits like walcache's.
  await pool([...paths.detail, ...paths.list], 16, async (p) => {
    await (await getOk(`${base}/naive${p}`)).arrayBuffer();
  });

  const best = new Map<string, HttpRow>();
  const ratios = new Map<string, number[]>();
  for (let round = 1; round <= ctx.profile.rounds; round++) {
    if (ctx.profile.rounds > 1) progress(`reads: round ${round} of ${ctx.profile.rounds}`);
    const roundRows: HttpRow[] = [];
    // 1. Ceilings of this machine: HTTP alone, then HTTP + one Redis GET of the same bodies,
    // each followed at once by 2. walcache's hits on the very same bytes: the pair's ratio is
    // measured seconds apart, not a round apart.
    await measure(
      ctx,
      {
        id: 'const',
        scenario: '1 ceiling',
        label: 'Hono, constant body',
        baseUrl: base,
        paths: ['/const'],
        server: groups.baseline,
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'raw-detail',
        scenario: '1 ceiling',
        label: 'Hono + one Redis GET (article bodies)',
        baseUrl: base,
        paths: rawPaths.detail,
        server: groups.baseline,
        ceilingId: 'const',
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'wc-detail',
        scenario: '2 walcache hit',
        label: 'walcache GET /v1/articles/:id',
        baseUrl: apps.apiUrl,
        paths: paths.detail,
        server: groups.api,
        ceilingId: 'raw-detail',
        walcache: true,
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'raw-list',
        scenario: '1 ceiling',
        label: 'Hono + one Redis GET (list-page bodies)',
        baseUrl: base,
        paths: rawPaths.list,
        server: groups.baseline,
        ceilingId: 'const',
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'wc-list',
        scenario: '2 walcache hit',
        label: 'walcache GET /v1/articles?cursor',
        baseUrl: apps.apiUrl,
        paths: paths.list,
        server: groups.api,
        ceilingId: 'raw-list',
        walcache: true,
      },
      roundRows,
    );
    // 3. Without walcache: straight to Postgres, and the hand-written cache-aside (warm: all hits).
    await measure(
      ctx,
      {
        id: 'pg-detail',
        scenario: '3 no cache',
        label: 'Postgres only, article detail',
        baseUrl: base,
        paths: paths.detail.map((p) => `/pg${p}`),
        server: groups.baseline,
        ceilingId: 'raw-detail',
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'pg-list',
        scenario: '3 no cache',
        label: 'Postgres only, list page',
        baseUrl: base,
        paths: paths.list.map((p) => `/pg${p}`),
        server: groups.baseline,
        ceilingId: 'raw-list',
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'naive-detail',
        scenario: '3 naive cache-aside',
        label: 'naive GET/SET cache, article detail (warm)',
        baseUrl: base,
        paths: paths.detail.map((p) => `/naive${p}`),
        server: groups.baseline,
        ceilingId: 'raw-detail',
      },
      roundRows,
    );
    await measure(
      ctx,
      {
        id: 'naive-list',
        scenario: '3 naive cache-aside',
        label: 'naive GET/SET cache, list page (warm)',
        baseUrl: base,
        paths: paths.list.map((p) => `/naive${p}`),
        server: groups.baseline,
        ceilingId: 'raw-list',
      },
      roundRows,
    );
    for (const row of roundRows) {
      const kept = best.get(row.id);
      if (!kept || row.rps > kept.rps) best.set(row.id, row);
      const ceiling = roundRows.find((r) => r.id === row.ceilingId);
      if (ceiling) ratios.set(row.id, [...(ratios.get(row.id) ?? []), row.rps / ceiling.rps]);
    }
  }
  // Each row's best round; its ratio is the median of its rounds' ratios, each to the ceiling
  // of the same round: the best of each alone would pair two rounds' luckiest moments.
  for (const row of best.values()) {
    const roundRatios = ratios.get(row.id);
    rows.push({ ...row, ratio: roundRatios && median(roundRatios), roundRatios });
  }
}
