import { type PostgresServer, startPostgres } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnInfo } from '../src/catalog.ts';
import { paramSchema } from '../src/types.ts';

/**
 * A timestamp parameter (a route's, or a cursor's part) is accepted exactly when Postgres
 * takes it: one it would refuse is a 400, never a 500 from the query.
 */
let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 1 });
  pool.on('error', () => undefined);
});

afterAll(async () => {
  await pool?.end();
  await server?.stop();
});

const castable = async (v: string) =>
  pool.query('select cast($1::text as timestamptz)', [v]).then(
    () => true,
    () => false,
  );

describe('timestamp parameters', () => {
  const column = {
    name: 'at',
    type: 'timestamptz',
    nullable: false,
    kind: 'b',
    sqlType: 'timestamptz',
  } as ColumnInfo;
  const schema = paramSchema(column);
  it.each([
    ['2025-02-01 01:07:00+00', true],
    ['2025-02-01T01:07:00.5Z', true],
    ['2025-02-01 01:07:00-15:59', true],
    ['2025-02-01 01:07:00+1530', true],
    // The fuzz test's find: Postgres answers "time zone displacement out of range" beyond ±15:59.
    ['2025-02-01 01:07:00.000000+30', false],
    ['2025-02-01 01:07:00+16', false],
    ['2025-02-01 01:07:00-12:60', false],
  ])('%s: accepted %s, as Postgres does', async (v, ok) => {
    expect(schema.safeParse(v).success).toBe(ok);
    expect(await castable(v)).toBe(ok);
  });
});
