import { Auditor } from '@walcache/auditor';
import { flushNamespace, keyspace } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { type RedisCluster, startRedisCluster } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let cluster: RedisCluster;
let client: Cluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
  client = new Cluster(cluster.seeds);
});
afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

/** Every key of the namespace, from every master (the Cluster object's SCAN reaches one). */
async function keysOnEveryMaster(pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of client.nodes('master')) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
  }
  return found.sort();
}

describe('whole-namespace walks on a Redis Cluster', () => {
  it('empties the namespace on every master and keeps its state keys', async () => {
    const keys = keyspace('wcflush');
    await client.set(keys.seq, '41');
    await client.set(keys.generation, 'g');
    await client.set(keys.inSync('slot_a'), 'source');
    for (let i = 0; i < 200; i += 1) {
      await client.set(keys.value(`r:${i}`), 'v');
      await client.set(keys.lease(`r:${i}`), 't');
      await client.sadd(keys.tagSet(`t${i % 20}`), keys.value(`r:${i}`));
      await client.set(keys.tagVersion(`t${i % 20}`), '40');
    }
    // Another namespace on the same cluster is left alone.
    await client.set('other:{r:1}', 'v');
    const masters = new Set<number>();
    for (const key of await keysOnEveryMaster('wcflush:*')) masters.add((await cluster.masterFor(key)).port);
    expect(masters.size).toBe(3);

    const deleted = await flushNamespace(client, keys);

    expect(deleted).toBe(200 + 200 + 20 + 20);
    expect(await keysOnEveryMaster('wcflush:*')).toEqual(
      [keys.flushed, keys.generation, keys.inSync('slot_a'), keys.seq].sort(),
    );
    // The sequence went up, never back: a fill that started before the flush is refused.
    expect(Number(await client.get(keys.seq))).toBe(42);
    expect(await client.get('other:{r:1}')).toBe('v');
  });

  it('the auditor walks every master: each cached value is visited once per pass', async () => {
    const keys = keyspace('wcaudit');
    const values = Array.from({ length: 60 }, (_, i) => keys.value(`r:${i}`));
    for (const key of values) await client.set(key, 'v');
    const auditor = new Auditor(
      {
        // No resource owns these keys: every check is `skipped`, so Postgres and the queue
        // are never reached; what is under test is which keys the walk yields.
        resourceForKey: () => undefined,
        cacheRedis: client,
        statsRedis: client,
        db: undefined as never,
        queue: undefined as never,
        cachePrefix: 'wcaudit',
        slotName: 'unused',
        logger: silentLogger(),
      },
      { keysPerRound: 7 },
    );
    const seen: string[] = [];
    // Rounds until every master's SCAN has wrapped once (at most a few per master here).
    for (let round = 0; round < 100 && new Set(seen).size < values.length; round += 1) {
      for (const result of await auditor.round()) seen.push(result.key);
    }
    expect([...new Set(seen)].sort()).toEqual([...values].sort());
  });
});
