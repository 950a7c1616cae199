/**
 * The whole stack while the Redis it uses (cache and queue, with AOF as documented for the
 * queue) is SIGKILLed and restarted under HTTP load: no 5xx and no request error, BYPASS
 * answers while it is down, hits again after; a commit made while Redis was down still
 * reaches the cache once it is back (the CDC did not acknowledge it).
 */
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';

let servers: Servers;
let stack: Stack;

beforeAll(async () => {
  servers = await startServers(
    { users: 10, articles: 30, tags: 3, commentsPerArticle: 1 },
    { appendonly: true },
  );
  stack = await startStack(servers);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
});

afterAll(async () => {
  await stack?.stop();
  await servers?.stop();
});

it('Redis SIGKILLed under load: no 5xx, BYPASS while down, hits again after restart', async () => {
  const statuses = new Map<number, number>();
  const outcomes = { HIT: 0, MISS: 0, BYPASS: 0 } as Record<string, number>;
  const failures: unknown[] = [];
  let stop = false;
  const client = async (n: number) => {
    for (let i = n; !stop; i++) {
      try {
        const res = await fetch(`${stack.api.url}/v1/articles/${1 + (i % 30)}`);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const cache = res.headers.get('x-cache');
        if (cache) outcomes[cache] = (outcomes[cache] ?? 0) + 1;
      } catch (error) {
        failures.push(error);
      }
    }
  };
  const clients = [0, 1, 2, 3].map(client);
  const writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  try {
    await waitFor(() => (outcomes.HIT ?? 0) > 50, { what: 'a warm cache' });
    await servers.redis.kill();
    const bypass = outcomes.BYPASS ?? 0;
    await waitFor(() => (outcomes.BYPASS ?? 0) > bypass + 50, { what: 'BYPASS answers while Redis is down' });
    // A commit while Redis is down: the CDC cannot store its job, so it does not ack it.
    await writer.query("update articles set title = 'Written while Redis was down' where id = 3");
    await servers.redis.startServer();
    // Why 30 s: the CDC's reconnect backoff and BullMQ's reconnect both grow while Redis is
    // down; the first store after the restart may wait for a backoff step to end.
    const hits = outcomes.HIT ?? 0;
    await waitFor(() => (outcomes.HIT ?? 0) > hits + 50, {
      timeoutMs: 30_000,
      what: 'hits after the restart',
    });
    await waitFor(
      async () => {
        const res = await fetch(`${stack.api.url}/v1/articles/3`);
        const body = (await res.json()) as { title: string };
        return res.headers.get('x-cache') === 'HIT' && body.title === 'Written while Redis was down';
      },
      { timeoutMs: 30_000, what: 'the commit made during the outage to reach the cache' },
    );
  } finally {
    stop = true;
    await Promise.all(clients);
    await writer.end();
  }
  expect(failures).toEqual([]);
  expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
  expect(statuses.get(200)).toBeGreaterThan(150);
  // Why 120 s: its waits add up to 10 s (warm) + 10 s (BYPASS) + 30 s (hits) + 30 s (the
  // outage's commit); a test timeout below that would hide which of them a slow run missed.
}, 120_000);
