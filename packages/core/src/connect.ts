import { connect as tlsConnect } from 'node:tls';
import { permanentConnectionFailure, type RedisTarget } from '@walcache/config';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/** A cache or queue connection: one server or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * How a process uses a connection (offline queue, retries, timeouts, pipelining, its name),
 * the same for one server and for every node of a cluster.
 */
export type RedisClientOptions = Pick<
  RedisOptions,
  | 'enableOfflineQueue'
  | 'maxRetriesPerRequest'
  | 'commandTimeout'
  | 'connectTimeout'
  | 'enableAutoPipelining'
  | 'connectionName'
  | 'lazyConnect'
  | 'retryStrategy'
>;

/**
 * The one place a Redis client is created from a target (config's `redisTarget`): every
 * app's main.ts and the CLI. A cluster gets the same options: on the Cluster object for what
 * ioredis handles there (offline queue, pipelining, lazy connect, reconnects), on each node
 * for the rest (auth, TLS, retries, timeouts, the connection name).
 */
export function createRedisClient(target: RedisTarget & { kind: 'node' }, options: RedisClientOptions): Redis;
export function createRedisClient(target: RedisTarget, options: RedisClientOptions): RedisClient;
export function createRedisClient(target: RedisTarget, options: RedisClientOptions): RedisClient {
  if (target.kind === 'node') return new Redis({ ...target.options, ...options });
  const { enableOfflineQueue, enableAutoPipelining, lazyConnect, retryStrategy, ...perNode } = options;
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...target.nodeOptions, ...perNode },
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
    // Why 5 s: ioredis otherwise reloads the slot map only on an error or a MOVED, and the
    // cache's generation check (generation.ts) must also learn of a promotion behind a
    // connection that never closed; one CLUSTER SLOTS per 5 s per client is negligible.
    slotsRefreshInterval: 5_000,
    // With TLS the certificates name the hosts the cluster announces: resolving them here
    // would make ioredis connect by IP and fail the name check (ioredis' documented fix).
    ...(target.nodeOptions.tls ? { dnsLookup: (address, done) => done(null, address) } : {}),
  };
  return new Cluster(target.seeds, clusterOptions);
}

/** Whether a client talks to a Redis Cluster (its multi-key commands must then stay in one slot). */
export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * The servers a whole-keyspace walk or a per-server setting must visit: each master of a
 * cluster (a keyless command sent to the Cluster object reaches one node only), or the
 * one server.
 */
export function mastersOf(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/**
 * `probeRedis` for a target: a cluster is probed seed by seed until one answers (every node
 * has the same auth and TLS, so one verdict holds for all). A permanent failure on any
 * seed stops at once.
 */
export async function probeRedisTarget(target: RedisTarget, variable: string): Promise<'ok' | 'unreachable'> {
  if (target.kind === 'node') return probeRedis(target.options, variable);
  for (const seed of target.seeds) {
    if ((await probeRedis({ ...target.nodeOptions, ...seed }, variable)) === 'ok') return 'ok';
  }
  return 'unreachable';
}

/**
 * Why 5 s: a local or same-zone Redis answers the handshake (TLS + AUTH + PING) in
 * milliseconds; past this it is down or unreachable, which the clients' own reconnect
 * loops handle.
 */
const PROBE_TIMEOUT_MS = 5_000;

/**
 * One connection attempt with the clients' settings, at startup: `ok`, or `unreachable`
 * when it may pass (down, refused, timed out). Rejected credentials, an untrusted
 * certificate or a failed TLS handshake throw a ConnectionConfigError naming `variable`:
 * ioredis would otherwise retry them forever, which looks like an outage.
 */
export async function probeRedis(options: RedisOptions, variable: string): Promise<'ok' | 'unreachable'> {
  if (options.tls?.cert) {
    const verdict = await clientCertificateVerdict(options);
    if (verdict instanceof Error) {
      const permanent = permanentConnectionFailure(verdict, variable, 'redis');
      if (permanent) throw permanent;
    }
  }
  const probe = new Redis({
    ...options,
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectionName: 'walcache-probe',
  });
  let lastError: unknown;
  probe.on('error', (error) => {
    lastError = error;
  });
  try {
    await probe.connect();
    await probe.ping();
    return 'ok';
  } catch (error) {
    const permanent =
      permanentConnectionFailure(lastError, variable, 'redis') ??
      permanentConnectionFailure(error, variable, 'redis');
    if (permanent) throw permanent;
    return 'unreachable';
  } finally {
    probe.disconnect();
  }
}

/**
 * Why 2 s: the server's answer to a client certificate arrives within a round trip of the
 * handshake; a server that sends no session ticket leaves this probe inconclusive, and it
 * must not hold the start for longer than that.
 */
const CLIENT_CERT_VERDICT_MS = 2_000;

/**
 * With TLS 1.3 a server checks the client certificate after the handshake has completed on
 * the client's side: its refusal is an alert that races the first command, and ioredis
 * (which writes AUTH at once) usually sees only a reset connection, indistinguishable from
 * an outage. A bare TLS connection that writes nothing gets the alert itself, or the
 * server's session ticket once it accepted the certificate.
 */
async function clientCertificateVerdict(options: RedisOptions): Promise<Error | 'accepted' | 'inconclusive'> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 6379,
      ...options.tls,
    });
    const done = (verdict: Error | 'accepted' | 'inconclusive') => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => done('inconclusive'), CLIENT_CERT_VERDICT_MS);
    socket.once('secureConnect', () => {
      // TLS 1.2 checks the client certificate inside the handshake: completing it is the verdict.
      if (socket.getProtocol() !== 'TLSv1.3') done('accepted');
    });
    socket.once('session', () => done('accepted'));
    socket.once('error', (error) => done(error));
    socket.once('close', () => done('inconclusive'));
  });
}

/**
 * QUIT, or drop the socket when Redis does not answer: a hung Redis must not hold the exit.
 * Why 2 s: a healthy QUIT answers in a millisecond. A client that is not connected is
 * disconnected at once: its QUIT would only wait in the offline queue for a reconnect.
 */
export async function quitRedis(redis: RedisClient): Promise<void> {
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), 2_000);
  });
  const outcome = await Promise.race([redis.quit().then(() => 'quit' as const), gaveUp]).catch(
    () => 'failed' as const,
  );
  clearTimeout(timer);
  if (outcome !== 'quit') redis.disconnect();
}
