import { decodeEntry, parseLsnToken, readWatermark } from '@walcache/core';
import type { CompiledResource } from '@walcache/resources';
import { articleComments, articleDetail, articleList, userProfile } from '../../../test/support/blog.ts';
import { appMetrics, type Ctx, fillAll, getOk, keys } from '../context.ts';
import { progress, sleep } from '../procs.ts';
import type { PrecisionResult } from '../results.ts';
import { pgClient } from '../stack.ts';

/** Articles whose detail, comments and author are cached (the list pages are cached too). */
const ARTICLES = 200;
/** How long one write may take to be invalidated before the scenario gives up on it. */
const WATERMARK_TIMEOUT_MS = 10_000;

/**
 * The writes of the bench's workload, each one statement with its own commit: the mixed
 * scenario's title update (what readers see change) and, as often as comments are written on
 * a blog, a comment edited and a comment added.
 */
const WRITES: { kind: string; weight: number; sql: (id: number, n: number) => [string, unknown[]] }[] = [
  {
    kind: 'article title',
    weight: 6,
    sql: (id, n) => [
      'update articles set title = $1, updated_at = now() where id = $2',
      [`Precision write #${n}`, id],
    ],
  },
  {
    kind: 'comment edited',
    weight: 2,
    sql: (id, n) => [
      'update comments set body = $1 where id = (select min(id) from comments where article_id = $2)',
      [`Edited by precision write #${n}`, id],
    ],
  },
  {
    kind: 'comment added',
    weight: 2,
    sql: (id, n) => [
      `insert into comments (article_id, author_id, body)
       select $1, author_id, $2 from articles where id = $1`,
      [id, `Added by precision write #${n}`],
    ],
  },
];

interface Cached {
  path: string;
  resource: string;
  valueKey: string;
  body: Buffer;
}

/**
 * Scenario 9 (issue 14, precision): every cached value an invalidation deletes is read again
 * through the API; one whose new body is byte-identical to the deleted one was a needless
 * invalidation (nothing it shows had changed). The workload's writes go one at a time, each
 * waited for through the read-your-writes watermark, so every deletion is that write's own.
 */
export async function precisionScenario(ctx: Ctx, writes: number): Promise<PrecisionResult> {
  const { apps, redis, servers } = ctx;
  const writer = await pgClient(servers.pg.url, 'walcache-bench-precision');
  try {
    await writer.query('set synchronous_commit = on');
    const { rows: authorRows } = await writer.query<{ author_id: number }>(
      'select distinct author_id from articles where id <= $1 order by 1',
      [ARTICLES],
    );
    const cached: Cached[] = [];
    const add = (resource: CompiledResource, path: string, params: Record<string, string>) =>
      cached.push({
        path,
        resource: resource.name,
        valueKey: keys.value(resource.key(resource.params.parse(params))),
        body: Buffer.alloc(0),
      });
    for (const path of ctx.paths.list) {
      const q = new URL(path, 'http://x').searchParams;
      add(articleList, path, Object.fromEntries(q));
    }
    for (let id = 1; id <= ARTICLES; id++) {
      add(articleDetail, `/v1/articles/${id}`, { id: String(id) });
      add(articleComments, `/v1/articles/${id}/comments`, { id: String(id) });
    }
    for (const { author_id } of authorRows)
      add(userProfile, `/v1/users/${author_id}`, { id: String(author_id) });
    progress(
      `precision: caching ${cached.length} values (${ctx.paths.list.length} list pages; details, comments and authors of ${ARTICLES} articles)`,
    );
    const valueKeyOf = new Map(cached.map((c) => [c.path, c.valueKey]));
    const valueKey = (path: string) => valueKeyOf.get(path)!;
    await fillAll(
      apps.apiUrl,
      redis,
      cached.map((c) => c.path),
      valueKey,
    );
    await snapshot(redis, cached);

    const byResource: PrecisionResult['byResource'] = {};
    const byWrite: PrecisionResult['byWrite'] = {};
    const totalWeight = WRITES.reduce((s, w) => s + w.weight, 0);
    let random = 0x2545f491;
    const next = () => {
      random = (random * 1103515245 + 12345) >>> 0;
      return random / 2 ** 32;
    };
    progress(`precision: ${writes} writes, each waited for and every deleted value read again`);
    for (let n = 1; n <= writes; n++) {
      const pick = next() * totalWeight;
      let upTo = 0;
      const write =
        WRITES.find((w) => {
          upTo += w.weight;
          return pick < upTo;
        }) ?? WRITES[0]!;
      const id = 1 + Math.floor(next() * ARTICLES);
      const [text, values] = write.sql(id, n);
      await writer.query(text, values);
      const { rows } = await writer.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      await untilWatermark(ctx, parseLsnToken(rows[0]!.lsn)!);
      const exists = await Promise.all(cached.map((c) => redis.exists(c.valueKey)));
      byWrite[write.kind] ??= { writes: 0, invalidated: 0, needless: 0 };
      const w = byWrite[write.kind]!;
      w.writes++;
      for (const [i, c] of cached.entries()) {
        if (exists[i] === 1) continue;
        const body = Buffer.from(await (await getOk(`${apps.apiUrl}${c.path}`)).arrayBuffer());
        const needless = body.equals(c.body);
        byResource[c.resource] ??= { invalidated: 0, needless: 0 };
        const r = byResource[c.resource]!;
        r.invalidated++;
        w.invalidated++;
        if (needless) {
          r.needless++;
          w.needless++;
        }
        c.body = body;
      }
      // A refill may not cache (a refused fill on a busy machine): read those again.
      await fillAll(
        apps.apiUrl,
        redis,
        cached.filter((_, i) => exists[i] === 0).map((c) => c.path),
        valueKey,
      );
    }
    const invalidated = Object.values(byResource).reduce((s, r) => s + r.invalidated, 0);
    const needless = Object.values(byResource).reduce((s, r) => s + r.needless, 0);
    const { walcache_cdc_updates_skipped_total: skipped } = await appMetrics(apps.env.CDC_METRICS_PORT, [
      'walcache_cdc_updates_skipped_total',
    ]);
    const result: PrecisionResult = {
      writes,
      cachedValues: cached.length,
      invalidated,
      needless,
      needlessShare: invalidated ? needless / invalidated : 0,
      byResource,
      byWrite,
      skippedUpdates: skipped,
    };
    progress(
      `precision: ${invalidated} values invalidated by ${writes} writes, ${needless} needless (${(result.needlessShare * 100).toFixed(1)}%)`,
    );
    return result;
  } finally {
    await writer.end();
  }
}

/** The body of each value as the API would serve it, straight from Redis. */
async function snapshot(redis: Ctx['redis'], cached: Cached[]): Promise<void> {
  const raw = await Promise.all(cached.map((c) => redis.getBuffer(c.valueKey)));
  raw.forEach((entry, i) => {
    if (!entry) throw new Error(`${cached[i]!.path} is not cached after the warm-up`);
    cached[i]!.body = decodeEntry(entry).body;
  });
}

/** Until every job up to `lsn` is done (the same watermark a read-your-writes token waits for). */
async function untilWatermark(ctx: Ctx, lsn: bigint): Promise<void> {
  const deadline = Date.now() + WATERMARK_TIMEOUT_MS;
  for (;;) {
    const w = await readWatermark(ctx.redis, keys);
    if (w !== undefined && w >= lsn) return;
    if (Date.now() > deadline) throw new Error(`the watermark did not pass ${lsn} within 10 s`);
    await sleep(2);
  }
}
