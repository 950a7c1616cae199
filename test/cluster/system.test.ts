import { keyspace } from '@walcache/core';
import { type RedisCluster, startRedisCluster, waitFor } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiveSystem, startLiveSystem } from '../support/stack.ts';

// The whole system with the cache and the queue on one Redis Cluster
// (REDIS_URL = QUEUE_REDIS_URL = redis+cluster://…): the apps through their entry functions.
let cluster: RedisCluster;
let live: LiveSystem;
let writer: pg.Client;
let client: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  live = await startLiveSystem({ REDIS_URL: cluster.url, QUEUE_REDIS_URL: cluster.url });
  writer = live.writer;
  client = new Cluster(cluster.seeds);
});
afterAll(async () => {
  client?.disconnect();
  await live?.stop();
  await cluster?.stop();
});

const get = (path: string) => fetch(`${live.stack.api.url}${path}`);
const title = async (id: number) =>
  ((await (await get(`/v1/articles/${id}`)).json()) as { title: string }).title;

describe('cache and queue on a Redis Cluster', () => {
  it('a plain UPDATE reaches the cached value through CDC → BullMQ → invalidator, all on the cluster', async () => {
    expect((await get('/v1/articles/7')).headers.get('x-cache')).toBe('MISS');
    expect((await get('/v1/articles/7')).headers.get('x-cache')).toBe('HIT');
    const keys = keyspace(live.stack.env.CACHE_PREFIX);
    // The value really is in the cluster, and its tag sets on more than one master.
    expect(await client.exists(keys.value('article:7'))).toBe(1);
    await writer.query(`update articles set title = 'cache on a cluster' where id = 7`);
    await waitFor(async () => (await title(7)) === 'cache on a cluster', {
      what: 'the new title',
      timeoutMs: 20_000,
    });
    // The invalidation wrote its marker under the cluster's hash tag, and left no journal.
    const markers = keys.markerKeys(true);
    expect(Number(await client.get(markers.version('row:articles:7')))).toBeGreaterThan(0);
    expect(await client.zscore(markers.expiry, 'row:articles:7')).not.toBeNull();
    for (const node of client.nodes('master'))
      expect(await node.keys(`${keys.prefix}:journal{*`)).toEqual([]);
  });

  it('a list and a batch of lookups are cached and invalidated across slots', async () => {
    const list = await get('/v1/articles?limit=5');
    expect(list.status).toBe(200);
    expect((await get('/v1/articles?limit=5')).headers.get('x-cache')).toBe('HIT');
    const { items } = (await list.json()) as { items: { id: string }[] };
    const first = items[0]?.id;
    // Users 1…6 lie in several slots: the batch reads them one GET each, not one MGET.
    expect((await get('/v1/users?ids=1,2,3,4,5,6')).status).toBe(200);
    expect((await get('/v1/users?ids=1,2,3,4,5,6')).headers.get('x-cache')).toBe('HIT');
    await writer.query(`update articles set title = 'listed on a cluster' where id = $1`, [first]);
    await writer.query(`update users set name = 'batched on a cluster' where id = 4`);
    await waitFor(
      async () => {
        const again = (await (await get('/v1/articles?limit=5')).json()) as { items: { title: string }[] };
        const users = (await (await get('/v1/users?ids=1,2,3,4,5,6')).json()) as {
          items: { name: string }[];
        };
        return (
          again.items[0]?.title === 'listed on a cluster' &&
          users.items.some((u) => u.name === 'batched on a cluster')
        );
      },
      { what: 'the list and the batch to show the new values', timeoutMs: 20_000 },
    );
  });
});
