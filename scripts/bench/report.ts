import type { BenchResults, HttpRow, Quantiles, RateStep } from './results.ts';
import { MACHINE } from './sys.ts';

/** The whole machine's CPU during a run, out of what its cores can give. */
const machineCpu = (cpu: Record<string, number>, cores: number) =>
  cpu[MACHINE] === undefined ? '–' : `${cpu[MACHINE]}% / ${cores * 100}%`;

const n0 = (v: number) => Math.round(v).toLocaleString('en-US');
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pct = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);
const ratio = (v: number | undefined) => (v === undefined ? '–' : `${v.toFixed(2)}×`);

/** The process that used the most CPU in a run: where the time of that run went. */
export function busiest(cpu: Record<string, number>): string {
  const sorted = Object.entries(cpu)
    .filter(([k]) => k !== MACHINE)
    .sort((a, b) => b[1] - a[1]);
  return sorted
    .slice(0, 2)
    .map(([k, v]) => `${k} ${v}%`)
    .join(', ');
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function httpTable(rows: HttpRow[], cores: number): string {
  return table(
    [
      '#',
      'what',
      'req/s',
      'p50 ms',
      'p99 ms',
      'vs ceiling',
      'ceiling',
      'hit ratio',
      'server CPU µs/req',
      'busiest (CPU % of a core)',
      'machine CPU',
      'errors',
    ],
    rows.map((r) => [
      r.scenario,
      r.label,
      n0(r.rps),
      ms(r.p50Ms),
      ms(r.p99Ms),
      ratio(r.ratio),
      r.ceilingId ?? '–',
      pct(r.hitRatio),
      n0(r.serverUsPerRequest),
      busiest(r.cpu),
      machineCpu(r.cpu, cores),
      String(r.errors),
    ]),
  );
}

const q = (x: Quantiles) => (x.count ? `${ms(x.p50Ms)} / ${ms(x.p99Ms)} / ${ms(x.maxMs)}` : '–');

function stepTable(steps: RateStep[], cores: number): string {
  return table(
    [
      'target commits/s',
      'rows/commit',
      'achieved commits/s',
      'row changes/s',
      'commit → key deleted p50 / p99 / max ms (n)',
      'replication lag p50 / p99 / max ms',
      'sustained',
      'busiest (CPU %)',
      'machine CPU',
    ],
    steps.map((s) => [
      n0(s.targetCommitsPerS),
      String(s.rowsPerCommit),
      n0(s.achievedCommitsPerS),
      n0(s.achievedChangesPerS),
      `${q(s.invalidation)} (${s.invalidation.count})`,
      `${q(s.lag)}${s.lag.unresolved ? ` (+${s.lag.unresolved} unresolved)` : ''}`,
      s.sustained ? 'yes' : `no: ${s.why ?? ''}`,
      busiest(s.cpu),
      machineCpu(s.cpu, cores),
    ]),
  );
}

/** The console table: one line per measured thing. */
export function consoleTable(r: BenchResults): string {
  const lines: string[] = [];
  const pad = (s: string, w: number) => s.padEnd(w);
  const padL = (s: string, w: number) => s.padStart(w);
  lines.push(
    `${pad('scenario', 22)}${pad('what', 44)}${padL('req/s', 9)}${padL('p50 ms', 9)}${padL('p99 ms', 9)}${padL('vs ceil', 9)}${padL('µs/req', 8)}`,
  );
  for (const row of r.http) {
    lines.push(
      `${pad(row.scenario, 22)}${pad(row.label, 44)}${padL(n0(row.rps), 9)}${padL(ms(row.p50Ms), 9)}${padL(ms(row.p99Ms), 9)}${padL(ratio(row.ratio), 9)}${padL(n0(row.serverUsPerRequest), 8)}`,
    );
  }
  for (const m of r.mixed) {
    lines.push(
      `${pad('4 mixed 95/5', 22)}${pad(`${m.target}: hit ${pct(m.hitRatio)}, stale ${m.staleReads}/${m.staleChecks} (${m.staleStill} lost)`, 44)}${padL(n0(m.reads.rps), 9)}${padL(ms(m.reads.p50Ms), 9)}${padL(ms(m.reads.p99Ms), 9)}`,
    );
  }
  const inv = r.invalidation;
  if (inv) {
    for (const s of [...inv.commitSteps, ...inv.changeSteps]) {
      lines.push(
        `${pad('5 invalidation', 22)}${pad(`${n0(s.targetCommitsPerS)} commits/s × ${s.rowsPerCommit} row: ${s.sustained ? 'ok' : 'NOT sustained'}`, 44)}` +
          `  commit→deleted p50/p99/max ${q(s.invalidation)} ms, lag max ${ms(s.lag.maxMs)} ms`,
      );
    }
    lines.push(
      `${pad('5 invalidation', 22)}max sustained: ${inv.maxSustainedCommitsPerS ? n0(inv.maxSustainedCommitsPerS) : '–'} commits/s, ${inv.maxSustainedChangesPerS ? n0(inv.maxSustainedChangesPerS) : '–'} row changes/s`,
    );
  }
  if (r.fanout) {
    lines.push(
      `${pad('6 fan-out', 22)}${r.fanout.keys} keys by one rename: first ${ms(r.fanout.firstMs)} ms, all ${ms(r.fanout.lastMs)} ms`,
    );
  }
  for (const h of r.cluster?.hits ?? []) {
    lines.push(
      `${pad('11 redis cluster', 22)}${pad(`article hits, ${h.label}`, 44)}${pad(n0(h.rps), 8)}${pad(ms(h.p50Ms), 9)}${pad(ms(h.p99Ms), 9)}`,
    );
  }
  if (r.cluster) {
    const q = r.cluster.invalidation;
    lines.push(
      `${pad('11 redis cluster', 22)}commit→deleted p50/p99/max ${ms(q.p50Ms)}/${ms(q.p99Ms)}/${ms(q.maxMs)} ms (${q.count} probes, ${q.missing} missing)`,
    );
  }
  if (r.precision) {
    const p = r.precision;
    lines.push(
      `${pad('9 precision', 22)}${p.writes} writes: ${p.invalidated} values invalidated, ${p.needless} needless (${pct(p.needlessShare)}); ${p.skippedUpdates} updates skipped by the CDC`,
    );
  }
  for (const step of r.ryw?.steps ?? []) {
    lines.push(
      `${pad('8 read-your-writes', 22)}${n0(step.achievedCommitsPerS)} commits/s: token read p50 ${ms(step.tokenRead.p50Ms)} p99 ${ms(step.tokenRead.p99Ms)} ms (+${ms(step.addedP50Ms)} / +${ms(step.addedP99Ms)} over a plain hit), ${pct(step.fromCacheShare)} from the cache, ${step.older} older`,
    );
  }
  lines.push(
    `${pad('7 memory MiB', 22)}at rest ${JSON.stringify(r.memory.atRest)}; mixed load ${JSON.stringify(r.memory.underMixedLoad)}`,
  );
  for (const row of r.startup?.rows ?? []) {
    const ratioRow = row.from === 'bundle / sources';
    lines.push(
      `${pad('8 start-up', 22)}${pad(`${row.app} from ${row.from}`, 44)}` +
        (ratioRow
          ? `spawn→listening ${ratio(row.listeningMs.p50)}, ready ${row.readyMs ? ratio(row.readyMs.p50) : '—'}, RSS ${ratio(row.rssMiB.p50)}`
          : `spawn→listening ${n0(row.listeningMs.p50)} ms, ready ${row.readyMs ? n0(row.readyMs.p50) : '—'} ms, RSS ${n0(row.rssMiB.p50)} MiB`),
    );
  }
  return lines.join('\n');
}

/**
 * Issue 14's targets, each beside the figure the issue was filed with (its text, 1 December)
 * and this run's: one place to read what is met. "–": not measured then, or not in this run.
 */
function issue14Targets(r: BenchResults): string {
  const http = (id: string) => r.http.find((row) => row.id === id);
  const cpuRatio = (id: string, ceiling: string) => {
    const a = http(id);
    const b = http(ceiling);
    return a && b && b.serverUsPerRequest > 0 ? a.serverUsPerRequest / b.serverUsPerRequest : undefined;
  };
  const step = (target: number) =>
    r.invalidation?.commitSteps.find((x) => Math.abs(x.targetCommitsPerS - target) / target < 0.15);
  const bundle = (app: string) => r.startup?.rows.find((row) => row.app === app && row.from === 'bundle');
  const apps = ['api', 'cdc', 'invalidator'];
  const mixed = r.mixed.find((x) => x.target.startsWith('walcache'));
  const met = (ok: boolean | undefined) => (ok === undefined ? '–' : ok ? 'yes' : 'no');
  const rows: [string, string, string, string, boolean | undefined][] = [];
  const detail = http('wc-detail')?.ratio;
  const list = http('wc-list')?.ratio;
  /** The median and, with several rounds, each round's ratio. */
  const withRounds = (id: string) => {
    const row = http(id);
    const rounds = row?.roundRatios ?? [];
    return rounds.length > 1
      ? `${ratio(row?.ratio)} (rounds: ${rounds.map((x) => ratio(x)).join(', ')})`
      : ratio(row?.ratio);
  };
  const cpu = cpuRatio('wc-detail', 'raw-detail');
  rows.push([
    'article hit req/s vs raw GET',
    '0.52–0.65×',
    withRounds('wc-detail'),
    '≥ 0.9×',
    detail === undefined ? undefined : detail >= 0.9,
  ]);
  rows.push([
    'list page hit req/s vs raw GET',
    '0.35×',
    withRounds('wc-list'),
    '≥ 0.8×',
    list === undefined ? undefined : list >= 0.8,
  ]);
  rows.push([
    'server CPU per article hit vs raw GET',
    '2.10× (88 vs 42 µs)',
    ratio(cpu),
    '≤ 1.15×',
    cpu === undefined ? undefined : cpu <= 1.15,
  ]);
  for (const app of apps) {
    const rest = r.memory.atRest[app];
    const mixedRss = r.memory.underMixedLoad[app];
    rows.push([
      `${app} RSS at rest, MiB`,
      app === 'api' ? '163 (tsx)' : '–',
      rest === undefined ? '–' : n0(rest),
      '≤ 100',
      rest === undefined ? undefined : rest <= 100,
    ]);
    rows.push([
      `${app} RSS under mixed load, MiB`,
      '–',
      mixedRss === undefined ? '–' : n0(mixedRss),
      '≤ 140',
      mixedRss === undefined ? undefined : mixedRss <= 140,
    ]);
    const started = bundle(app)?.listeningMs.p50;
    rows.push([
      `${app} spawn → listening (bundle), ms`,
      "– (tsx: twice the bundle's)",
      started === undefined ? '–' : n0(started),
      '≤ 500',
      started === undefined ? undefined : started <= 500,
    ]);
  }
  const s1 = step(1000);
  const s5 = step(5000);
  rows.push([
    'commit → deleted p99 @ 1,000 commits/s, ms',
    '48',
    s1 ? ms(s1.invalidation.p99Ms) : '–',
    '≤ 10',
    s1 ? s1.invalidation.p99Ms <= 10 : undefined,
  ]);
  rows.push([
    `commit → deleted p99 @ 5,000 commits/s, ms`,
    '393 (at 4,500)',
    s5 ? `${ms(s5.invalidation.p99Ms)} (at ${n0(s5.achievedCommitsPerS)})` : '–',
    '≤ 50',
    s5 ? s5.invalidation.p99Ms <= 50 : undefined,
  ]);
  const changes = r.invalidation?.maxSustainedChangesPerS;
  rows.push([
    'sustained row changes/s (10-row transactions, lag < 1 s)',
    '15,000',
    changes === undefined ? '–' : n0(changes),
    '≥ 25,000',
    changes === undefined ? undefined : changes >= 25_000,
  ]);
  const f = r.fanout;
  rows.push([
    'fan-out: all dependent keys deleted after the commit, ms',
    '225 (9,000 keys)',
    f ? `${ms(f.lastMs)} (${n0(f.keys)} keys)` : '–',
    '≤ 100 (10,000 keys)',
    f ? f.lastMs <= 100 && f.keys >= 10_000 : undefined,
  ]);
  const needless = r.precision?.needlessShare;
  rows.push([
    'needless invalidations (byte-identical reload)',
    '96.5 % (first quick run, before the set tags)',
    pct(needless),
    '≤ 5 %',
    needless === undefined ? undefined : needless <= 0.05,
  ]);
  const share = mixed?.reads.ratio;
  rows.push([
    'mixed 95/5 reads/s vs own all-hit reads/s',
    '0.25×',
    ratio(share),
    '≥ 0.5×',
    share === undefined ? undefined : share >= 0.5,
  ]);
  rows.push([
    'mixed 95/5 stale reads',
    '0',
    mixed ? String(mixed.staleReads) : '–',
    '0',
    mixed ? mixed.staleReads === 0 : undefined,
  ]);
  return table(
    ['figure', 'when issue 14 was filed', 'this run', 'target', 'met'],
    rows.map(([what, before, now, target, ok]) => [what, before, now, target, met(ok)]),
  );
}

export function markdown(r: BenchResults): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# walcache benchmarks', '');
  out.push(
    '<!-- Generated by `npm run bench` (scripts/bench/main.ts); edit the generator, not this file. Method and analysis: docs/benchmarks.md. -->',
    '',
  );
  out.push(
    'How each figure is produced, what limits each scenario and what to fix: [docs/benchmarks.md](docs/benchmarks.md).',
    '',
  );
  out.push(
    `Measured ${r.date} with \`${r.command}\` (${r.profile} profile, ${Math.round(r.durationS)} s).`,
    '',
    table(
      ['machine', ''],
      [
        ['CPU', `${m.cpuModel} × ${m.cpuCount}`],
        ['memory', `${m.memoryGiB} GiB`],
        ['OS', m.os],
        ['Node', m.node],
        ['PostgreSQL', m.postgres],
        ['Redis', m.redis],
        ['load generator', m.loadGenerator],
        ['load average at start', String(m.loadAverageAtStart)],
      ],
    ),
    '',
  );
  if (r.notes.length) out.push(...r.notes.map((n) => `> ${n}`), '');
  out.push(
    'Every figure below comes from this one run on this one machine: each ratio divides two numbers measured minutes apart under the same conditions. Everything runs on 127.0.0.1; every process (API, CDC, invalidator, comparison server, load generator, writer, Postgres, Redis) shares the same cores, so absolute numbers are lower than on dedicated hosts. Ratios between two Node routes (the ceilings, walcache, the naive cache) carry over best; ratios involving Postgres depend on it sharing these cores.',
    '',
  );

  out.push(
    '## Issue 14: targets against this run',
    '',
    'Each target of issue 14 ("a hit costs what a raw Redis GET costs; ship compiled; invalidate in single-digit ms"), the figure it was filed with, and this run\'s. The sections below say how each is measured.',
    '',
    issue14Targets(r),
    '',
  );
  out.push('## 1–3. Reads: ceilings, walcache hits, no cache, naive cache-aside', '');
  out.push(
    '"vs ceiling" divides req/s by the ceiling named in the next column (`const`: Hono answering a constant article-sized body; `raw-detail` / `raw-list`: Hono answering one raw Redis GET of the very bytes walcache serves). "busiest" is the CPU each process used during the measured run, in % of one core: a process near 100 % is a saturated event loop. "server CPU µs/req" is the answering process\'s CPU time per request, the figure least moved by other load. "machine CPU" is every process on the machine, the bench\'s or not.' +
      (r.readRounds > 1
        ? ` Each row is the best of ${r.readRounds} interleaved rounds (a neighbour on a shared machine can only lower a run); its "vs ceiling" is the median of the rounds' ratios, each to the ceiling measured just before it in the same round (walcache's article and list hits follow their raw-GET ceilings directly), so a ratio never pairs two different rounds' luckiest moments.`
        : ''),
    '',
    httpTable(r.http, m.cpuCount),
    '',
  );
  const wc = r.http.find((x) => x.id === 'wc-detail');
  const pgd = r.http.find((x) => x.id === 'pg-detail');
  const wcl = r.http.find((x) => x.id === 'wc-list');
  const pgl = r.http.find((x) => x.id === 'pg-list');
  if (wc && pgd && wcl && pgl) {
    out.push(
      `walcache hits vs Postgres only: ${ratio(wc.rps / pgd.rps)} the throughput on article detail, ${ratio(wcl.rps / pgl.rps)} on list pages.`,
      '',
    );
  }

  if (r.mixed.length) {
    out.push('## 4. Mixed: 95 % reads, 5 % writes from a separate writer process', '');
    out.push(
      'Reads: the load generator on article details (all cached at the start). Writes: a separate process updating the titles of the same articles with plain `pg`, at a rate that follows the reads (every 500 ms it becomes 5/95 of the reads served in the previous interval). After each write a checker reads the article once the staleness bound has passed since the commit and compares the title with the one written: an older title is a stale read. The first 20 stale reads of a run are then read again every 100 ms for 10 s: one that turns fresh was a late invalidation (slower than the bound), one that never does was a lost one. "vs all hits" divides the reads/s by the same server\'s all-hit run above (`wc-detail`, `naive-detail`). The naive cache is the same hand-written GET/SET as in scenario 3: nothing invalidates it, which is what its stale-read count shows.',
      '',
      table(
        [
          'target',
          'reads/s',
          'vs all hits',
          'p50 ms',
          'p99 ms',
          'read errors',
          'writes/s',
          'write share',
          'hit ratio',
          'stale reads / checks',
          'of those followed: never fresh within 10 s',
          'bound',
          'busiest (CPU %)',
          'machine CPU',
        ],
        r.mixed.map((x) => [
          x.target,
          n0(x.reads.rps),
          ratio(x.reads.ratio),
          ms(x.reads.p50Ms),
          ms(x.reads.p99Ms),
          String(x.reads.errors),
          n0(x.writeRate),
          pct(x.writeShare),
          pct(x.hitRatio),
          `**${x.staleReads}** / ${x.staleChecks}`,
          x.staleFollowed
            ? `${x.staleStill} of ${x.staleFollowed}${x.staleFreshAfterMaxMs !== undefined ? ` (the others fresh ≤ ${n0(x.staleFreshAfterMaxMs)} ms after commit)` : ''}`
            : '–',
          `${x.staleBoundMs} ms`,
          busiest(x.reads.cpu),
          machineCpu(x.reads.cpu, m.cpuCount),
        ]),
      ),
      '',
    );
    for (const x of r.mixed) {
      if (x.staleExamples.length) out.push(`Stale examples (${x.target}): ${x.staleExamples.join('; ')}`, '');
    }
  }

  const inv = r.invalidation;
  if (inv) {
    out.push('## 5. Invalidation latency and the sustainable change rate', '');
    out.push(
      '`pgbench` commits at a fixed rate (open loop) while a probe process, 25 times a second, reads an article through the API (so it is cached), updates it and records the commit time (`clock_timestamp()` in the UPDATE); a Redis keyspace-event subscriber records when that key is deleted. Replication lag: five times a second the bench writes a logical-decoding message into the WAL and times until the CDC has stored everything up to it and acknowledged its LSN (`confirmed_flush_lsn`). A step is sustained when pgbench kept its schedule (within 5 %, or 3√n for a short low-rate step) and every lag marker was acknowledged within 1 s; a step that is not is run once more before the ramp ends (both rows shown). The probe sample is 25 commits/s, so its p99 rests on ~250 samples per step and the lag quantiles on ~50 markers.',
      '',
      '### Commit rate (one row per transaction)',
      '',
      stepTable(inv.commitSteps, m.cpuCount),
      '',
      '### Change rate (several rows per transaction)',
      '',
      stepTable(inv.changeSteps, m.cpuCount),
      '',
      `Highest sustained: **${inv.maxSustainedCommitsPerS ? n0(inv.maxSustainedCommitsPerS) : '–'} commits/s** (single-row) and **${inv.maxSustainedChangesPerS ? n0(inv.maxSustainedChangesPerS) : '–'} row changes/s** with replication lag under 1 s.`,
      '',
    );
  }

  if (r.fanout) {
    const f = r.fanout;
    out.push('## 6. Fan-out: one rename invalidates thousands of cached articles', '');
    out.push(
      `${n0(f.keys)} articles moved under one author and read through the API (${n0(f.cachedBefore)} cached), then one \`UPDATE users SET name = …\`: first key deleted ${ms(f.firstMs)} ms after the commit, all ${n0(f.keys)} deleted after **${ms(f.lastMs)} ms**; ${f.remainingAfter} still cached afterwards.`,
      '',
    );
    if (f.fill)
      out.push(
        `Filling them beforehand (${n0(f.fill.misses)} misses, 16 at a time, ${f.fill.seconds.toFixed(1)} s): **${n0(f.fill.apiUsPerMiss)} µs of API CPU per miss** (fill protocol, query, encoding), Postgres ${n0(f.fill.postgresUsPerMiss)} µs, Redis ${n0(f.fill.redisUsPerMiss)} µs.`,
        '',
      );
    if (f.job)
      out.push(
        `Its job (${f.job.tags} tags): queued ${ms(f.job.addedMs)} ms after the commit, started at ${ms(f.job.startedMs)} ms, visibility check ${ms(f.job.visibleMs)} ms, invalidation ${ms(f.job.invalidateMs)} ms (the keys are deleted inside it; it ends when the invalidator has the ${n0(f.cachedBefore)} deleted keys back), done at ${ms(f.job.finishedMs)} ms. Deletion times are key events timed at the subscriber's socket (scripts/bench/key-events.ts); Redis deletes the keys in one script and sends the events behind it.`,
        '',
      );
  }

  if (r.ryw) {
    const v = r.ryw.visibilityCheck;
    out.push('## 8. Read your writes: what a token costs', '');
    out.push(
      'Under pgbench committing single-row UPDATEs at the rate shown, one writer (`synchronous_commit = on`) updates one of 20 articles, reads `pg_current_wal_lsn()` and reads the article with it as `X-Walcache-After`, then reads it again without a token (a hit, the reference). "from the cache": token reads answered HIT/MISS because the watermark had passed the commit within `RYW_WAIT_MS` (50 ms); the others were answered from Postgres (BYPASS). "older": token reads without the writer\'s own title (must be 0).',
      '',
      table(
        [
          'commits/s',
          'token read p50 / p99 ms',
          'plain hit p50 / p99 ms',
          'added p50 / p99 ms',
          'from the cache',
          'answers',
          'older',
        ],
        r.ryw.steps.map((s) => [
          n0(s.achievedCommitsPerS),
          `${ms(s.tokenRead.p50Ms)} / ${ms(s.tokenRead.p99Ms)}`,
          `${ms(s.plainRead.p50Ms)} / ${ms(s.plainRead.p99Ms)}`,
          `${ms(s.addedP50Ms)} / ${ms(s.addedP99Ms)}`,
          pct(s.fromCacheShare),
          JSON.stringify(s.outcomes),
          String(s.older),
        ]),
      ),
      '',
      `Visibility check (step 0 of every job, issue 11 item 1) over these runs: ${n0(v.jobs)} jobs queried, **${v.meanMs === undefined ? '–' : ms(v.meanMs)} ms** on average each (\`walcache_invalidator_visibility_check_seconds\`: one query when the transactions are visible, which is what it adds to commit → invalidated)${v.known === undefined ? '' : `; ${n0(v.known)} more ran none, their transactions below an earlier check's snapshot xmin (\`walcache_invalidator_visibility_known_total\`)`}.`,
      '',
    );
  }

  if (r.precision) {
    const p = r.precision;
    out.push('## 9. Precision: invalidations that changed nothing', '');
    out.push(
      `${n0(p.cachedValues)} values cached (the list pages above; the detail, the comments and the author of 200 articles), then ${n0(p.writes)} writes of the workload, one at a time, each waited for through the read-your-writes watermark. Every value an invalidation deleted is read again through the API; one whose new body is byte-identical to the deleted one was **needless**. The CDC skipped ${n0(p.skippedUpdates)} UPDATEs over the whole run for changing no column a resource reads (\`walcache_cdc_updates_skipped_total\`). Target: ≤ 5 % needless.`,
      '',
      table(
        ['write', 'writes', 'values invalidated', 'needless'],
        Object.entries(p.byWrite).map(([k, w]) => [
          k,
          n0(w.writes),
          n0(w.invalidated),
          `${n0(w.needless)} (${pct(w.invalidated ? w.needless / w.invalidated : 0)})`,
        ]),
      ),
      '',
      table(
        ['resource', 'values invalidated', 'needless'],
        Object.entries(p.byResource).map(([k, v]) => [
          k,
          n0(v.invalidated),
          `${n0(v.needless)} (${pct(v.invalidated ? v.needless / v.invalidated : 0)})`,
        ]),
      ),
      '',
      `All writes: ${n0(p.invalidated)} invalidated, **${n0(p.needless)} needless (${pct(p.needlessShare)})**.`,
      '',
    );
  }

  if (r.cluster) {
    const c = r.cluster;
    const q = c.invalidation;
    const one = c.oneServerInvalidation;
    out.push('## 11. Redis Cluster: cache and queue sharded, two APIs, two invalidators', '');
    out.push(
      `A local Redis Cluster (${c.masters} masters + ${c.masters * c.replicasPerMaster} replicas, each its own \`redis-server\` on this machine) holds the cache and the queue (\`REDIS_URL\` = \`QUEUE_REDIS_URL\` = \`redis+cluster://…\`); one CDC on its own slot, two invalidators and two APIs from their bundles. Hits: the load generator on the same article details as scenario 2, split over the APIs. "one server" is scenario 2's \`wc-detail\` row of this run (one API, one Redis). Every process shares the same 2 cores, so the second API competes with the first for CPU rather than adding a machine: the figure shows what the cluster costs per hit, not how far it scales.`,
      '',
      table(
        ['what', 'APIs', 'req/s', 'vs one server', 'p50 ms', 'p99 ms', 'errors', 'CPU % of a core'],
        c.hits.map((h) => [
          `article hits, ${h.label}`,
          String(h.apis),
          n0(h.rps),
          c.oneServerHitRps ? `${(h.rps / c.oneServerHitRps).toFixed(2)}×` : '–',
          ms(h.p50Ms),
          ms(h.p99Ms),
          String(h.errors),
          Object.entries(h.cpu)
            .map(([k, v]) => `${k} ${v}%`)
            .join(', '),
        ]),
      ),
      '',
      `Commit → key deleted on the cluster (probes one at a time, no other writes; the key polled every millisecond): p50 **${ms(q.p50Ms)} ms**, p99 **${ms(q.p99Ms)} ms**, max ${ms(q.maxMs)} ms over ${q.count} probes, ${q.missing} not deleted within 10 s. One server, scenario 5's lowest rate: ${one ? `p50 ${ms(one.p50Ms)} ms, p99 ${ms(one.p99Ms)} ms` : '– (not run)'}.`,
      '',
    );
  }

  out.push('## 7. Memory', '');
  const names = [...new Set([...Object.keys(r.memory.atRest), ...Object.keys(r.memory.underMixedLoad)])];
  out.push(
    'RSS in MiB (Postgres: PSS summed over the postmaster and its backends, so the shared buffer pool counts once). At rest: all processes started, nothing loaded yet. Under load: the maximum sampled every 500 ms during the mixed walcache run. After: once every scenario ran (after the fan-out refilled thousands of keys and every invalidation step ran). The walcache apps run from their bundles; `baseline` is the comparison server (Hono + ioredis + pg and nothing else, run from its source with tsx): the floor of a Node process started that way here.',
    '',
    table(
      ['process', 'at rest', 'under mixed load', 'after all scenarios'],
      names.map((k) => [
        k,
        String(r.memory.atRest[k] ?? '–'),
        String(r.memory.underMixedLoad[k] ?? '–'),
        String(r.memory.atEnd[k] ?? '–'),
      ]),
    ),
    '',
  );

  const st = r.startup;
  if (st) {
    out.push('## 10. Start-up: bundle vs sources', '');
    out.push(
      `Each app started ${st.rounds} times from its bundle (\`node dist/<app>.mjs\`, what \`npm start\` and the image run) and as many from its sources (\`node --import tsx apps/<app>/src/bin.ts\`), in turn, after one discarded round, against the bench's Postgres and Redis with nothing else of walcache running. Spawn → listening: from \`spawn()\` to the first answer of its HTTP port (any status; polled every 5 ms): each program takes its port before it loads the rest of its code and answers 503 \`starting\` until it is started. Spawn → ready: to its \`/healthz\` answering 2xx (the CDC streaming). RSS: once ready (the CDC streaming on its slot) and idle for ${st.settleMs / 1000} s. Median (min–max); the ratio rows are the median of the ratios pair by pair (round i's bundle over round i's sources). Targets: spawn → listening ≤ 500 ms and RSS ≤ 100 MiB per app.`,
      '',
      table(
        ['app', 'run from', 'spawn → listening ms', 'spawn → ready ms', 'RSS at rest MiB'],
        st.rows.map((row) =>
          row.from === 'bundle / sources'
            ? [
                row.app,
                '**bundle / sources**',
                `**${ratio(row.listeningMs.p50)}** (${ratio(row.listeningMs.min)}–${ratio(row.listeningMs.max)})`,
                row.readyMs
                  ? `**${ratio(row.readyMs.p50)}** (${ratio(row.readyMs.min)}–${ratio(row.readyMs.max)})`
                  : '—',
                `**${ratio(row.rssMiB.p50)}** (${ratio(row.rssMiB.min)}–${ratio(row.rssMiB.max)})`,
              ]
            : [
                row.app,
                row.from,
                `${n0(row.listeningMs.p50)} (${n0(row.listeningMs.min)}–${n0(row.listeningMs.max)})`,
                row.readyMs ? `${n0(row.readyMs.p50)} (${n0(row.readyMs.min)}–${n0(row.readyMs.max)})` : '—',
                `${n0(row.rssMiB.p50)} (${n0(row.rssMiB.min)}–${n0(row.rssMiB.max)})`,
              ],
        ),
      ),
      '',
    );
  }

  for (const p of [r.cpuProfile, r.cpuProfileList]) {
    if (!p) continue;
    const kind = p.kind ?? 'article detail';
    out.push(`## Where the hit path spends its time: ${kind}`, '');
    out.push(
      `A second API process, run from its sources with \`node --cpu-prof\`, under the ${kind} hit load (${n0(p.rps)} req/s while profiled; the profiler slows it). Self time, excluding idle (${pct(p.idleShare)} of samples were idle). Profile: \`${p.file}\` (not committed).`,
      '',
      table(
        ['area', 'share of busy time'],
        p.byArea.map((a) => [a.area, pct(a.share)]),
      ),
      '',
      table(
        ['function', 'where', 'called via', 'self ms', 'share'],
        p.top.map((t) => [`\`${t.name}\``, t.where, t.via, n0(t.selfMs), pct(t.share)]),
      ),
      '',
    );
  }
  out.push(
    '## Reproduce',
    '',
    '```',
    'npm run bench            # full: under 15 minutes',
    'npm run bench -- --quick # smoke: under 2 minutes',
    '```',
    '',
  );
  out.push('Raw figures: `bench-results/latest.json`.', '');
  return out.join('\n');
}
