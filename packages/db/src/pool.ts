import { createHash } from 'node:crypto';
import { ConnectionConfigError } from '@walcache/config';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { parse, toClientConfig } from 'pg-connection-string';

/**
 * The one place a Postgres URL becomes client settings, for the pools and the CDC's
 * replication connection alike. `sslmode` means what libpq says it means: `require`
 * encrypts without checking the certificate (unless `sslrootcert` is given, then as
 * `verify-ca`), `verify-ca` checks the chain against `sslrootcert`, `verify-full` the chain
 * and the host name (against the system CAs without `sslrootcert`). node-postgres 8 would
 * otherwise treat every mode as verify-full and warn on stderr. `sslrootcert=system` (libpq
 * 16) is the system CAs with verify-full. A bad setting throws a ConnectionConfigError
 * naming `variable`, at startup rather than at the first query.
 */
export function pgConnectionConfig(connectionString: string, variable = 'DATABASE_URL'): pg.ClientConfig {
  let text = connectionString;
  try {
    const url = new URL(connectionString);
    if (url.searchParams.get('sslrootcert') === 'system') {
      url.searchParams.delete('sslrootcert');
      url.searchParams.set('sslmode', 'verify-full');
      text = url.toString();
    }
  } catch {
    // Not a URL (a libpq key/value string): pg-connection-string reports what is wrong.
  }
  try {
    return toClientConfig(parse(text, { useLibpqCompat: true }));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const file = /ENOENT|EACCES/.test(reason) ? 'cannot read the sslrootcert/sslcert/sslkey file: ' : '';
    throw new ConnectionConfigError(variable, `${file}${reason.split('\n')[0]}`, { cause: error });
  }
}

export interface PoolOptions {
  /** A postgres:// URL (DATABASE_URL), read by pgConnectionConfig. */
  connectionString: string;
  max?: number;
  /** How long a checkout may wait for a connection (default 5 s: a cold Postgres answers within it). */
  waitMs?: number;
  /** Bounds a single query so a slow database cannot pile up requests without limit. */
  statementTimeoutMs?: number;
  applicationName?: string;
  /** Errors of idle clients (a dropped connection); the next query reconnects by itself. */
  onIdleError?: (error: Error) => void;
}

/** How a statement asks to be prepared by name: a leading comment the client reads back. */
const PREPARED_MARK = '/* walcache:';
const PREPARED_MARK_END = ' */ ';

/**
 * Marks `text` to run as a named prepared statement on the clients of createPool: Postgres
 * parses and plans it once per connection instead of on every call. Why: a lookup with
 * embeds (lateral joins, JSON aggregates) spent about two thirds of its Postgres CPU in
 * parse and plan — a lookup with three embeds took 585–695 µs of backend CPU per call
 * unnamed and 160–225 µs prepared (docs/benchmarks.md, "A lookup parsed and planned once per
 * connection"). Only for text whose shape is fixed and whose best plan does not hang on the
 * values (a lookup by key): after five calls Postgres may keep a generic plan. The name is a digest of the text,
 * so two texts never share one; on any other client the mark is only a comment.
 */
export function preparedStatement(text: string): string {
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 24);
  return `${PREPARED_MARK}${digest}${PREPARED_MARK_END}${text}`;
}

/**
 * A pg client that runs a text marked by preparedStatement as a named statement; everything
 * else (kysely's other queries, cursors, query configs) goes through unchanged.
 */
class PreparingClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: pg.Client.query's overloads, passed through as they came.
  override query(...args: any[]): any {
    const [text, values] = args;
    if (args.length <= 2 && typeof text === 'string' && text.startsWith(PREPARED_MARK)) {
      const end = text.indexOf(PREPARED_MARK_END, PREPARED_MARK.length);
      return super.query({ name: `walcache-${text.slice(PREPARED_MARK.length, end)}`, text, values });
    }
    return Reflect.apply(super.query, this, args);
  }
}

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    ...pgConnectionConfig(options.connectionString),
    Client: PreparingClient,
    max: options.max ?? 10,
    // Why 5 s: long enough for a cold Postgres, short enough that a dead one fails requests fast.
    connectionTimeoutMillis: options.waitMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'walcache',
  });
  guardConnectionErrors(pool, (error) => options.onIdleError?.(error));
  return pool;
}

/**
 * A Postgres restart sends FATAL to every backend. pg-pool listens for errors only on
 * *idle* clients; a checked-out client between two queries (a transaction, or the tick
 * between a result and its release) has no listener, and the error event would crash the
 * process. Every client gets a permanent listener: the client is marked broken, its next
 * query fails with an error its caller handles, and the pool discards it on release.
 */
export function guardConnectionErrors(pool: pg.Pool, onError: (error: Error) => void): void {
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
}

/** Compiled resources read tables no TypeScript type describes; a custom resource narrows it itself. */
// biome-ignore lint/suspicious/noExplicitAny: the database's tables come from the user's config.
export type AnyDb = Kysely<any>;

export function createDb(pool: pg.Pool): AnyDb {
  return new Kysely({ dialect: new PostgresDialect({ pool }) });
}
