import { permanentConnectionFailure } from '@walcache/config';
import { Redis, type RedisOptions } from 'ioredis';

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
