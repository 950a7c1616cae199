import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

// Bigint ids and counts come back as strings; keep them so (no float rounding), but parse
// int4/int2 normally.
export interface PoolOptions {
  connectionString: string;
  max?: number;
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
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'walcache',
  });
  // An idle client losing its connection must not crash the process: report it and go on.
  pool.on('error', (error) => options.onIdleError?.(error));
  return pool;
}

export function createDb(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
