/**
 * The cache's value reads (core reads.ts): the GETs of requests handled in one turn of the
 * event loop go to Redis as one MGET, each request gets its own key's value, and a failure
 * reaches every request of the batch (each then takes the cache's failure path).
 */
import { ValueReads } from '@walcache/core';
import { type RedisServer, startRedis } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  await new Promise((resolve) => redis.once('ready', resolve));
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

async function calls(command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

it('reads issued together go out as one MGET, each answered with its own value', async () => {
  await redis.mset('v:1', 'one', 'v:2', 'two', 'v:3', Buffer.from([0xff, 0x00]));
  const reads = new ValueReads(redis);
  const [mgets, gets] = [await calls('mget'), await calls('get')];
  const values = await Promise.all(['v:1', 'v:missing', 'v:2', 'v:3', 'v:1'].map((k) => reads.get(k)));
  expect(values.map((v) => v?.toString('hex') ?? null)).toEqual([
    Buffer.from('one').toString('hex'),
    null,
    Buffer.from('two').toString('hex'),
    'ff00',
    Buffer.from('one').toString('hex'),
  ]);
  expect(await calls('mget')).toBe(mgets + 1);
  expect(await calls('get')).toBe(gets);
});

it('a read alone is a GET; reads of later turns are batches of their own', async () => {
  const reads = new ValueReads(redis);
  const [mgets, gets] = [await calls('mget'), await calls('get')];
  expect((await reads.get('v:2'))?.toString()).toBe('two');
  expect(await calls('get')).toBe(gets + 1);
  const first = reads.get('v:1');
  await new Promise((resolve) => setImmediate(resolve));
  const second = Promise.all([reads.get('v:1'), reads.get('v:2')]);
  expect((await first)?.toString()).toBe('one');
  expect((await second).map(String)).toEqual(['one', 'two']);
  expect(await calls('mget')).toBe(mgets + 1);
  expect(await calls('get')).toBe(gets + 2);
});

it('a failed MGET fails every read of its batch', async () => {
  const down = new Redis(server.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  down.on('error', () => undefined);
  const reads = new ValueReads(down);
  const results = await Promise.allSettled([reads.get('v:1'), reads.get('v:2')]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  down.disconnect();
});
