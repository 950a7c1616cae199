import { redisTarget } from '@walcache/config';
import { createRedisClient, keyspace, probeRedisTarget, quitRedis } from '@walcache/core';
import { startRedisCluster } from '@walcache/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/main.ts';

let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

describe('startRedisCluster', () => {
  it('comes up with 3 masters and 3 replicas, and keys spread over the masters round-trip', async () => {
    const client = new Cluster(cluster.seeds);
    try {
      expect(cluster.nodes).toHaveLength(6);
      await client.ping();
      expect(client.nodes('master')).toHaveLength(3);
      const owners = new Set<number>();
      for (let i = 0; i < 30; i += 1) {
        await client.set(`k${i}`, `v${i}`);
        expect(await client.get(`k${i}`)).toBe(`v${i}`);
        owners.add((await cluster.masterFor(`k${i}`)).port);
      }
      // Thirty keys spread over more than one master: the slots are really split.
      expect(owners.size).toBeGreaterThan(1);
      expect(cluster.url).toMatch(/^redis\+cluster:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
    } finally {
      client.disconnect();
    }
  });
});

describe('a redis+cluster:// URL', () => {
  it('becomes a Cluster client through the one factory, with the options on every node', async () => {
    const target = redisTarget(cluster.url);
    expect(await probeRedisTarget(target, 'REDIS_URL')).toBe('ok');
    const client = createRedisClient(target, {
      connectionName: 'walcache-cluster-test',
      maxRetriesPerRequest: 1,
    });
    try {
      expect(client).toBeInstanceOf(Cluster);
      await client.set('{t}:a', '1');
      expect(await client.get('{t}:a')).toBe('1');
      // The connection name reached the node that owns the key.
      const owner = await cluster.masterFor('{t}:a');
      const direct = new Redis({ host: '127.0.0.1', port: owner.port });
      try {
        expect(String(await direct.client('LIST'))).toContain('name=walcache-cluster-test');
      } finally {
        direct.disconnect();
      }
    } finally {
      await quitRedis(client);
    }
  });

  it('an unreachable cluster probes as unreachable, not as a configuration error', async () => {
    expect(await probeRedisTarget(redisTarget('redis+cluster://127.0.0.1:1,127.0.0.1:2'), 'REDIS_URL')).toBe(
      'unreachable',
    );
  });

  it('for the cache, is taken by the CLI: `walcache flush --all` empties the namespace on every master', async () => {
    const keys = keyspace('wccli');
    const direct = new Cluster(cluster.seeds);
    try {
      for (let i = 0; i < 30; i += 1) await direct.set(keys.value(`r:${i}`), 'v');
      let out = '';
      const io = {
        out: (text: string) => {
          out += text;
        },
        err: () => {},
        interactive: false,
        ask: async () => '',
      };
      const code = await run(['flush', '--all', '--yes', '--json'], io, {
        DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db',
        REDIS_URL: cluster.url,
        QUEUE_REDIS_URL: cluster.url,
        CACHE_PREFIX: 'wccli',
      });
      expect(code).toBe(0);
      expect(JSON.parse(out)).toMatchObject({ flushed: 'all', deleted: 30 });
      for (let i = 0; i < 30; i += 1) expect(await direct.exists(keys.value(`r:${i}`))).toBe(0);
    } finally {
      direct.disconnect();
    }
  });
});
