import { createLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../../test/support/stack.ts';
import { startApi } from '../src/main.ts';
import { problemTypes } from '../src/problem.ts';
import { buildApi, type Servers, startServers, type TestApi } from './support.ts';

let servers: Servers;
let writer: pg.Client;
let observer: pg.Client;

beforeAll(async () => {
  servers = await startServers();
  writer = new pg.Client({ connectionString: servers.pg.url });
  observer = new pg.Client({ connectionString: servers.pg.url });
  await Promise.all([writer.connect(), observer.connect()]);
});

afterAll(async () => {
  await Promise.allSettled([writer?.end(), observer?.end()]);
  await servers?.stop();
});

/**
 * Makes every read of `articles` wait: a writer holds an ACCESS EXCLUSIVE lock in an open
 * transaction, the way a migration or a long `ALTER TABLE` would. Returns the release.
 */
async function lockArticles(): Promise<() => Promise<void>> {
  await writer.query('begin');
  await writer.query('lock table articles in access exclusive mode');
  return async () => {
    await writer.query('commit');
  };
}

/** Reads of articles that wait for the lock right now (seen from Postgres itself). */
async function blockedReads(): Promise<number> {
  const { rows } = await observer.query<{ n: string }>(
    "select count(*) as n from pg_locks where not granted and relation = 'articles'::regclass",
  );
  return Number(rows[0]!.n);
}

describe('the database path is bounded', () => {
  let api: TestApi;
  afterAll(async () => api?.close());

  it('beyond the allowed waiters a miss gets 503 overloaded at once, while hits still answer', async () => {
    // One connection and one waiter allowed; a long wait and statement timeout so that only
    // the waiter bound can end a request in this test.
    api = await buildApi(servers, {
      pool: { connectionString: servers.pg.url, max: 1, waitMs: 30_000, statementTimeoutMs: 30_000 },
      maxWaiting: 1,
    });
    expect((await api.app.request('/v1/users/1')).status).toBe(200); // cached before the lock
    const release = await lockArticles();
    try {
      const holding = api.app.request('/v1/articles/1');
      await waitFor(async () => (await blockedReads()) === 1, {
        what: 'the first miss to wait for the lock',
      });
      const waiting = api.app.request('/v1/articles/2');
      await waitFor(() => api.pool.waitingCount === 1, {
        what: 'the second miss to queue for the connection',
      });

      const refused = await api.app.request('/v1/articles/3');
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { type: string }).type).toBe(problemTypes.overloaded);

      const metrics = await (await api.app.request('/metrics')).text();
      expect(metrics).toContain('walcache_api_db_refused_total{app="api-test"} 1');
      expect(metrics).toContain('walcache_api_db_pool_connections{state="waiting",app="api-test"} 1');

      const hit = await api.app.request('/v1/users/1');
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-cache')).toBe('HIT');

      await release();
      expect((await holding).status).toBe(200);
      expect((await waiting).status).toBe(200);
    } finally {
      await writer.query('rollback').catch(() => undefined);
    }
  });
});

describe('a slow query ends at the statement timeout', () => {
  it('503 unavailable instead of a request that hangs', async () => {
    const api = await buildApi(servers, {
      pool: { connectionString: servers.pg.url, statementTimeoutMs: 300 },
    });
    const release = await lockArticles();
    try {
      const res = await api.app.request('/v1/articles/40');
      expect(res.status).toBe(503);
      const body = (await res.json()) as { type: string; detail: string };
      expect(body.type).toBe(problemTypes.unavailable);
      expect(body.detail).toBe('the database did not answer in time');
    } finally {
      await release();
      await api.close();
    }
  });
});

describe('/readyz', () => {
  it('reports the CDC slot lag in bytes, and lagging above the threshold, without failing', async () => {
    const slot = 'api_readyz_test';
    await writer.query("select pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    try {
      await writer.query("insert into tags (name) select 'lag-' || i from generate_series(1, 200) i");
      const calm = await buildApi(servers, { deps: { slotName: slot } });
      const lagging = await buildApi(servers, { deps: { slotName: slot, cdcLagWarnBytes: 1 } });
      const missing = await buildApi(servers, { deps: { slotName: 'no_such_slot' } });
      try {
        // The lag counts WAL the server has written; with asynchronous commit that follows
        // the INSERT's commit within the WAL writer's delay, hence a wait, not a single read.
        type Ready = { checks: { cdc: { status: string; lagBytes: number } } };
        let okBody: Ready | undefined;
        await waitFor(
          async () => {
            const ok = await calm.app.request('/readyz');
            expect(ok.status).toBe(200);
            okBody = (await ok.json()) as Ready;
            return okBody.checks.cdc.lagBytes > 0;
          },
          { what: 'the slot to lag behind the inserts' },
        );
        expect(okBody?.checks.cdc.status).toBe('ok');

        const late = await lagging.app.request('/readyz');
        expect(late.status).toBe(200);
        expect(await late.json()).toMatchObject({ status: 'ready', checks: { cdc: { status: 'lagging' } } });

        expect(await (await missing.app.request('/readyz')).json()).toMatchObject({
          status: 'ready',
          checks: { cdc: { status: 'no-slot' } },
        });
      } finally {
        await Promise.all([calm.close(), lagging.close(), missing.close()]);
      }
    } finally {
      await writer.query('select pg_drop_replication_slot($1)', [slot]);
    }
  });

  it('answers 503 draining once shutdown began', async () => {
    const api = await buildApi(servers, { deps: { draining: () => true } });
    try {
      const res = await api.app.request('/readyz');
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'draining' });
    } finally {
      await api.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('stops accepting connections, lets the in-flight request finish, then closes', async () => {
    let checkouts = 0;
    const warnings: string[] = [];
    const logger = createLogger('api', {
      level: 'warn',
      destination: { write: (line: string) => warnings.push(line) },
    });
    const api = await startApi(testEnv(servers), logger, {
      onPool: (pool) => pool.on('acquire', () => (checkouts += 1)),
    });
    const release = await lockArticles();
    let closed = false;
    let closing: Promise<void> | undefined;
    try {
      const inFlight = fetch(`${api.url}/v1/articles/60`);
      await waitFor(async () => checkouts > 0 && (await blockedReads()) === 1, {
        what: 'the request to wait on the lock',
      });
      closing = api.close().then(() => {
        closed = true;
      });
      await waitFor(
        () =>
          fetch(`${api.url}/healthz`).then(
            () => false,
            () => true,
          ),
        { what: 'new connections to be refused' },
      );
      expect(closed).toBe(false);
      await release();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { id: string }).id).toBe('60');
      await closing;
      expect(closed).toBe(true);
      // Drained by itself: the shutdown deadline did not have to cut any socket.
      expect(warnings.join('')).not.toContain('did not finish in time');
    } finally {
      await writer.query('rollback').catch(() => undefined);
      await closing;
    }
  });
});

describe('Redis down', () => {
  it('answers from Postgres with X-Cache: BYPASS and /readyz says unavailable', async () => {
    const api = await buildApi(servers);
    try {
      expect((await api.app.request('/v1/articles/8')).headers.get('x-cache')).toBe('MISS');
      await servers.redis.stop();
      await waitFor(
        async () => (await api.app.request('/v1/articles/8')).headers.get('x-cache') === 'BYPASS',
        {
          what: 'answers to bypass the dead Redis',
        },
      );
      const res = await api.app.request('/v1/articles/8');
      expect(res.status).toBe(200);
      expect(((await res.json()) as { id: string }).id).toBe('8');
      const ready = await api.app.request('/readyz');
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'unavailable', checks: { postgres: 'ok' } });
    } finally {
      await api.close();
    }
  });
});
