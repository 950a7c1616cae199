/**
 * Issue 11, item 10: a cache Redis that stops answering without closing its socket (here a
 * SIGSTOPped server: the kernel keeps the connection, nothing replies) must not hold the
 * invalidator's workers. Each command times out, the job attempt fails and BullMQ retries
 * it; once Redis answers again the invalidation completes.
 */

import { type RedisServer, startRedis, waitFor } from '@walcache/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { type Pipeline, startPipeline } from './pipeline.ts';

let servers: Servers;
let cacheRedis: RedisServer;
let p: Pipeline;
let stopped = false;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 5, tags: 2, commentsPerArticle: 1 });
  cacheRedis = await startRedis();
  p = await startPipeline(servers, {
    overrides: { REDIS_URL: cacheRedis.url, QUEUE_REDIS_URL: servers.redis.url },
    invalidator: { auditor: false },
  });
});

afterAll(async () => {
  if (stopped && cacheRedis?.pid) process.kill(cacheRedis.pid, 'SIGCONT');
  await p?.stop();
  await cacheRedis?.stop();
  await servers?.stop();
});

it('a silent cache Redis fails the attempt (command timeout) instead of holding the worker', async () => {
  await p.cache.get(userProfile, { id: '2' });
  expect(await p.cached('user:2')).not.toBeNull();
  const failures: string[] = [];
  p.invalidator.worker.on('failed', (_job, error) => failures.push(error.message));

  const pid = cacheRedis.pid;
  if (!pid) throw new Error('no redis pid');
  process.kill(pid, 'SIGSTOP');
  stopped = true;
  try {
    await p.writer.query("update users set name = 'renamed (item 10)' where id = 2");
    // Why 30 s: without a command timeout the attempt would wait for Redis forever (this
    // bound fails the test); with one it fails within the timeout plus the CDC's delay.
    await waitFor(() => failures.length > 0, { timeoutMs: 30_000, what: 'an attempt to fail' });
  } finally {
    process.kill(pid, 'SIGCONT');
    stopped = false;
  }
  expect(failures[0]).toMatch(/timed out/i);
  // The retry completes the invalidation (a refresh, for this resource) once Redis answers.
  await waitFor(
    async () => {
      const held = await p.cached('user:2');
      return held === null || JSON.parse(held).name === 'renamed (item 10)';
    },
    {
      timeoutMs: 30_000,
      what: 'the retried invalidation',
    },
  );
});
