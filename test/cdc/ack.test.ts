import type { Batch } from '@walcache/cdc';
import type { Env } from '@walcache/config';
import { type InvalidationJob, lsnToBigInt } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type { Queue } from 'bullmq';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { ARTICLES, adminPool, confirmedFlush, storedTags, testQueue, USERS } from '../support/cdc-harness.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// The ack rule, observed from Postgres' side: the slot's confirmed_flush_lsn never passes a
// commit whose invalidation job is not stored in Redis. No invalidator runs here, so every
// stored job stays in BullMQ's waiting list where the test can see it.

let servers: Servers;
let env: Env;
let admin: pg.Pool;
let writer: pg.Client;
let queue: Queue<InvalidationJob>;
let cdc: RunningCdc;
/** A store parks here while `hold` is set: the forced race "received, not yet stored". */
let hold: { tag: string; entered: boolean; release: () => void; released: Promise<void> } | undefined;

beforeAll(async () => {
  servers = await startServers(undefined, { appendonly: true });
  env = testEnv(servers);
  admin = adminPool(servers.pg.url);
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  queue = testQueue(env);
  cdc = await startCdc(env, silentLogger(), {
    heartbeatIntervalMs: 200,
    lagIntervalMs: 200,
    maxBackoffMs: 500,
    beforeStore: async (batch: Batch) => {
      if (hold && batch.tags.includes(hold.tag)) {
        hold.entered = true;
        await hold.released;
      }
    },
  });
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
});

afterAll(async () => {
  hold?.release();
  await cdc?.close();
  await queue?.close();
  await writer?.end();
  await admin?.end();
  await servers?.stop();
});

/**
 * Inserts a comment; returns its row tag and an LSN at or after its commit's end.
 * `beforeCommit` runs with the tag before COMMIT: the CDC cannot have seen the change yet.
 */
async function commitComment(
  client: pg.Client,
  body: string,
  beforeCommit?: (tag: string) => void,
): Promise<{ tag: string; after: bigint }> {
  const article = 1 + Math.floor(Math.random() * ARTICLES);
  const author = 1 + Math.floor(Math.random() * USERS);
  await client.query('begin');
  const { rows } = await client.query<{ id: string }>(
    'insert into comments (article_id, author_id, body) values ($1, $2, $3) returning id',
    [article, author, body],
  );
  const tag = `row:comments:${rows[0]?.id}`;
  beforeCommit?.(tag);
  await client.query('commit');
  const { rows: lsn } = await client.query<{ lsn: string }>(
    'select pg_current_wal_insert_lsn()::text as lsn',
  );
  return { tag, after: lsnToBigInt(lsn[0]?.lsn ?? '0/0') };
}

const confirmed = async () => lsnToBigInt((await confirmedFlush(admin, env.SLOT_NAME)) ?? '0/0');
const metric = async (name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${cdc.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').at(-1)) : undefined;
};

describe('the slot is acknowledged only up to stored jobs', () => {
  it('a commit whose store is held is not confirmed, while later commits and keepalives flow', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const before = await confirmed();
    const { tag, after } = await commitComment(writer, 'held', (t) => {
      hold = { tag: t, entered: false, release, released };
    });
    // Whatever fails below, the held store is released: a store left hanging would stall the
    // CDC and fail every later test of this file for a reason that is not theirs.
    try {
      await waitFor(() => hold?.entered === true, { what: 'the store of the held commit to start' });
      // Later commits and heartbeats arrive and queue behind the held store.
      for (let i = 0; i < 5; i++) await commitComment(writer, `behind ${i}`);
      await waitFor(() => lsnToBigInt(cdc.stream.lastReceivedLsn ?? '0/0') > after, {
        what: 'the CDC to receive past the held commit',
      });
      // Lag is visible while the store is held (both gauges come from periodic reads).
      await waitFor(async () => ((await metric('walcache_cdc_slot_lag_seconds')) ?? 0) > 0, {
        what: 'slot lag in seconds to show the held commit',
      });
      await waitFor(async () => ((await metric('walcache_cdc_slot_lag_bytes')) ?? 0) > 0, {
        what: 'slot lag in bytes to show the held commit',
      });

      const whileHeld = await confirmed();
      expect(whileHeld).toBeLessThan(after);
      expect(whileHeld).toBeGreaterThanOrEqual(before);
      expect((await storedTags(queue)).has(tag)).toBe(false);
    } finally {
      release();
      hold = undefined;
    }
    await waitFor(async () => (await confirmed()) >= after, { what: 'the slot to pass the released commit' });
    expect((await storedTags(queue)).has(tag)).toBe(true);
  });

  it('during a storm, every commit the slot has confirmed is in a stored job', async () => {
    const writes: { tag: string; after: bigint }[] = [];
    let violations: string[] = [];
    let checks = 0;
    let done = false;
    const storm = (async () => {
      for (let i = 0; i < 300; i++) writes.push(await commitComment(writer, `storm ${i}`));
      done = true;
    })();
    // Checker: read the confirmed position first, then the stored jobs. Everything confirmed
    // before the read must already be in Redis.
    while (!done || checks === 0) {
      const c = await confirmed();
      const tags = await storedTags(queue);
      checks += 1;
      violations = violations.concat(
        writes.filter((w) => w.after <= c && !tags.has(w.tag)).map((w) => `${w.tag} confirmed, not stored`),
      );
    }
    await storm;
    const last = writes.at(-1)?.after ?? 0n;
    await waitFor(async () => (await confirmed()) >= last, { what: 'the slot to confirm the storm' });
    const tags = await storedTags(queue);
    expect(violations).toEqual([]);
    expect(writes.filter((w) => !tags.has(w.tag))).toEqual([]);
    expect(checks).toBeGreaterThan(3);
  });

  it('with Redis down nothing is confirmed; after it returns the commit is stored and confirmed', async () => {
    const reconnectsBefore = (await metric('walcache_cdc_reconnects_total')) ?? 0;
    await servers.redis.kill();
    const { tag, after } = await commitComment(writer, 'while redis is down');
    // The CDC tries to store, fails, and retries (reconnects) at least twice.
    await waitFor(
      async () => ((await metric('walcache_cdc_reconnects_total')) ?? 0) >= reconnectsBefore + 2,
      {
        timeoutMs: 20_000,
        what: 'the CDC to fail and retry while Redis is down',
      },
    );
    await commitComment(writer, 'still down');
    expect(await confirmed()).toBeLessThan(after);

    await servers.redis.startServer();
    await waitFor(async () => (await confirmed()) >= after, {
      timeoutMs: 30_000,
      what: 'the slot to pass the commit once Redis is back',
    });
    expect((await storedTags(queue)).has(tag)).toBe(true);
    // Why 80 s: its waits add up to 20 s (retries while down) + 30 s (caught up after).
  }, 80_000);
});

describe('group commit', () => {
  it('commits that arrive while an enqueue is in flight go out as one job', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    await commitComment(writer, 'first', (t) => {
      hold = { tag: t, entered: false, release, released };
    });
    await waitFor(() => hold?.entered === true, { what: 'the first store to be in flight' });
    const behind: { tag: string; after: bigint }[] = [];
    for (let i = 0; i < 50; i++) behind.push(await commitComment(writer, `grouped ${i}`));
    await waitFor(() => lsnToBigInt(cdc.stream.lastReceivedLsn ?? '0/0') >= (behind.at(-1)?.after ?? 0n), {
      what: 'the CDC to receive the 50 commits',
    });
    release();
    hold = undefined;
    await waitFor(async () => (await confirmed()) >= (behind.at(-1)?.after ?? 0n), {
      what: 'the grouped commits to be confirmed',
    });
    const jobs = await queue.getJobs(['waiting']);
    const grouped = jobs.filter((j) => behind.some((b) => j?.data.tags.includes(b.tag)));
    expect(grouped).toHaveLength(1);
    expect(grouped[0]?.data.transactions).toBeGreaterThanOrEqual(50);
    expect(grouped[0]?.data.lsnFrom).not.toBe(grouped[0]?.data.lsnTo);
  });
});

describe('graceful shutdown', () => {
  /** Parks the store of the batch carrying `tag` until the returned release is called. */
  function holdStoreOf(tag: string): () => void {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    hold = { tag, entered: false, release, released };
    return release;
  }

  it('finishes the in-flight enqueue and acknowledges it before exiting', async () => {
    let release!: () => void;
    const { tag, after } = await commitComment(writer, 'shutdown', (t) => {
      release = holdStoreOf(t);
    });
    await waitFor(() => hold?.entered === true, { what: 'the store to start' });
    let closed = false;
    const closing = cdc.close().then(() => {
      closed = true;
    });
    // close() waits for the enqueue in flight: it cannot resolve while the store is held.
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    release();
    hold = undefined;
    await closing;
    expect((await storedTags(queue)).has(tag)).toBe(true);
    expect(await confirmed()).toBeGreaterThanOrEqual(after);
  });

  it('a store that hangs does not hold the exit, and is not acknowledged; the next start replays it', async () => {
    // A CDC whose store never returns for this commit (a Redis that accepts and never answers).
    const hung = await startCdc(env, silentLogger(), {
      heartbeatIntervalMs: 200,
      stopFlushMs: 300,
      beforeStore: async (batch: Batch) => {
        if (hold && batch.tags.includes(hold.tag)) {
          hold.entered = true;
          await hold.released;
        }
      },
    });
    cdc = hung;
    await waitFor(() => hung.stream.state === 'streaming', { what: 'the CDC to stream' });
    const { tag, after } = await commitComment(writer, 'shutdown', (t) => {
      holdStoreOf(t); // never released
    });
    await waitFor(() => hold?.entered === true, { what: 'the store to hang' });
    await hung.close(); // resolves although the store never does
    expect(await confirmed()).toBeLessThan(after);
    expect((await storedTags(queue)).has(tag)).toBe(false);

    hold = undefined;
    cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 200 });
    await waitFor(async () => (await confirmed()) >= after, { what: 'the replayed commit to be confirmed' });
    expect((await storedTags(queue)).has(tag)).toBe(true);
  });
});

describe('exact acknowledgement', () => {
  it('a commit whose record starts right where the acknowledged one ends is replayed after a crash', async () => {
    await cdc.close();
    const other = new pg.Client({ connectionString: servers.pg.url });
    await other.connect();
    let adjacent = false;
    try {
      // Retried a few times: a background WAL record (rare) may land between the two commits.
      for (let attempt = 0; attempt < 5 && !adjacent; attempt++) {
        // No heartbeats: nothing else may write WAL between the two commit records.
        const quiet = await startCdc(env, silentLogger(), {
          heartbeatIntervalMs: 0,
          lagIntervalMs: 0,
          stopFlushMs: 300,
          beforeStore: async (batch: Batch) => {
            if (hold && batch.tags.includes(hold.tag)) {
              hold.entered = true;
              await hold.released;
            }
          },
        });
        cdc = quiet;
        await waitFor(() => quiet.stream.state === 'streaming', { what: 'the CDC to stream' });
        // A writes first and commits second; B commits in between and is acknowledged alone.
        await other.query('begin');
        const { rows: a } = await other.query<{ id: string }>(
          "insert into comments (article_id, author_id, body) values (1, 1, 'A') returning id",
        );
        const tagA = `row:comments:${a[0]?.id}`;
        const b = await commitComment(writer, 'B');
        await waitFor(async () => (await confirmed()) >= b.after, { what: "B's commit to be acknowledged" });
        const confirmedB = await confirmed();
        let release!: () => void;
        const released = new Promise<void>((r) => {
          release = r;
        });
        hold = { tag: tagA, entered: false, release, released };
        await other.query('commit');
        await waitFor(() => hold?.entered === true, { what: "A's store to be held" });
        // A crash with A received but not stored: B acknowledged, A not.
        await quiet.close();
        hold = undefined;
        // Acknowledged exactly at B's commit end, which is where A's commit record starts.
        expect(confirmedB).toBe(b.after);
        adjacent = (await confirmed()) === b.after;

        cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 200 });
        await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream again' });
        // Everything written so far is confirmed: A is stored now, or it was skipped for good.
        const mark = await commitComment(writer, 'mark');
        await waitFor(async () => (await confirmed()) >= mark.after, { what: 'the slot to pass the mark' });
        expect((await storedTags(queue)).has(tagA), `${tagA} replayed and stored`).toBe(true);
        if (!adjacent) await cdc.close();
      }
    } finally {
      await other.end();
    }
    expect(adjacent, 'B and A committed back to back in the WAL').toBe(true);
  });
});
