import { parseTagLimits } from '@walcache/cdc';
import type { Env } from '@walcache/config';
import { bodyOf, decodeEntry, type InvalidationJob, type Resource } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import type { Queue } from 'bullmq';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { articleComments, articleDetail, tagList, userProfile } from '../support/blog.ts';
import {
  adminPool,
  type CacheFixture,
  cacheFixture,
  testQueue,
  waitCaughtUp,
} from '../support/cdc-harness.ts';
import { scrape, value } from '../support/metrics.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// What each kind of change invalidates, seen as a user would: a value cached before the
// change is gone (or refreshed) afterwards, and unrelated values stay cached.

let servers: Servers;
let env: Env;
let sql: pg.Pool;
let queue: Queue<InvalidationJob>;
let fixture: CacheFixture;
let cdc: RunningCdc;
let invalidator: Awaited<ReturnType<typeof startInvalidator>>;

beforeAll(async () => {
  servers = await startServers();
  env = testEnv(servers);
  sql = adminPool(servers.pg.url);
  queue = testQueue(env);
  fixture = cacheFixture(env);
  // Users collapse to a table-wide invalidation past 20 rows in one transaction; every other
  // table at the default (CDC_MAX_TAGS_PER_TABLE=default=10000,users=20).
  cdc = await startCdc(env, silentLogger(), {
    heartbeatIntervalMs: 500,
    maxTagsPerTable: parseTagLimits('default=10000,users=20').of,
  });
  invalidator = await startInvalidator(env, silentLogger());
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
});

afterAll(async () => {
  await cdc?.close();
  await invalidator?.close();
  await fixture?.close();
  await queue?.close();
  await sql?.end();
  await servers?.stop();
});

async function cached<P, V>(resource: Resource<Db, P, V>, params: P): Promise<Buffer | null> {
  return fixture.redis.getBuffer(fixture.cache.keys.value(resource.key(params)));
}

async function fill<P, V>(resource: Resource<Db, P, V>, params: P): Promise<void> {
  // A fill is refused (correctly) while the invalidation of an earlier commit touching the
  // key is still in flight, e.g. the insert just before it: read again until it is cached.
  await waitFor(
    async () => {
      await fixture.cache.get(resource, params);
      return (await cached(resource, params)) !== null;
    },
    { timeoutMs: 20_000, what: `${resource.key(params)} to be cached` },
  );
}

/** Gone, or rewritten with what the database says now (refresh policy). */
async function goneOrFresh<P, V>(resource: Resource<Db, P, V>, params: P): Promise<boolean> {
  const raw = await cached(resource, params);
  if (!raw) return true;
  const value = await resource.load(fixture.db, params);
  const fresh = bodyOf(value);
  return decodeEntry(raw).body.equals(fresh);
}

async function waitInvalidated<P, V>(resource: Resource<Db, P, V>, params: P): Promise<void> {
  await waitFor(() => goneOrFresh(resource, params), {
    timeoutMs: 20_000,
    what: `${resource.key(params)} to be invalidated`,
  });
}

/**
 * A later change to an unrelated row, invalidated: proves the jobs of earlier commits are
 * stored (the CDC stores in commit order), not that they have run (jobs run concurrently).
 */
async function barrier(): Promise<void> {
  await fill(articleDetail, { id: '199' });
  await sql.query("update articles set title = title || '.' where id = 199");
  await waitFor(async () => (await cached(articleDetail, { id: '199' })) === null, {
    timeoutMs: 20_000,
    what: 'the barrier change to be invalidated',
  });
}

/** Runs one statement in a transaction of its own; its 32-bit xid, as jobs carry it. */
async function xidOf(statement: string): Promise<number> {
  const client = await sql.connect();
  try {
    await client.query('begin');
    await client.query(statement);
    const { rows } = await client.query<{ xid: string }>(
      'select (pg_current_xact_id()::text::bigint % 4294967296) as xid',
    );
    await client.query('commit');
    return Number(rows[0]?.xid);
  } finally {
    client.release();
  }
}

async function jobTags(): Promise<string[][]> {
  const jobs = await queue.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed']);
  return jobs.map((j) => j?.data.tags ?? []);
}

/** Stream failures the CDC recovered from: `value` throws if the series is missing, never NaN. */
const reconnects = async () =>
  value(await scrape(`http://127.0.0.1:${cdc.metricsPort}/metrics`), 'walcache_cdc_reconnects_total');

describe('row changes', () => {
  it('a comment moved to another article invalidates both articles, not a third', async () => {
    const { rows } = await sql.query<{ id: string; article_id: string }>(
      'select id, article_id from comments where article_id = 3 limit 1',
    );
    const comment = rows[0];
    if (!comment) throw new Error('seed has no comment on article 3');
    await fill(articleDetail, { id: '3' });
    await fill(articleDetail, { id: '4' });
    await fill(articleComments, { id: '4', limit: 20 });
    await fill(articleDetail, { id: '5' });
    await sql.query('update comments set article_id = 4 where id = $1', [comment.id]);
    await waitInvalidated(articleDetail, { id: '3' });
    await waitInvalidated(articleDetail, { id: '4' });
    await waitInvalidated(articleComments, { id: '4', limit: 20 });
    expect(await cached(articleDetail, { id: '5' })).not.toBeNull();
  });

  it('DELETE under REPLICA IDENTITY FULL (comments) invalidates the article it belonged to', async () => {
    const { rows } = await sql.query<{ id: string }>('select id from comments where article_id = 6 limit 1');
    await fill(articleDetail, { id: '6' });
    await fill(articleDetail, { id: '8' });
    await sql.query('delete from comments where id = $1', [rows[0]?.id]);
    await waitInvalidated(articleDetail, { id: '6' });
    expect(await cached(articleDetail, { id: '8' })).not.toBeNull();
  });

  it('DELETE under the default replica identity (users) invalidates the user and what cascades', async () => {
    const { rows: r } = await sql.query<{ r: string }>(
      "select relreplident as r from pg_class where relname = 'users'",
    );
    expect(r[0]?.r).toBe('d');
    const { rows: u } = await sql.query<{ id: string }>(
      "insert into users (name) values ('leaving') returning id",
    );
    const userId = u[0]?.id ?? '';
    const { rows: a } = await sql.query<{ id: string }>(
      "insert into articles (author_id, title, body) values ($1, 'by leaving', 'x') returning id",
      [userId],
    );
    const articleId = a[0]?.id ?? '';
    // The inserts' own invalidations first: a fill racing them is (rightly) not cached.
    await barrier();
    await fill(userProfile, { id: userId });
    await fill(articleDetail, { id: articleId });
    await sql.query('delete from users where id = $1', [userId]);
    await waitInvalidated(userProfile, { id: userId });
    await waitInvalidated(articleDetail, { id: articleId });
  });

  it('a 100 000-row UPDATE in one transaction becomes one table-wide invalidation', async () => {
    // 100 000 comments spread over the articles, inserted in one transaction (itself over-large).
    const inserted = await xidOf(
      `insert into comments (article_id, author_id, body)
       select (array(select id from articles order by id limit 100))[1 + g % 100],
              (array(select id from users order by id limit 30))[1 + g % 30], 'bulk ' || g
       from generate_series(1, 100000) g`,
    );
    await barrier();
    await fill(articleComments, { id: '7', limit: 20 });
    await fill(articleDetail, { id: '7' });
    await fill(userProfile, { id: '2' });
    const updated = await xidOf("update comments set body = body || '!' where body like 'bulk %'");
    await waitInvalidated(articleComments, { id: '7', limit: 20 });
    await waitInvalidated(articleDetail, { id: '7' });
    // A table-wide invalidation of comments does not touch a user's profile.
    expect(await cached(userProfile, { id: '2' })).not.toBeNull();
    // Both bulk transactions travelled as a few tags, never 100 000: each in a table-wide job
    // (one job for both when the CDC merged them, as transactions that wait together are).
    // The keys above may have gone with the insert's job alone (jobs run concurrently, so the
    // barrier does not prove it ran first): the update's job exists once the slot confirms it.
    await waitCaughtUp(sql, env, queue);
    const jobs = await queue.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed']);
    for (const xid of [inserted, updated]) {
      const carrying = jobs.filter((j) => j?.data.xids?.includes(xid));
      expect(carrying.length, `jobs carrying transaction ${xid}`).toBeGreaterThanOrEqual(1);
      for (const job of carrying) {
        expect(job.data.tags).toContain('epoch:comments');
        expect(job.data.tags.length).toBeLessThan(100);
      }
    }
  });

  it('the per-table threshold (users=20) collapses 30 user rows, not 10', async () => {
    await fill(userProfile, { id: '11' });
    await sql.query("update users set bio = 'ten' where id between 1 and 10");
    await barrier();
    expect((await jobTags()).some((t) => t.includes('epoch:users'))).toBe(false);
    await sql.query("update users set bio = 'thirty' where id between 1 and 30");
    await waitInvalidated(userProfile, { id: '11' });
    await waitFor(async () => (await jobTags()).some((t) => t.includes('epoch:users')), {
      what: 'a job with epoch:users',
    });
  });
});

describe('schema changes while streaming', () => {
  it('a new column on a watched table: the stream goes on and invalidates', async () => {
    // A change to articles first, so this connection has seen the table's old shape: the
    // ALTER is then a schema change in the stream, not a first sight of the relation.
    await barrier();
    const before = await reconnects();
    await fill(articleDetail, { id: '9' });
    await sql.query('alter table articles add column summary text');
    await sql.query("update articles set summary = 'new', title = 'with summary' where id = 9");
    await waitInvalidated(articleDetail, { id: '9' });
    expect(cdc.stream.state).toBe('streaming');
    expect(await reconnects()).toBe(before);
  });

  it('a new table added to the publication is ignored without breaking the stream', async () => {
    const before = await reconnects();
    await sql.query('create table audit_log (id bigint primary key, note text)');
    await sql.query(`alter publication ${env.PUBLICATION_NAME} add table audit_log`);
    await sql.query("insert into audit_log values (1, 'a'), (2, 'b')");
    await sql.query('update audit_log set note = note where id = 1');
    await barrier();
    expect(cdc.stream.state).toBe('streaming');
    expect(await reconnects()).toBe(before);
  });

  it('a renamed table is invalidated table-wide under its tracked name, and renamed back', async () => {
    const before = await reconnects();
    const { rows } = await sql.query<{ article_id: string }>('select article_id from article_tags limit 1');
    const id = rows[0]?.article_id ?? '';
    await fill(articleDetail, { id }); // depends on its tags' names
    await sql.query('alter table tags rename to tags_renamed');
    await sql.query("update tags_renamed set name = name || '-x'");
    // Gone (a fresh load would fail while the table is renamed, so no refresh to compare).
    await waitFor(async () => (await cached(articleDetail, { id })) === null, {
      timeoutMs: 20_000,
      what: 'the article to be invalidated by a change under the new name',
    });
    await sql.query('alter table tags_renamed rename to tags');
    await fill(tagList, {});
    await sql.query("update tags set name = name || '-y' where id = (select min(id) from tags)");
    await waitInvalidated(tagList, {});
    expect(cdc.stream.state).toBe('streaming');
    expect(await reconnects()).toBe(before);
  });
});

describe('TRUNCATE', () => {
  it('invalidates every value that depends on the table, and nothing else', async () => {
    await barrier();
    await fill(articleComments, { id: '12', limit: 20 });
    await fill(articleDetail, { id: '13' });
    await fill(userProfile, { id: '3' });
    await sql.query('truncate comments');
    await waitInvalidated(articleComments, { id: '12', limit: 20 });
    await waitInvalidated(articleDetail, { id: '13' });
    expect(await cached(userProfile, { id: '3' })).not.toBeNull();
    const truncateJob = (await jobTags()).find(
      (t) => t.includes('epoch:comments') && t.includes('table:comments') && t.length === 2,
    );
    expect(truncateJob).toBeDefined();
  });
});
