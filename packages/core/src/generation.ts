import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { isCluster, type RedisClient } from './connect.ts';
import { isReplyError } from './errors.ts';
import { flushNamespace } from './flush.ts';
import type { Keyspace } from './keys.ts';
import { withCommands } from './scripts.ts';

/**
 * The cache Redis' generation: which server process, with which replication history, holds
 * the namespace (`run_id` and `master_replid` from INFO). A cache Redis that comes back from
 * an RDB/AOF snapshot, or a replica promoted after its master died, may hold values whose
 * invalidation already completed, and a lower `seq`. Every such event changes the
 * generation: a restart gives a new `run_id`, a promoted replica has its own `run_id` (the
 * recorded generation, replicated from its master, names the master's), a replica re-synced
 * from another master takes a new `master_replid`. So a namespace is served only after the
 * generation recorded in it matches the server's; when it does not, one process flushes the
 * namespace and records the new generation, and every process waits for that record.
 *
 * A client re-checks after every reconnect: the connection epoch below counts `close`
 * events, and a hit (or a fill's compare-and-set) is trusted only if it was sent and
 * answered within one verified epoch. ioredis emits `close` before it can reconnect, and
 * resends commands that were in flight before any command issued after the reconnect, so a
 * compare-and-set sent before the drop lands before the check's flush, never after it.
 *
 * On a Redis Cluster the generation is that of every master (each shard can be restored or
 * fail over on its own; a promoted replica may lack the last acknowledged markers and
 * deletions of its dead master), and any change flushes the namespace as for one server.
 * The epoch there also counts a closed connection to any node, a node leaving the client's
 * pool, and a change of the slot → master map: a replica promoted to master serves a shard
 * through a connection that never closed, so a map change must force a new check too.
 */
export interface GenerationEvents {
  /** This process found another generation recorded and flushed the namespace. */
  flushed?(deleted: number, was: string | null, now: string): void;
  /** The server does not tell its generation (INFO refused or without run_id): not checked. */
  unchecked?(reason: string): void;
  /** Redis failed during the check (the caller goes on without the cache). */
  failed?(error: unknown): void;
}

/** Why 30 s: a flush renews the lock at each SCAN step (milliseconds each); a dead flusher's lock frees itself. */
const FLUSH_LOCK_MS = 30_000;
/** How often a process waiting for another's flush re-reads the recorded generation. */
const FLUSH_POLL_MS = 25;

interface ConnectionEpoch {
  value: number;
}

/** One counter per client (many caches may share one client; one listener each is enough). */
const epochs = new WeakMap<RedisClient, ConnectionEpoch>();

function connectionEpoch(redis: RedisClient): ConnectionEpoch {
  let epoch = epochs.get(redis);
  if (!epoch) {
    const counter: ConnectionEpoch = { value: 0 };
    const bump = () => {
      counter.value++;
    };
    redis.on('close', bump);
    if (isCluster(redis)) watchTopology(redis, bump);
    epochs.set(redis, counter);
    epoch = counter;
  }
  return epoch;
}

/** Calls `changed` on every event after which a cluster's shards may be other servers. */
function watchTopology(cluster: Cluster, changed: () => void): void {
  const watched = new WeakSet<Redis>();
  const watch = (node: Redis) => {
    if (watched.has(node)) return;
    watched.add(node);
    node.on('close', changed);
  };
  // Nodes the client already created (it connects on construction), then every new one.
  for (const node of cluster.nodes('all')) watch(node);
  cluster.on('+node', watch);
  cluster.on('-node', changed);
  let map = slotMap(cluster);
  cluster.on('refresh', () => {
    const now = slotMap(cluster);
    if (now !== map) changed();
    map = now;
  });
}

/** The master of every slot as one string (ioredis refreshes it every few seconds and on MOVED). */
function slotMap(cluster: Cluster): string {
  return cluster.slots.map((nodes) => nodes?.[0] ?? '-').join(',');
}

/**
 * The generation of the server, or of every master of a cluster (`host:port=run_id:replid`,
 * sorted); undefined when a server does not say. On a cluster whose client does not know a
 * live master for every slot yet (a failover in progress), it throws: the check fails and
 * is retried, rather than recording the generation of part of the cluster.
 */
export async function serverGeneration(redis: RedisClient): Promise<string | undefined> {
  if (!isCluster(redis)) return nodeGeneration(redis);
  await clusterReady(redis);
  const owners = new Set<string>();
  let complete = true;
  for (let slot = 0; slot < 16384; slot++) {
    const master = redis.slots[slot]?.[0];
    if (master === undefined) complete = false;
    else owners.add(master);
  }
  const masters = redis.nodes('master').filter((node) => owners.has(nodeKey(node)));
  if (!complete || masters.length !== owners.size) {
    // A dead master's slots still point at it until the client reloads its map, which it
    // does on an error or a MOVED for those slots: a process that bypasses the cache until
    // this check passes would send neither, so the check asks for the reload itself.
    redis.refreshSlotsCache();
    throw new Error('the cluster client does not know a live master for every slot yet');
  }
  // All masters at once: a request waits for this check (up to the lease wait) on a cold start.
  const generations = await Promise.all(masters.map((node) => nodeGeneration(node)));
  if (generations.some((g) => g === undefined)) return undefined;
  return masters
    .map((node, i) => `${nodeKey(node)}=${generations[i]}`)
    .sort()
    .join(' ');
}

/**
 * Why 10 s: a cluster client is ready (slot map loaded) within a round trip or two of its
 * seeds; past this the check fails and the next request retries it. A one-server client needs
 * no such wait: its INFO queues until the connection is up.
 */
const CLUSTER_READY_MS = 10_000;

async function clusterReady(cluster: Cluster): Promise<void> {
  if (cluster.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cluster.off('ready', ready);
      reject(new Error('the cluster client did not become ready'));
    }, CLUSTER_READY_MS);
    const ready = () => {
      clearTimeout(timer);
      resolve();
    };
    cluster.once('ready', ready);
  });
}

function nodeKey(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

async function nodeGeneration(redis: Redis): Promise<string | undefined> {
  const [server, replication] = await Promise.all([redis.info('server'), redis.info('replication')]);
  const field = (text: string, name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(text)?.[1];
  const runId = field(server, 'run_id');
  if (!runId) return undefined;
  return `${runId}:${field(replication, 'master_replid') ?? '-'}`;
}

export class GenerationGuard {
  private readonly epoch: ConnectionEpoch;
  private verifiedEpoch = -1;
  private verifying: Promise<boolean> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    private readonly events: GenerationEvents = {},
  ) {
    this.epoch = connectionEpoch(redis);
  }

  /** The current connection epoch if it is verified, else undefined (no await: the hit path). */
  current(): number | undefined {
    return this.verifiedEpoch === this.epoch.value ? this.verifiedEpoch : undefined;
  }

  /** Whether `epoch` (from `current`/`verified`) is still the connection's: nothing reconnected since. */
  holds(epoch: number): boolean {
    return this.epoch.value === epoch && this.verifiedEpoch === epoch;
  }

  /**
   * The verified epoch, checking (and flushing) first when needed; undefined when Redis
   * failed or `waitMs` passed first (the caller then does without the cache). One check at
   * a time per process; a failed one is retried by the next call.
   */
  async verified(waitMs = Number.POSITIVE_INFINITY): Promise<number | undefined> {
    const now = this.current();
    if (now !== undefined) return now;
    this.verifying ??= this.check().finally(() => {
      this.verifying = undefined;
    });
    const pending = this.verifying;
    const ok = Number.isFinite(waitMs)
      ? await Promise.race([pending, new Promise<false>((r) => setTimeout(() => r(false), waitMs).unref())])
      : await pending;
    return ok ? this.current() : undefined;
  }

  private async check(): Promise<boolean> {
    const epoch = this.epoch.value;
    try {
      const generation = await serverGeneration(this.redis);
      if (generation === undefined) {
        this.events.unchecked?.('INFO shows no run_id');
      } else {
        await this.agree(generation);
      }
    } catch (error) {
      if (isReplyError(error) && /unknown command|NOPERM/i.test((error as Error).message)) {
        // A managed Redis or proxy that refuses INFO: a restore cannot be detected there.
        this.events.unchecked?.((error as Error).message);
      } else {
        this.events.failed?.(error);
        return false;
      }
    }
    // A reconnect during the check: the next call checks the new connection.
    if (this.epoch.value !== epoch) return false;
    this.verifiedEpoch = epoch;
    return true;
  }

  /** Returns once `generation` is recorded, after this or another process flushed for it. */
  private async agree(generation: string): Promise<void> {
    for (;;) {
      const recorded = await this.redis.get(this.keys.generation);
      if (recorded === generation) return;
      const token = randomBytes(9).toString('base64url');
      const locked = await this.redis.set(this.keys.generationLock, token, 'PX', FLUSH_LOCK_MS, 'NX');
      if (locked === 'OK') {
        try {
          // Re-read under the lock: another process may have flushed and recorded meanwhile.
          const again = await this.redis.get(this.keys.generation);
          if (again !== generation) {
            const deleted = await flushNamespace(this.redis, this.keys, undefined, async () => {
              await this.redis.pexpire(this.keys.generationLock, FLUSH_LOCK_MS);
            });
            await this.redis.set(this.keys.generation, generation);
            this.events.flushed?.(deleted, again, generation);
          }
        } finally {
          await withCommands(this.redis)
            .walcacheReleaseLease(this.keys.generationLock, token)
            .catch(() => {});
        }
        return;
      }
      await new Promise((r) => setTimeout(r, FLUSH_POLL_MS));
    }
  }
}
