import { decodeEntry, keyspace } from '@walcache/core';
import type { Redis } from 'ioredis';
import { articleDetail, articleList } from '../../test/support/blog.ts';
import type { BenchProfile } from './config.ts';
import type { LoadGenerator, LoadSpec } from './load.ts';
import { type Children, progress, sleep } from './procs.ts';
import type { HttpRow } from './results.ts';
import { type Apps, BENCH_NAMES, type Servers } from './stack.ts';
import { cpuMeter, type ProcessGroup } from './sys.ts';

export interface Ctx {
  profile: BenchProfile;
  children: Children;
  servers: Servers;
  apps: Apps;
  redis: Redis;
  load: LoadGenerator;
  groups: {
    api: ProcessGroup;
    cdc: ProcessGroup;
    invalidator: ProcessGroup;
    baseline: ProcessGroup;
    postgres: ProcessGroup;
    redis: ProcessGroup;
  };
  /** API paths of the cached data set: article details and list pages (walked with real cursors). */
  paths: { detail: string[]; list: string[] };
  /** Paths of the raw-GET ceiling, holding the same bodies as `paths`. */
  rawPaths: { detail: string[]; list: string[] };
}

export const keys = keyspace(BENCH_NAMES.CACHE_PREFIX);

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** GET that fails loudly on anything but 200: a warm-up that silently got 500s would measure errors. */
export async function getOk(url: string): Promise<Response> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${await res.text()}`);
  return res;
}

/** The resource key of an API path (`/v1/articles/7` → `article:7`). */
export function resourceKeyOfPath(path: string): string {
  const url = new URL(path, 'http://x');
  const detail = /^\/v1\/articles\/(\d+)$/.exec(url.pathname);
  if (detail) return articleDetail.key(articleDetail.params.parse({ id: detail[1] }));
  return articleList.key(articleList.params.parse(Object.fromEntries(url.searchParams)));
}

/**
 * Walks the list with real cursors and reads every detail once through the API (each a
 * miss that fills), then copies the cached bodies to plain keys for the raw-GET ceiling.
 */
export async function warmCaches(
  ctx: Omit<Ctx, 'paths' | 'rawPaths'>,
): Promise<Pick<Ctx, 'paths' | 'rawPaths'>> {
  const { profile, apps, redis } = ctx;
  progress(
    `filling the cache: ${profile.listPages} list pages (walked by cursor), ${profile.hitIds} articles`,
  );
  const list: string[] = [];
  let cursor: string | null = null;
  while (list.length < profile.listPages) {
    const path: string = `/v1/articles?limit=20${cursor ? `&cursor=${cursor}` : ''}`;
    const page = (await (await getOk(`${apps.apiUrl}${path}`)).json()) as { nextCursor: string | null };
    list.push(path);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  const detail = Array.from({ length: profile.hitIds }, (_, i) => `/v1/articles/${i + 1}`);
  await fillAll(apps.apiUrl, redis, [...list, ...detail]);

  const copy = async (paths: string[], kind: string) => {
    const raw: string[] = [];
    const pipeline = redis.pipeline();
    for (const [i, path] of paths.entries()) {
      const entry = await redis.getBuffer(keys.value(resourceKeyOfPath(path)));
      if (!entry) throw new Error(`${path} is not cached after the warm-up`);
      pipeline.set(`bench:raw:${kind}:${i}`, decodeEntry(entry).body);
      raw.push(`/raw/${kind}/${i}`);
    }
    await pipeline.exec();
    return raw;
  };
  return {
    paths: { detail, list },
    rawPaths: { detail: await copy(detail, 'article'), list: await copy(list, 'list') },
  };
}

/**
 * Reads every path through the API until each is cached. A read may legitimately not cache
 * (a BYPASS while the API's Redis breaker is open on a busy machine, a refused fill), so the
 * paths still missing are read again, a few rounds at most.
 */
export async function fillAll(
  apiUrl: string,
  redis: Pick<Redis, 'exists'>,
  paths: string[],
  valueKey: (path: string) => string = (p) => keys.value(resourceKeyOfPath(p)),
): Promise<void> {
  let missing = paths;
  for (let round = 1; round <= 5 && missing.length > 0; round++) {
    // Back off 1, 2, 4, 8 s between rounds: a lease left by an abandoned fill (a request that
    // timed out on a loaded machine) blocks caching that key until it expires (core leaseMs, 10 s).
    if (round > 1) await sleep(1000 * 2 ** (round - 2));
    // 16 in flight: fills go as fast as the API's pool allows without queueing for minutes.
    await pool(missing, 16, async (path) => {
      await (await getOk(`${apiUrl}${path}`)).arrayBuffer();
    });
    const flags = await Promise.all(missing.map((p) => redis.exists(valueKey(p))));
    missing = missing.filter((_, i) => flags[i] === 0);
    if (missing.length)
      progress(`  ${missing.length} paths not cached after round ${round}; reading them again`);
  }
  if (missing.length) throw new Error(`${missing.length} paths would not cache, e.g. ${missing[0]}`);
}

/** HIT / MISS / BYPASS counts from the API's Prometheus text (all resources). */
export async function cacheCounts(apiUrl: string): Promise<Record<string, number>> {
  const text = await (await getOk(`${apiUrl}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^walcache_cache_requests_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$/gm)) {
    counts[m[1]!] = (counts[m[1]!] ?? 0) + Number(m[2]);
  }
  return counts;
}

/**
 * Each named series in an app's Prometheus text, summed over its labels (one sample when it
 * has none), read from its metrics port (`CDC_METRICS_PORT`, `INVALIDATOR_METRICS_PORT`).
 */
export async function appMetrics<N extends string>(port: string | undefined, names: readonly N[]) {
  const text = await (await getOk(`http://127.0.0.1:${port}/metrics`)).text();
  const read = (name: string) => {
    let total = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')))
      total += Number(m[1]);
    return total;
  };
  return Object.fromEntries(names.map((n) => [n, read(n)])) as Record<N, number>;
}

export function hitRatio(before: Record<string, number>, after: Record<string, number>): number | undefined {
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  const total = d('HIT') + d('MISS') + d('BYPASS');
  return total > 0 ? d('HIT') / total : undefined;
}

export interface MeasureSpec {
  id: string;
  scenario: string;
  label: string;
  baseUrl: string;
  paths: string[];
  /** The process answering (its CPU is reported). */
  server: ProcessGroup;
  ceilingId?: string;
  /** Report the API's hit ratio over the run. */
  walcache?: boolean;
  durationS?: number;
  /** More processes whose CPU is reported (the invalidation pipeline and the writer of a mixed run). */
  extraGroups?: ProcessGroup[];
  /** Called as the measured run starts (after the warm-up): starts the writer of a mixed run. */
  onMeasureStart?: () => void;
}

/**
 * Warm-up (discarded), then one measured closed-loop run. CPU of each process is read just
 * before the generator's run ends, while every process still exists.
 */
export async function measure(ctx: Ctx, spec: MeasureSpec, rows: HttpRow[]): Promise<HttpRow> {
  const { profile, load } = ctx;
  const base: Omit<LoadSpec, 'durationS'> = {
    name: spec.id,
    baseUrl: spec.baseUrl,
    paths: spec.paths,
    connections: profile.connections,
  };
  if (profile.warmupS > 0) {
    progress(`${spec.label}: warm-up ${profile.warmupS}s`);
    const warm = await load.start({ ...base, durationS: profile.warmupS }).result;
    // Errors are reported with the measured run; a warm-up where nothing worked stops the bench.
    if (warm.errors > 0 && warm.errors >= warm.requests) {
      const sample = await fetch(`${spec.baseUrl}${spec.paths[0]}`).then(
        async (r) => `${r.status} ${(await r.text()).slice(0, 300)}`,
        (e: unknown) => String(e),
      );
      throw new Error(`${spec.label}: every warm-up request failed; GET ${spec.paths[0]} → ${sample}`);
    }
    if (warm.errors > 0) progress(`${spec.label}: ${warm.errors} errors during the warm-up`);
  }
  const durationS = spec.durationS ?? profile.runS;
  progress(`${spec.label}: measuring ${durationS}s with ${profile.connections} connections`);
  const before = spec.walcache ? await cacheCounts(ctx.apps.apiUrl) : undefined;
  const run = load.start({ ...base, durationS });
  await run.started;
  spec.onMeasureStart?.();
  const loadGroup: ProcessGroup = { name: 'loadgen', memory: 'rss', pids: () => [run.child.pid] };
  const meter = cpuMeter([
    spec.server,
    loadGroup,
    ctx.groups.redis,
    ctx.groups.postgres,
    ...(spec.extraGroups ?? []),
  ]);
  // Read CPU 300 ms before the end: the generator's process is gone once its result is in.
  const cpuAt = new Promise<Record<string, number>>((resolve) =>
    setTimeout(() => resolve(meter.stop()), Math.max(500, durationS * 1000 - 300)),
  );
  const [result, cpu] = await Promise.all([run.result, cpuAt]);
  const after = spec.walcache ? await cacheCounts(ctx.apps.apiUrl) : undefined;
  const ceiling = spec.ceilingId ? rows.find((r) => r.id === spec.ceilingId) : undefined;
  const row: HttpRow = {
    id: spec.id,
    scenario: spec.scenario,
    label: spec.label,
    route: spec.paths[0] ?? '',
    requests: result.requests,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    maxMs: result.maxMs,
    errors: result.errors,
    ceilingId: ceiling?.id,
    ratio: ceiling ? result.rps / ceiling.rps : undefined,
    cpu,
    serverUsPerRequest: result.rps > 0 ? ((cpu[spec.server.name] ?? 0) / 100 / result.rps) * 1e6 : 0,
    hitRatio: before && after ? hitRatio(before, after) : undefined,
  };
  progress(
    `${spec.label}: ${Math.round(row.rps)} req/s, p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms` +
      `, ${Math.round(row.serverUsPerRequest)} µs CPU/req${row.errors ? `, ${row.errors} errors` : ''}${row.hitRatio !== undefined ? `, hit ratio ${(row.hitRatio * 100).toFixed(1)}%` : ''}` +
      ` | cpu ${Object.entries(cpu)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}`,
  );
  rows.push(row);
  return row;
}
