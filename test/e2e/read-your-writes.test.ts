/**
 * Read-your-writes (issue 15): a writer that passes its commit's `pg_current_wal_lsn()` as
 * `X-Walcache-After` reads its own write, on any API instance, from the cache once the
 * watermark has passed the token and from Postgres (BYPASS) before; the watermark never
 * passes an unfinished job and never goes backwards across restarts.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type InvalidationJob, keyspace, parseLsnToken, readWatermark } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';

/** Write → read pairs of the load test (WALCACHE_RYW_PAIRS=10000 for the issue's figure, about two minutes). */
const PAIRS = Number(process.env.WALCACHE_RYW_PAIRS ?? 2_000);
/** Pair loops, one article each (the load writer updates other articles). */
const LOOPS = 20;
const ARTICLES = 120;

let servers: Servers;
let stack: Stack;
let second: Awaited<ReturnType<typeof startApi>>;
let writer: pg.Client;
let queueRedis: Redis;
let restartedCdc: RunningCdc | undefined;

beforeAll(async () => {
  servers = await startServers({ users: 20, articles: ARTICLES, tags: 3, commentsPerArticle: 1 });
  stack = await startStack(servers);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  second = await startApi(stack.env, silentLogger());
  writer = await writerClient();
  queueRedis = new Redis(stack.env.QUEUE_REDIS_URL);
});

afterAll(async () => {
  await writer?.query('alter system reset synchronous_standby_names').catch(() => undefined);
  await writer?.query('select pg_reload_conf()').catch(() => undefined);
  queueRedis?.disconnect();
  await writer?.end();
  await second?.close();
  await restartedCdc?.close();
  await stack?.stop();
  await servers?.stop();
});

/**
 * The token a writer sends after its commit. The test servers run `synchronous_commit=off`
 * for speed; the writers here set it back to `on` (Postgres' default), where a commit
 * returns once its WAL is flushed, so `pg_current_wal_lsn()` is at or past it (docs/api.md:
 * with asynchronous commit, use `pg_current_wal_insert_lsn()`).
 */
async function walPosition(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  return rows[0]!.lsn;
}

async function writerClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: servers.pg.url });
  await client.connect();
  await client.query('set synchronous_commit = on');
  return client;
}

async function readArticle(url: string, id: number, token?: string, viaQuery = false) {
  const path = `/v1/articles/${id}${token && viaQuery ? `?walcache_after=${token}` : ''}`;
  const res = await fetch(`${url}${path}`, {
    headers: token && !viaQuery ? { 'x-walcache-after': token } : {},
  });
  const text = await res.text();
  return {
    status: res.status,
    cache: res.headers.get('x-cache'),
    watermark: res.headers.get('x-walcache-watermark'),
    body: text,
    title: res.status === 200 ? (JSON.parse(text) as { title: string }).title : undefined,
  };
}

const watermark = () => readWatermark(queueRedis, keyspace(stack.env.CACHE_PREFIX));

describe('a token', () => {
  it("makes the next read answer the writer's own commit, with a watermark at or past it", async () => {
    await readArticle(stack.api.url, 1); // cached before the write
    await writer.query("update articles set title = 'ryw 1' where id = 1");
    const token = await walPosition(writer);
    const answer = await readArticle(stack.api.url, 1, token);
    expect(answer.title).toBe('ryw 1');
    if (answer.cache !== 'BYPASS')
      expect(parseLsnToken(answer.watermark!)! >= parseLsnToken(token)!).toBe(true);
    // The query-parameter form, on the other instance.
    expect((await readArticle(second.url, 1, token, true)).title).toBe('ryw 1');
  });

  it('every /v1 answer carries the watermark, even without a token', async () => {
    const answer = await readArticle(stack.api.url, 2);
    expect(answer.watermark).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('a malformed token is a 400 problem naming the parameter', async () => {
    const header = await fetch(`${stack.api.url}/v1/articles/1`, {
      headers: { 'x-walcache-after': 'yesterday' },
    });
    expect(header.status).toBe(400);
    expect(header.headers.get('content-type')).toMatch(/problem\+json/);
    expect(((await header.json()) as { errors: { parameter: string }[] }).errors[0]?.parameter).toBe(
      'X-Walcache-After',
    );
    const query = await fetch(`${stack.api.url}/v1/articles/1?walcache_after=0/zz`);
    expect(query.status).toBe(400);
    expect(((await query.json()) as { errors: { parameter: string }[] }).errors[0]?.parameter).toBe(
      'walcache_after',
    );
  });
});

describe('the watermark', () => {
  it('does not pass a job that is still waiting; a token behind it is answered from Postgres', async () => {
    await readArticle(stack.api.url, 3);
    await readArticle(stack.api.url, 4);
    await writer.query("alter system set synchronous_standby_names = 'walcache_never_connects'");
    await writer.query('select pg_reload_conf()');
    const hung = new pg.Client({ connectionString: servers.pg.url });
    await hung.connect();
    try {
      // J1: decoded and stored, but its transaction is not visible: the invalidator puts it off.
      await hung.query('set synchronous_commit = on');
      const commit = hung.query("update articles set title = 'ryw held' where id = 3");
      commit.catch(() => undefined);
      let held: Job<InvalidationJob> | undefined;
      await waitFor(
        async () => {
          const jobs = await stack.invalidator.queue.getJobs(['delayed'], 0, 100);
          held = jobs.find((j) => j.data.tags.includes('row:articles:3'));
          return held !== undefined;
        },
        { timeoutMs: 20_000, what: "the held commit's job to be put off" },
      );
      // J2: a later commit that does not wait; its job completes.
      await writer.query('set synchronous_commit = local');
      await writer.query("update articles set title = 'ryw after' where id = 4");
      const token = await walPosition(writer);
      await waitFor(
        async () => {
          const jobs = await stack.invalidator.queue.getJobs(['completed'], 0, 200);
          return jobs.some((j) => j.data.tags.includes('row:articles:4'));
        },
        { timeoutMs: 20_000, what: 'the later job to complete' },
      );
      const w = await watermark();
      expect(w === undefined || w < parseLsnToken(held!.data.lsnTo)!).toBe(true);
      const answer = await readArticle(second.url, 4, token);
      expect(answer.cache).toBe('BYPASS');
      expect(answer.title).toBe('ryw after');
      // What a BYPASS answer reports reflects its load: at or past the token.
      expect(parseLsnToken(answer.watermark!)! >= parseLsnToken(token)!).toBe(true);

      // The standby requirement goes: J1 runs, and W passes both.
      await writer.query('alter system reset synchronous_standby_names');
      await writer.query('select pg_reload_conf()');
      await commit;
      await waitFor(async () => ((await watermark()) ?? 0n) >= parseLsnToken(token)!, {
        timeoutMs: 20_000,
        what: 'the watermark to pass both jobs',
      });
      const after = await readArticle(stack.api.url, 4, token);
      expect(after.cache).not.toBe('BYPASS');
      expect(after.title).toBe('ryw after');
      expect((await readArticle(stack.api.url, 3, token)).title).toBe('ryw held');
    } finally {
      await writer.query('set synchronous_commit = on');
      await hung.end();
    }
  });

  it('a CDC restart never moves it backwards, and it goes on advancing after', async () => {
    await writer.query("update articles set title = 'before restart' where id = 5");
    const before = await walPosition(writer);
    await waitFor(async () => ((await watermark()) ?? 0n) >= parseLsnToken(before)!, {
      timeoutMs: 20_000,
      what: 'the watermark to pass the write',
    });
    const reached = (await watermark())!;
    await stack.cdc.close();
    await writer.query("update articles set title = 'while the CDC is down' where id = 5");
    const token = await walPosition(writer);
    expect((await watermark())!).toBeGreaterThanOrEqual(reached);
    // Nothing has invalidated that commit yet: the token read goes to Postgres.
    const down = await readArticle(stack.api.url, 5, token);
    expect(down.cache).toBe('BYPASS');
    expect(down.title).toBe('while the CDC is down');
    restartedCdc = await startCdc(stack.env, silentLogger(), { heartbeatIntervalMs: 500 });
    await waitFor(async () => ((await watermark()) ?? 0n) >= parseLsnToken(token)!, {
      timeoutMs: 20_000,
      what: 'the watermark to pass the commit made while the CDC was down',
    });
    expect((await watermark())!).toBeGreaterThanOrEqual(reached);
    const up = await readArticle(second.url, 5, token);
    expect(up.cache).not.toBe('BYPASS');
    expect(up.title).toBe('while the CDC is down');
  });
});

describe(`${PAIRS} write → read pairs across two API instances, with another process committing 1 000/s`, () => {
  it("never reads a state older than the writer's own commit", async () => {
    const load = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, '..', 'support', 'commit-load.ts'),
        servers.pg.url,
        '1000',
        String(LOOPS + 10),
        String(ARTICLES),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let loadOutput = '';
    load.stdout?.on('data', (d) => {
      loadOutput += d;
    });
    const outcomes: Record<string, number> = {};
    let retried = 0;
    const older: string[] = [];
    let pairs = 0;
    const started = performance.now();
    try {
      await Promise.all(
        Array.from({ length: LOOPS }, async (_, loop) => {
          const client = await writerClient();
          const id = loop + 1;
          try {
            for (let n = 0; n < PAIRS / LOOPS; n++) {
              const title = `pair ${loop}.${n}`;
              await client.query('update articles set title = $1 where id = $2', [title, id]);
              const token = await walPosition(client);
              const api = n % 2 === 0 ? stack.api.url : second.url;
              let answer = await readArticle(api, id, token);
              // A saturated pool answers 503 with Retry-After (a BYPASS costs a connection):
              // a client retries; it is not a read of an older state.
              for (let retry = 0; answer.status === 503 && retry < 20; retry++) {
                retried += 1;
                await new Promise((r) => setTimeout(r, 50));
                answer = await readArticle(api, id, token);
              }
              outcomes[answer.cache ?? 'none'] = (outcomes[answer.cache ?? 'none'] ?? 0) + 1;
              if (answer.title !== title)
                older.push(`article ${id}: wrote ${title}, read ${answer.title} (${answer.cache})`);
              pairs += 1;
            }
          } finally {
            await client.end();
          }
        }),
      );
    } finally {
      load.stdin?.end();
      await new Promise((r) => load.once('exit', r));
    }
    const seconds = (performance.now() - started) / 1000;
    const fromCache = (outcomes.HIT ?? 0) + (outcomes.MISS ?? 0);
    console.log(
      `read-your-writes: ${pairs} pairs in ${seconds.toFixed(1)} s, ${older.length} older; answered from the cache ${fromCache} (${((100 * fromCache) / pairs).toFixed(1)} %: ${JSON.stringify(outcomes)}; ${retried} retries after a 503); load writer: ${loadOutput.trim()}`,
    );
    expect(pairs).toBe(PAIRS);
    expect(older.slice(0, 10)).toEqual([]);
    expect(loadOutput).toMatch(/^COMMITS \d+/);
  }, 600_000);
});
