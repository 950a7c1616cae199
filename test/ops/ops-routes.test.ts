import { INVALIDATE_JOB_NAME, type InvalidationJob } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { type LiveSystem, type Servers, type Stack, startLiveSystem, testEnv } from '../support/stack.ts';
import { apiCacheReady, scrape, statusSchema, sum } from './helpers.ts';

const TOKEN = 'ops-token-for-tests-1234';
let servers: Servers;
let stack: Stack;
let writer: pg.Client;
let live: LiveSystem;

beforeAll(async () => {
  live = await startLiveSystem({ OPS_TOKEN: TOKEN });
  ({ servers, stack, writer } = live);
  await apiCacheReady(stack.api.url);
});

afterAll(async () => {
  await live?.stop();
});

const ops = (path: string, headers: Record<string, string> = {}, init: RequestInit = {}) =>
  fetch(`${stack.api.url}/ops${path}`, { ...init, headers });
const bearer = { authorization: `Bearer ${TOKEN}` };
const basic = (password: string) => ({
  authorization: `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`,
});

describe('ops auth', () => {
  it.each(['/status', '/queues', '/queues/api/queues'])(
    '%s answers 401 problem+json without a token',
    async (path) => {
      const res = await ops(path);
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(((await res.json()) as { type: string }).type).toBe(
        'https://walcache.dev/problems/unauthorized',
      );
    },
  );

  it('asks a browser for Basic auth on the dashboard and scripts for a bearer token on status', async () => {
    expect((await ops('/queues')).headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await ops('/status')).headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  it('answers 401 to a wrong token, as bearer or as a Basic password', async () => {
    expect((await ops('/status', { authorization: 'Bearer wrong-token-123456' })).status).toBe(401);
    expect((await ops('/status', { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await ops('/queues', basic('wrong-token-123456'))).status).toBe(401);
    expect((await ops('/status', { authorization: TOKEN })).status).toBe(401);
  });

  it('lets the right token in, as bearer or as a Basic password', async () => {
    expect((await ops('/status', bearer)).status).toBe(200);
    expect((await ops('/status', basic(TOKEN))).status).toBe(200);
    const page = await ops('/queues', basic(TOKEN));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root">');
  });

  it('does not mount /ops at all when no OPS_TOKEN is configured', async () => {
    const api = await startApi(testEnv(servers), silentLogger());
    try {
      for (const path of ['/ops/status', '/ops/queues']) {
        const res = await fetch(`${api.url}${path}`, { headers: bearer });
        expect(res.status).toBe(404);
      }
    } finally {
      await api.close();
    }
  });
});

describe('GET /ops/status', () => {
  it('reports the queue, the slot, the invalidation latency, the hit ratio and the auditor', async () => {
    // A MISS then a HIT, then a write whose invalidation the latency window will contain.
    await fetch(`${stack.api.url}/v1/articles/3`);
    await fetch(`${stack.api.url}/v1/articles/3`);
    await writer.query("update articles set title = 'status test' where id = 3");
    await waitFor(
      async () => {
        const s = statusSchema.parse(await (await ops('/status', bearer)).json());
        return s.invalidation.jobs >= 1;
      },
      { what: 'a completed invalidation in the status window', timeoutMs: 20_000 },
    );
    const status = statusSchema.parse(await (await ops('/status', bearer)).json());
    expect(status.queue.name).toBe(stack.env.QUEUE_NAME);
    expect(status.queue.counts.completed).toBeGreaterThanOrEqual(1);
    expect(status.cdc).toMatchObject({
      name: stack.env.SLOT_NAME,
      exists: true,
      active: true,
      connected: true,
    });
    expect(status.cdc.lagBytes).toBeGreaterThanOrEqual(0);
    expect(status.cdc.confirmedFlushLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(status.invalidation.p50Seconds).toBeGreaterThanOrEqual(0);
    expect(status.invalidation.p99Seconds).toBeGreaterThanOrEqual(status.invalidation.p50Seconds ?? 0);
    expect(status.cache.hits).toBeGreaterThanOrEqual(1);
    expect(status.cache.misses).toBeGreaterThanOrEqual(1);
    expect(status.cache.hitRatio).toBeGreaterThan(0);
    expect(status.auditor.stale).toBe(0);
  });

  it('shows a failed job, which the dashboard can retry', async () => {
    const failedBefore = sum(
      await scrape(`http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`),
      'walcache_invalidator_jobs_total',
      { outcome: 'failed' },
    );
    // A malformed payload fails at once (no retries): what an operator must see and act on.
    await stack.invalidator.queue.add(
      INVALIDATE_JOB_NAME,
      { v: 1, tags: 'oops' } as unknown as InvalidationJob,
      {
        jobId: 'malformed-ops-test',
        attempts: 1,
      },
    );
    await waitFor(
      async () => {
        const s = statusSchema.parse(await (await ops('/status', bearer)).json());
        return s.queue.failed.recent.some((j) => j.id === 'malformed-ops-test');
      },
      { what: 'the failed job in /ops/status' },
    );
    const status = statusSchema.parse(await (await ops('/status', bearer)).json());
    expect(status.queue.failed.count).toBeGreaterThanOrEqual(1);
    expect(status.queue.failed.recent.find((j) => j.id === 'malformed-ops-test')?.reason).toContain(
      'invalid invalidation job',
    );

    // Inspect it through the dashboard's API, then retry it there: the worker runs it again.
    const queueName = stack.env.QUEUE_NAME;
    const job = await ops(`/queues/api/queues/${queueName}/malformed-ops-test`, bearer);
    expect(job.status).toBe(200);
    expect(JSON.stringify(await job.json())).toContain('invalid invalidation job');
    const retry = await ops(`/queues/api/queues/${queueName}/malformed-ops-test/retry`, bearer, {
      method: 'PUT',
    });
    expect(retry.status).toBe(204);
    await waitFor(
      async () =>
        sum(
          await scrape(`http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`),
          'walcache_invalidator_jobs_total',
          {
            outcome: 'failed',
          },
        ) >=
        failedBefore + 2,
      { what: 'the retried job to run (and fail) again' },
    );
  });

  it('the dashboard cannot drop pending invalidations, but may clean finished jobs', async () => {
    const queueName = stack.env.QUEUE_NAME;
    const base = `/queues/api/queues/${queueName}`;
    // A pending job (delayed a minute so no worker takes it during the test).
    const now = Date.now();
    await stack.invalidator.queue.add(
      INVALIDATE_JOB_NAME,
      {
        v: 1,
        tags: ['row:articles:1'],
        lsnFrom: '0/1',
        lsnTo: '0/1',
        firstCommitMs: now,
        lastCommitMs: now,
        transactions: 1,
        enqueuedMs: now,
      },
      { jobId: 'pending-ops-test', delay: 60_000 },
    );
    for (const [method, path] of [
      ['PUT', `${base}/empty`],
      ['PUT', `${base}/obliterate`],
      ['PUT', `${base}/clean/waiting`],
      ['PUT', `${base}/clean/delayed`],
      ['POST', `${base}/add`],
      ['PATCH', `${base}/pending-ops-test/update-data`],
      ['PUT', `${base}/pending-ops-test/clean`],
    ] as const) {
      const res = await ops(path, { ...bearer, 'content-type': 'application/json' }, { method, body: '{}' });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    expect(await stack.invalidator.queue.getJobState('pending-ops-test')).toBe('delayed');
    const clean = await ops(`${base}/clean/completed`, bearer, { method: 'PUT' });
    expect(clean.status).toBeLessThan(300);
  });

  it('still answers when the queue Redis is unreachable, naming the sections it could not read', async () => {
    const api = await startApi(
      testEnv(servers, { OPS_TOKEN: TOKEN, QUEUE_REDIS_URL: 'redis://127.0.0.1:1' }),
      silentLogger(),
    );
    try {
      const res = await fetch(`${api.url}/ops/status`, { headers: bearer });
      expect(res.status).toBe(200);
      const status = (await res.json()) as Record<string, { error?: string }>;
      expect(status.queue?.error).toBeTruthy();
      expect(status.auditor?.error).toBeTruthy();
      // Postgres is fine: the slot section is there (this deployment has no slot yet).
      expect(status.cdc).toMatchObject({ exists: false, active: false });
    } finally {
      await api.close();
    }
  });
});
