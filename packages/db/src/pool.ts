import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

export interface PoolOptions {
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

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
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

export function createDb(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
