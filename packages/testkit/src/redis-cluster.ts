import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, retryWhilePortTaken, waitFor } from './ports.ts';
import { type RedisServer, startRedis } from './redis.ts';

export interface RedisClusterNode {
  readonly server: RedisServer;
  readonly port: number;
}

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`: every node is a seed. */
  readonly url: string;
  /** Seed nodes in the form ioredis' `Cluster` takes. */
  readonly seeds: { host: string; port: number }[];
  readonly nodes: readonly RedisClusterNode[];
  /** The node currently serving `key`'s slot as master (asks the cluster, so it follows failovers). */
  masterFor(key: string): Promise<RedisClusterNode>;
  /** Waits until every live node reports cluster_state:ok and every slot has a live master. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /**
   * The replicas connected to the master of `key` (every one: after a failover and a rejoin a
   * master may have two), as its `INFO replication` lists them; `online` once in sync.
   */
  replicasOf(key: string): Promise<{ node: RedisClusterNode; online: boolean }[]>;
  /**
   * Promotes one replica of the master of `key` by a manual `CLUSTER FAILOVER` and waits until
   * the cluster serves the slot from it. Returns the new master.
   */
  failover(key: string): Promise<RedisClusterNode>;
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /**
   * How long a master may be unreachable before its replica is promoted. The tests kill
   * masters on purpose; Redis' 15 s default would make each failover test wait that long.
   */
  nodeTimeoutMs?: number;
}

/**
 * Starts a private Redis Cluster (default 3 masters + 3 replicas) on free ports, each node a
 * `startRedis` server in its own temp dir with its own cluster bus port, joined with
 * `redis-cli --cluster create`. Returns once every node agrees the cluster is ok.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const count = masters * (1 + replicas);
  const nodes: RedisClusterNode[] = [];
  try {
    for (let i = 0; i < count; i += 1) {
      // An explicit bus port: the default (port + 10000) may be taken or out of range.
      // Either port may still be taken before the node binds it: then both are chosen again.
      const { server, port } = await retryWhilePortTaken(async () => {
        const port = await freePort();
        const busPort = await freePort();
        return {
          port,
          server: await startRedis({
            port,
            extraArgs: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              'nodes.conf',
              '--cluster-port',
              String(busPort),
              '--cluster-node-timeout',
              String(options.nodeTimeoutMs ?? 1500),
              // A replica that lost its master for a while must still be promotable in tests
              // that kill a master right after a burst of writes.
              '--cluster-replica-validity-factor',
              '0',
              // A replica's first sync starts at once instead of after Redis' default 5 s wait
              // for more replicas: this cluster is not ready before every replica is in sync.
              '--repl-diskless-sync-delay',
              '0',
            ],
          }),
        };
      });
      nodes.push({ server, port });
    }
    await runRedisCli([
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
  } catch (error) {
    await Promise.all(nodes.map((n) => n.server.stop()));
    throw error;
  }

  const withNode = async <T>(port: number, fn: (client: Redis) => Promise<T>): Promise<T> => {
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };

  const live = () => nodes.filter((n) => n.server.pid !== undefined && isAlive(n.server.pid));

  const waitHealthy = async (timeoutMs = 30_000) => {
    await waitFor(
      async () => {
        for (const node of live()) {
          const ok = await withNode(node.port, async (client) => {
            const info = await client.cluster('INFO');
            if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
            // Every slot range must point at a master this node sees as connected.
            const table = String(await client.cluster('NODES'));
            const mastersUp = table
              .split('\n')
              .map((line: string) => line.split(' '))
              .filter((parts) => {
                const flags = (parts[2] ?? '').split(',');
                return (
                  flags.includes('master') && !flags.some((f) => f.startsWith('fail')) && parts.length > 8
                );
              });
            return mastersUp.length >= masters;
          });
          if (!ok) return false;
        }
        return true;
      },
      { timeoutMs, what: 'Redis Cluster state ok on every node' },
    );
  };

  const masterFor = async (key: string): Promise<RedisClusterNode> => {
    for (const node of live()) {
      try {
        const slot = await withNode(node.port, (c) => c.cluster('KEYSLOT', key));
        const shards = await withNode(node.port, (c) => c.cluster('SLOTS'));
        for (const [from, to, master] of shards) {
          if (master && slot >= from && slot <= to) {
            const found = nodes.find((n) => n.port === master[1]);
            if (found) return found;
          }
        }
      } catch {
        // This node is down or not yet converged: ask the next one.
      }
    }
    throw new Error(`no live node knows the master of ${key}`);
  };

  const replicasOf = async (key: string) => {
    const master = await masterFor(key);
    const info = await withNode(master.port, (client) => client.info('replication'));
    return [...info.matchAll(/^slave\d+:ip=[^,]+,port=(\d+),state=(\w+)/gm)].map((m) => {
      const node = nodes.find((n) => n.port === Number(m[1]));
      if (!node) throw new Error(`the master of ${key} lists a replica on port ${m[1]} outside this cluster`);
      return { node, online: m[2] === 'online' };
    });
  };

  await waitHealthy();
  // Slots served is not replicas in sync: until a replica's first sync ends, WAIT on its
  // master answers 0 and a master's death loses what it took, so a test would start on a
  // cluster that is not yet what it means to test.
  await waitFor(
    async () => {
      for (const node of live()) {
        const info = await withNode(node.port, (client) => client.info('replication'));
        if (/^role:slave/m.test(info) && !/^master_link_status:up/m.test(info)) return false;
        if (/^role:master/m.test(info)) {
          const online = [...info.matchAll(/^slave\d+:.*state=online/gm)].length;
          if (online < replicas) return false;
        }
      }
      return true;
    },
    { timeoutMs: 30_000, what: 'every Redis Cluster replica in sync with its master' },
  );
  const seeds = nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  return {
    url: `redis+cluster://${seeds.map((s) => `${s.host}:${s.port}`).join(',')}`,
    seeds,
    nodes,
    masterFor,
    waitHealthy,
    replicasOf,
    async failover(key) {
      const replica = (await replicasOf(key))[0]?.node;
      if (!replica) throw new Error(`the master of ${key} has no replica`);
      const replicaPort = replica.port;
      // Redis aborts a manual failover that has not finished within 5 s, silently (on a busy
      // machine the replica may not catch up in time): ask again until it takes over.
      for (let attempt = 1; ; attempt += 1) {
        await withNode(replicaPort, (client) => client.cluster('FAILOVER'));
        try {
          await waitFor(async () => (await masterFor(key)).port === replicaPort, {
            what: `the replica on port ${replicaPort} to take over ${key}'s slot`,
            timeoutMs: 7_000,
          });
          return replica;
        } catch (error) {
          if (attempt === 3) throw error;
        }
      }
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.server.stop()));
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runRedisCli(args: string[]): Promise<void> {
  const binary = process.env.REDIS_CLI_BIN ?? 'redis-cli';
  await new Promise<void>((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output = (output + d).slice(-4000);
    });
    child.stderr.on('data', (d) => {
      output = (output + d).slice(-4000);
    });
    child.on('error', (error) =>
      reject(new Error(`${binary} could not be started (it ships with redis-server): ${error.message}`)),
    );
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${binary} ${args.slice(0, 2).join(' ')} failed (${code}): ${output}`));
    });
  });
}
