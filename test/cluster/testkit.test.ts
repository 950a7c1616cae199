import { startRedisCluster } from '@walcache/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('startRedisCluster', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = new Cluster(cluster.seeds);
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('comes up with 3 masters and 3 replicas, and keys in every slot range round-trip', async () => {
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
  });
});
