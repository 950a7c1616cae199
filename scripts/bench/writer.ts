/**
 * The bench's writer, in its own process so it never shares an event loop with what it
 * measures. A plain `pg` client that knows nothing about walcache, like any real writer.
 *
 *   mixed: updates article titles at a fixed rate; after each commit + the staleness bound,
 *          reads the article back over HTTP and counts a stale read when the title is older.
 *   probe: reads an article through the API (so it is cached), updates it, and times commit →
 *          that key deleted in Redis (keyspace events), at a fixed rate.
 *
 * Config: one JSON argument. Result: one line `WRITERJSON {...}` on stdout.
 */
import http from 'node:http';
import { decodeEntry, keyspace } from '@walcache/core';
import { Redis } from 'ioredis';
import pg from 'pg';

interface MixedConfig {
  mode: 'mixed';
  databaseUrl: string;
  /** GET `${checkUrl}${id}` answers the article JSON (walcache or the naive cache). */
  checkUrl: string;
  ids: [number, number];
  /** Starting write rate; then `writeShare` of the reads the counter shows, re-read every 500 ms. */
  rate: number;
  writeShare: number;
  /** Answers the server's read count so far: Prometheus text (the API) or `{"reads": n}` (baseline). */
  readCounterUrl: string;
  durationMs: number;
  staleBoundMs: number;
  /** walcache only: where its entries live, to explain a read that never turned fresh. */
  cache?: { redisUrl: string; prefix: string };
}

interface ProbeConfig {
  mode: 'probe';
  databaseUrl: string;
  apiUrl: string;
  redisUrl: string;
  cachePrefix: string;
  ids: [number, number];
  rate: number;
  durationMs: number;
}

type Config = MixedConfig | ProbeConfig;

export interface MixedOutput {
  writes: number;
  writeRate: number;
  checks: number;
  stale: number;
  checkErrors: number;
  /** Checks skipped because Postgres itself held an older title (writes to one row committed out of issue order). */
  reordered: number;
  /** Stale reads followed until fresh (the first STALE_FOLLOWED of them). */
  staleFollowed: number;
  /** Of those, when the new value was first served (ms after the commit). */
  staleLateMs: number[];
  /** Of those, how many still served an older value STALE_FOLLOW_MS after the commit. */
  staleStill: number;
  staleExamples: string[];
}

/** How many stale reads are followed until fresh: enough to tell late from lost, few enough not to add load. */
const STALE_FOLLOWED = 20;
/** How long a stale read is followed: ten times the bound; still stale then means never invalidated. */
const STALE_FOLLOW_MS = 10_000;

export interface ProbeOutput {
  /** commit → key deleted, ms, one per probe whose deletion was seen. */
  latenciesMs: number[];
  /** Probes whose key was not cached at write time (nothing to invalidate, so not timed). */
  skipped: number;
  /** Probes whose key was cached but whose deletion was not seen within the grace period. */
  missing: number;
}

const config = JSON.parse(process.argv[2] ?? '') as Config;
const pool = new pg.Pool({
  connectionString: config.databaseUrl,
  // Four connections: one commit is a round trip of well under a millisecond here, so four
  // sustain thousands of commits per second while keeping commit order close to issue order.
  max: 4,
  application_name: `walcache-bench-writer-${config.mode}`,
});
pool.on('error', (err) => process.stderr.write(`writer pool error: ${err.message}\n`));

/** clock_timestamp() is read inside the UPDATE, just before its autocommit: the commit time to within µs. */
const UPDATE_TITLE = `update articles set title = $1, updated_at = now() where id = $2
  returning (extract(epoch from clock_timestamp()) * 1000)::float8 as at`;

async function updateTitle(id: number, title: string): Promise<number> {
  const { rows } = await pool.query<{ at: number }>(UPDATE_TITLE, [title, id]);
  const at = rows[0]?.at;
  if (at === undefined) throw new Error(`article ${id} does not exist`);
  return at;
}

/**
 * Calls `fn` `rate()` times a second for `durationMs` (open loop: a slow call does not delay
 * the schedule), with at most `maxInflight` calls outstanding. Resolves when all finished.
 */
async function paced(rate: () => number, durationMs: number, maxInflight: number, fn: () => Promise<void>) {
  const t0 = performance.now();
  let last = t0;
  let credit = 0;
  let issued = 0;
  let inflight = 0;
  const all: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    // Why 5 ms ticks: fine enough that 1000/s goes out as 5 per tick, not in bursts of 100.
    const timer = setInterval(() => {
      const now = performance.now();
      if (now - t0 >= durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      // Credit accrues at the current rate; calls refused by the in-flight cap are dropped, not
      // saved up, so a stall is not followed by a burst.
      credit += ((now - last) / 1000) * rate();
      last = now;
      for (; credit >= 1; credit -= 1) {
        if (inflight >= maxInflight) continue;
        issued += 1;
        inflight += 1;
        all.push(
          fn().finally(() => {
            inflight -= 1;
          }),
        );
      }
    }, 5);
  });
  await Promise.all(all);
  return { issued, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Keep-alive HTTP for the writer's own reads (stale checks, probes, the read counter).
 * Why not fetch: this process shares the cores with what it measures, and fetch (undici)
 * cost about 0.7 ms of CPU per check read here, most of the writer's CPU at a few hundred
 * writes per second (docs/benchmarks.md, "Mixed: the writer's own CPU").
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The read count a server reports: the API's cache lookups, or the baseline's own counter. */
async function readCount(url: string): Promise<number> {
  const res = await get(url);
  const text = res.body.toString('utf8');
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  if (text.startsWith('{')) return (JSON.parse(text) as { reads: number }).reads;
  let sum = 0;
  for (const m of text.matchAll(/^walcache_cache_requests_total\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

async function mixed(c: MixedConfig): Promise<MixedOutput> {
  const span = c.ids[1] - c.ids[0] + 1;
  let seq = 0;
  let checks = 0;
  let stale = 0;
  let checkErrors = 0;
  let reordered = 0;
  let followed = 0;
  let staleStill = 0;
  const staleLate: number[] = [];
  const examples: string[] = [];
  const pendingChecks: Promise<void>[] = [];
  /** The sequence number in an article's title as the server answers it now (0: not a bench write). */
  const readSeq = async (id: number) => {
    const res = await get(`${c.checkUrl}${id}`);
    if (res.status !== 200) return undefined;
    const { title } = JSON.parse(res.body.toString('utf8')) as { title: string };
    const cache = res.headers['x-cache'];
    return {
      title,
      seq: Number(/#bench-(\d+)$/.exec(title)?.[1] ?? 0),
      cache: typeof cache === 'string' ? cache : null,
    };
  };
  const redis = c.cache
    ? new Redis(c.cache.redisUrl, { connectionName: 'walcache-bench-stale-check' })
    : undefined;
  redis?.on('error', (err) => process.stderr.write(`stale-check redis: ${err.message}\n`));
  /**
   * What walcache holds for an article that stayed stale: when the entry was stored (before
   * or after the commit: a lost invalidation or a stale fill), the fill's starting sequence,
   * the tag-version marker and whether the key is still registered under its row tag.
   */
  const explain = async (id: number, commitMs: number): Promise<string> => {
    if (!redis || !c.cache) return '';
    const ks = keyspace(c.cache.prefix);
    const valueKey = ks.value(`article:${id}`);
    const [raw, tagv, seq, registered] = await Promise.all([
      redis.getBuffer(valueKey),
      redis.get(ks.tagVersion(`row:articles:${id}`)),
      redis.get(ks.seq),
      redis.sismember(ks.tagSet(`row:articles:${id}`), valueKey),
    ]);
    if (!raw) return ' (entry gone by now)';
    const entry = decodeEntry(raw);
    return (
      ` (entry stored ${Math.round(entry.storedAtMs - commitMs)} ms after the commit by a fill that started at seq ${entry.version};` +
      ` tagv row:articles:${id} = ${tagv ?? 'none'}, seq now ${seq ?? '?'}, key ${registered ? 'still' : 'not'} in its row tag set)`
    );
  };
  const check = async (id: number, written: number, commitMs: number) => {
    const first = await readSeq(id);
    if (!first) {
      checkErrors += 1;
      return;
    }
    checks += 1;
    // A later write to the same article may have landed meanwhile: only older is stale.
    if (first.seq >= written) return;
    // Concurrent writes to one row may commit out of issue order: if Postgres itself holds an
    // older title than this write's, the cache only reflects the database.
    const db = await pool.query<{ title: string }>('select title from articles where id = $1', [id]);
    const dbSeq = Number(/#bench-(\d+)$/.exec(db.rows[0]?.title ?? '')?.[1] ?? 0);
    if (dbSeq < written) {
      reordered += 1;
      return;
    }
    stale += 1;
    const readAfter = Math.round(Date.now() - commitMs);
    // Late or never? The first stale reads are followed until the new title shows (every
    // 100 ms, up to STALE_FOLLOW_MS): an invalidation that ran late differs from one lost.
    if (followed >= STALE_FOLLOWED) return;
    followed += 1;
    let freshAfter: number | undefined;
    while (Date.now() - commitMs < STALE_FOLLOW_MS) {
      await new Promise((r) => setTimeout(r, 100));
      const again = await readSeq(id);
      if (again && again.seq >= written) {
        freshAfter = Math.round(Date.now() - commitMs);
        break;
      }
    }
    if (freshAfter === undefined) staleStill += 1;
    else staleLate.push(freshAfter);
    const evidence = freshAfter === undefined ? await explain(id, commitMs) : '';
    if (examples.length < 5)
      examples.push(
        `article ${id}: #bench-${written} committed, read "${first.title}" (X-Cache ${first.cache ?? '–'}) ${readAfter} ms later; ` +
          (freshAfter === undefined
            ? `still stale ${STALE_FOLLOW_MS / 1000} s after the commit${evidence}`
            : `new title served ${freshAfter} ms after the commit`),
      );
  };
  // Follow the reads: every 500 ms the write rate becomes writeShare/(1 − writeShare) of the
  // reads of the last interval, corrected by what the run so far is off that share, so the
  // whole run's mix is 95/5 whatever throughput the reads reach. The correction matters at
  // the start: the first rate is a guess from the all-hit throughput, far above what the
  // reads reach once writes begin (before it, the runs ended at a 7–11 % write share).
  // 500 ms: a few hundred reads per interval even at low throughput, and only two renders of
  // the API's /metrics per second.
  const perRead = c.writeShare / (1 - c.writeShare);
  let rate = c.rate;
  const startedReads = await readCount(c.readCounterUrl);
  let previous = { n: startedReads, t: performance.now() };
  const follow = setInterval(() => {
    void readCount(c.readCounterUrl).then(
      (n) => {
        const t = performance.now();
        if (t <= previous.t) return;
        const readsPerS = ((n - previous.n) / (t - previous.t)) * 1000;
        // Writes owed (or ahead) against the reads so far, made up over the next interval.
        const owed = (n - startedReads) * perRead - seq;
        rate = Math.max(1, Math.min(readsPerS * perRead + owed * 2, 2 * readsPerS * perRead));
        previous = { n, t };
      },
      (error: unknown) => process.stderr.write(`read counter failed: ${String(error)}\n`),
    );
  }, 500);
  const run = await paced(
    () => rate,
    c.durationMs,
    // 64 in flight: far above what 4 connections keep busy, so the cap only bites when
    // Postgres stalls — then writes are dropped rather than piled up.
    64,
    async () => {
      seq += 1;
      const written = seq;
      const id = c.ids[0] + Math.floor(Math.random() * span);
      const commitMs = await updateTitle(id, `Mixed write #bench-${written}`);
      const delay = Math.max(0, commitMs + c.staleBoundMs - Date.now());
      pendingChecks.push(
        new Promise<void>((resolve) => setTimeout(resolve, delay)).then(() =>
          check(id, written, commitMs).catch((error: unknown) => {
            checkErrors += 1;
            process.stderr.write(`stale check of article ${id} failed: ${String(error)}\n`);
          }),
        ),
      );
    },
  );
  clearInterval(follow);
  await Promise.all(pendingChecks);
  await redis?.quit();
  return {
    writes: run.issued,
    writeRate: run.issued / run.seconds,
    checks,
    stale,
    checkErrors,
    reordered,
    staleFollowed: followed,
    staleLateMs: staleLate,
    staleStill,
    staleExamples: examples,
  };
}

async function probe(c: ProbeConfig): Promise<ProbeOutput> {
  const redis = new Redis(c.redisUrl, { connectionName: 'walcache-bench-probe' });
  const subscriber = new Redis(c.redisUrl, { connectionName: 'walcache-bench-probe-events' });
  for (const r of [redis, subscriber])
    r.on('error', (err) => process.stderr.write(`probe redis: ${err.message}\n`));
  const deletions = new Map<string, number[]>();
  const head = `${c.cachePrefix}:{article:`;
  // UNLINK and DEL both publish a `del` key event (the bench enabled `notify-keyspace-events Eg`).
  subscriber.on('message', (_channel: string, key: string) => {
    if (!key.startsWith(head)) return;
    const at = Date.now();
    const list = deletions.get(key);
    if (list) list.push(at);
    else deletions.set(key, [at]);
  });
  await subscriber.subscribe('__keyevent@0__:del');

  const span = c.ids[1] - c.ids[0] + 1;
  let next = 0;
  let skipped = 0;
  const probes: { key: string; commitMs: number }[] = [];
  await paced(
    () => c.rate,
    c.durationMs,
    // 32 probes in flight: each is a GET + EXISTS + UPDATE of a few ms; 25/s never needs more.
    32,
    async () => {
      const id = c.ids[0] + (next++ % span);
      const key = `${head}${id}}`;
      const res = await get(`${c.apiUrl}/v1/articles/${id}`);
      if (res.status !== 200 || (await redis.exists(key)) === 0) {
        skipped += 1;
        return;
      }
      probes.push({ key, commitMs: await updateTitle(id, `Probe write at ${Date.now()}`) });
    },
  );

  const deletedAfter = (p: { key: string; commitMs: number }) =>
    deletions.get(p.key)?.find((t) => t >= Math.floor(p.commitMs));
  // Why 10 s of grace: a step that is not sustained still drains; its latency is then the figure.
  const graceEnd = Date.now() + 10_000;
  while (Date.now() < graceEnd && probes.some((p) => deletedAfter(p) === undefined)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const latenciesMs: number[] = [];
  let missing = 0;
  for (const p of probes) {
    const at = deletedAfter(p);
    if (at === undefined) missing += 1;
    else latenciesMs.push(at - p.commitMs);
  }
  await subscriber.quit();
  await redis.quit();
  return { latenciesMs, skipped, missing };
}

// Loading this file (tsx compiles it and its imports) costs about a second of CPU: the bench
// starts the writer early and sends SIGUSR2 when the measured run begins, so none of that
// start-up lands in the measurement.
if (config.mode === 'mixed') {
  await pool.query('select 1');
  // The listener first: SIGUSR2 without one would end the process.
  const go = new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
  process.stdout.write('WRITER READY\n');
  await go;
}
const output = config.mode === 'mixed' ? await mixed(config) : await probe(config);
await pool.end();
agent.destroy(); // its idle keep-alive sockets would hold the process open
process.stdout.write(`WRITERJSON ${JSON.stringify(output)}\n`);
