import { ConnectionConfigError, parseEnv, redisTarget } from '@walcache/config';
import { createRedisClient, probeRedisTarget, quitRedis } from '@walcache/core';
import { startRedisCluster } from '@walcache/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';

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

  it('for the cache, is refused at start by every app naming the variable, until the protocol is slot-correct', async () => {
    const env = parseEnv({
      DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db',
      REDIS_URL: cluster.url,
      QUEUE_REDIS_URL: 'redis://127.0.0.1:1',
    });
    for (const start of [() => startApi(env), () => startCdc(env), () => startInvalidator(env)]) {
      const error = await start().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionConfigError);
      expect((error as ConnectionConfigError).message).toMatch(
        /^REDIS_URL: is a Redis Cluster URL, which is not supported here yet \(docs\/scaling\.md/,
      );
    }
  });
});
