import { createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import { limits } from './limits.ts';

/** Every miss would wait in line for a connection: answered 503 `overloaded` instead. */
export class PoolSaturatedError extends Error {
  readonly code = 'WALCACHE_POOL_SATURATED';
  constructor(readonly waiting: number) {
    super(`${waiting} requests already wait for a database connection`);
    this.name = 'PoolSaturatedError';
  }
}

export interface ApiPoolOptions {
  connectionString: string;
  max?: number;
  maxWaiting?: number;
  waitMs?: number;
  statementTimeoutMs?: number;
  onIdleError?: (error: Error) => void;
}

/** How the API's connections appear in pg_stat_activity (and the tests find them there). */
export const API_APPLICATION_NAME = 'walcache-api';

/**
 * The API's Postgres pool: only cache misses and bypasses use it, and each use is bounded
 * three ways (limits.ts has the why of each number): a statement timeout, a bounded wait for
 * a connection, and a bounded number of waiters.
 */
export function createApiPool(options: ApiPoolOptions): pg.Pool {
  return createPool({
    connectionString: options.connectionString,
    applicationName: API_APPLICATION_NAME,
    max: options.max ?? limits.poolMax,
    waitMs: options.waitMs ?? limits.poolWaitMs,
    statementTimeoutMs: options.statementTimeoutMs ?? limits.statementTimeoutMs,
    onIdleError: options.onIdleError,
  });
}

/**
 * Kysely over the pool, through the smallest pool interface Kysely needs: a checkout first
 * looks at the queue and refuses at once when `maxWaiting` requests already wait.
 */
export function createApiDb(pool: pg.Pool, maxWaiting: number = limits.poolMaxWaiting): Db {
  const gated: PostgresPool = {
    async connect(): Promise<PostgresPoolClient> {
      if (pool.idleCount === 0 && pool.totalCount >= pool.options.max && pool.waitingCount >= maxWaiting) {
        throw new PoolSaturatedError(pool.waitingCount);
      }
      return pool.connect();
    },
    end: () => pool.end(),
  };
  return new Kysely({ dialect: new PostgresDialect({ pool: gated }) });
}

/** SQLSTATE 57014: the statement timeout (or a cancel) ended the query. */
export function isQueryTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '57014';
}
