import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { redactSecrets } from './redact.ts';

/**
 * The TLS material of the Redis connections, as files (how container secrets and managed
 * services hand them out). The same files serve the cache and the queue Redis: a CA file
 * may hold several certificates, one per provider.
 */
export interface RedisTlsFiles {
  REDIS_TLS_CA_FILE?: string | undefined;
  REDIS_TLS_CERT_FILE?: string | undefined;
  REDIS_TLS_KEY_FILE?: string | undefined;
}

/**
 * What ioredis needs to reach one server: a structural subset of its `RedisOptions`, so this
 * package does not depend on ioredis. For a Redis Cluster the same object minus host/port is
 * the `redisOptions` every node gets (auth and TLS are per node).
 */
export interface RedisConnectionOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: ConnectionOptions;
}

/**
 * The one place a Redis URL and the TLS environment become client options, for the cache,
 * the queue, bull-board and the CLI alike. `redis://[user:password@]host[:port][/db]`;
 * `rediss://` adds TLS, verified against REDIS_TLS_CA_FILE (else the system CAs) and, when
 * the server asks for one, presenting REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE.
 */
export function redisConnectionOptions(url: string, tls: RedisTlsFiles = {}): RedisConnectionOptions {
  const parsed = new URL(url);
  const options: RedisConnectionOptions = {
    host: parsed.hostname.replace(/^\[(.+)\]$/, '$1') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.replace(/^\//, '');
  if (db) options.db = Number(db);
  if (parsed.protocol === 'rediss:') {
    const file = (variable: keyof RedisTlsFiles) => {
      const path = tls[variable];
      return path === undefined ? undefined : readFileSync(path, 'utf8');
    };
    const ca = file('REDIS_TLS_CA_FILE');
    const cert = file('REDIS_TLS_CERT_FILE');
    const key = file('REDIS_TLS_KEY_FILE');
    options.tls = {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      // SNI only for names: a literal IP is not a valid server name (RFC 6066), and the
      // certificate check still matches it against the certificate's IP SANs.
      ...(/^[\d.]+$|:/.test(options.host) ? {} : { servername: options.host }),
    };
  }
  return options;
}

/** A Redis Cluster seed node; ioredis discovers the others from it. */
export interface RedisSeed {
  host: string;
  port: number;
}

/**
 * Where a Redis URL points: one server, or a Redis Cluster given by its seed nodes.
 * `nodeOptions` is what every cluster node gets (ioredis' `redisOptions`): auth and TLS are
 * per node, and a cluster has only database 0.
 */
export type RedisTarget =
  | { kind: 'node'; options: RedisConnectionOptions }
  | {
      kind: 'cluster';
      seeds: RedisSeed[];
      nodeOptions: Omit<RedisConnectionOptions, 'host' | 'port' | 'db'>;
    };

const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]*)(\/[^?#]*)?$/i;

/** Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`). */
export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:/i.test(url);
}

/**
 * Why a cluster URL cannot be used, in words an operator can act on, or undefined when it is
 * well formed: `redis+cluster://[user:password@]host:port[,host:port…]`.
 */
export function clusterUrlProblem(url: string): string | undefined {
  const match = CLUSTER_URL.exec(url);
  if (!match)
    return 'expected redis+cluster://[user:password@]host:port[,host:port…] (rediss+cluster:// for TLS)';
  const path = match[4] ?? '';
  if (path !== '' && path !== '/')
    return 'a Redis Cluster has only database 0: remove the path after the seed nodes';
  const nodes = (match[3] ?? '').split(',');
  for (const node of nodes) {
    if (node === '') return 'an empty seed node: list host:port pairs separated by commas, without spaces';
    if (parseSeed(node) === undefined)
      return `"${node}" is not host:port (a port from 1 to 65535; an IPv6 address in brackets, [::1]:7000)`;
  }
  return undefined;
}

function parseSeed(node: string): RedisSeed | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[^\s:[\]]+)(?::(\d{1,5}))?$/i.exec(node);
  if (!match) return undefined;
  const port = match[2] === undefined ? 6379 : Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? '').replace(/^\[(.+)\]$/, '$1'), port };
}

/**
 * The one place a Redis URL (plain or cluster) and the TLS environment become a target;
 * every app's main.ts and the CLI build their clients from it (core's `createRedisClient`).
 * A malformed cluster URL throws (the env schema has refused it before, naming the variable).
 */
export function redisTarget(url: string, tls: RedisTlsFiles = {}): RedisTarget {
  if (!isClusterUrl(url)) return { kind: 'node', options: redisConnectionOptions(url, tls) };
  const problem = clusterUrlProblem(url);
  const match = CLUSTER_URL.exec(url);
  if (problem !== undefined || !match) throw new Error(`invalid Redis Cluster URL: ${problem}`);
  const seeds = (match[3] ?? '').split(',').map((node) => parseSeed(node) as RedisSeed);
  // The credentials and TLS files mean what they mean in a plain URL: reuse that parser on
  // the first seed, then drop what is per server.
  const first = seeds[0] as RedisSeed;
  const userinfo = match[2] === undefined ? '' : `${match[2]}@`;
  const host = first.host.includes(':') ? `[${first.host}]` : first.host;
  const {
    host: _h,
    port: _p,
    db: _db,
    ...nodeOptions
  } = redisConnectionOptions(`${match[1]?.toLowerCase()}://${userinfo}${host}:${first.port}`, tls);
  // SNI: each node is reached by the address the cluster announces, not the first seed's name.
  if (nodeOptions.tls) delete nodeOptions.tls.servername;
  return { kind: 'cluster', seeds, nodeOptions };
}

/**
 * The variable an operator set for a Redis connection: QUEUE_REDIS_URL defaults to
 * REDIS_URL, and a message must name the one to change.
 */
export function redisUrlVariable(
  env: { REDIS_URL: string; QUEUE_REDIS_URL: string },
  which: 'cache' | 'queue',
): 'REDIS_URL' | 'QUEUE_REDIS_URL' {
  return which === 'queue' && env.QUEUE_REDIS_URL !== env.REDIS_URL ? 'QUEUE_REDIS_URL' : 'REDIS_URL';
}

/**
 * A connection that failed for a reason retrying cannot fix: wrong credentials, an
 * untrusted or mismatched certificate, a missing privilege. The process stops with this
 * one line (naming the variable to change) instead of a reconnect loop that looks like an
 * outage.
 */
export class ConnectionConfigError extends Error {
  readonly code = 'WALCACHE_CONNECTION';
  constructor(
    readonly variable: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${variable}: ${message}`, options);
  }
}

/** Node's codes for a certificate the client does not trust or that names another host. */
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const EXPIRED_CERT_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** Postgres SQLSTATEs of a refused login: 28P01 wrong password, 28000 no pg_hba.conf entry (e.g. SSL required). */
const PG_AUTH_CODES = new Set(['28P01', '28000']);

/**
 * Classifies a connection failure: the ConnectionConfigError to stop with, or undefined for
 * failures that may pass (refused, reset, timed out, server starting) and deserve a retry.
 * `kind` picks the wording of the fix: which variable to change and how.
 */
export function permanentConnectionFailure(
  error: unknown,
  variable: string,
  kind: 'redis' | 'postgres',
): ConnectionConfigError | undefined {
  const cause = error instanceof AggregateError && error.errors.length > 0 ? error.errors[0] : error;
  if (!(cause instanceof Error)) return undefined;
  const code = (cause as { code?: unknown }).code;
  // One line: OpenSSL's messages span several.
  const detail = redactSecrets(cause.message).replace(/\s+/g, ' ').trim();
  const fail = (what: string, fix: string) =>
    new ConnectionConfigError(variable, `${what} (${detail}); ${fix}`, { cause });
  const caFix =
    kind === 'redis'
      ? 'set REDIS_TLS_CA_FILE to the CA certificate that signed the server certificate'
      : `add sslrootcert=<CA certificate file> to ${variable}`;
  if (typeof code === 'string') {
    if (UNTRUSTED_CERT_CODES.has(code)) return fail("the server's TLS certificate is not trusted", caFix);
    if (EXPIRED_CERT_CODES.has(code))
      return fail("the server's TLS certificate is expired or not yet valid", 'renew the server certificate');
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
      return fail(
        "the server's TLS certificate does not name this host",
        `connect with a host name the certificate lists, or reissue it for the host in ${variable}`,
      );
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
      return fail(
        'the TLS handshake failed',
        kind === 'redis'
          ? 'check that the server speaks TLS on that port and, if it requires client certificates, set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE'
          : `check the ssl settings (sslmode, sslcert, sslkey) in ${variable}`,
      );
    if (kind === 'postgres' && PG_AUTH_CODES.has(code))
      return fail(
        'PostgreSQL refused the login',
        `check the user and password in ${variable}, and that pg_hba.conf admits it (with sslmode=require or stronger when it demands TLS)`,
      );
    if (kind === 'postgres' && code === '3D000')
      return fail('the database does not exist', `create it or fix the database name in ${variable}`);
    if (kind === 'postgres' && code === '42501') {
      if (/replication/i.test(cause.message))
        return fail('the role lacks the REPLICATION attribute', 'ALTER ROLE <role> REPLICATION;');
      if (/permission denied for database/i.test(cause.message))
        return fail(
          'the role may not connect to the database',
          'GRANT CONNECT ON DATABASE <database> TO <role>;',
        );
      return fail('the role lacks a privilege', 'grant what docs/operations.md ("Least privilege") lists');
    }
  }
  if (kind === 'redis') {
    if (/^(WRONGPASS|NOAUTH|ERR invalid password)/.test(cause.message))
      return fail('Redis refused the credentials', `check the user and password in ${variable}`);
    if (/^ERR AUTH .* without any password configured/.test(cause.message))
      return fail('Redis has no password but one was given', `remove the password from ${variable}`);
    if (/^NOPERM/.test(cause.message))
      return fail(
        'the Redis user lacks a permission walcache needs',
        'grant the ACL of docs/operations.md ("Redis ACL user")',
      );
  }
  if (kind === 'postgres' && /does not support SSL/i.test(cause.message))
    return fail(
      'the server does not accept TLS',
      `enable ssl on the server, or drop sslmode from ${variable}`,
    );
  return undefined;
}
