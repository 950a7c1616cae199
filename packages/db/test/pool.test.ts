import { type PostgresServer, startPostgres, waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../src/index.ts';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

it('a checked-out client whose backend is terminated reports the error instead of crashing the process', async () => {
  const seen: Error[] = [];
  const pool = createPool({ connectionString: server.url, onIdleError: (error) => seen.push(error) });
  const client = await pool.connect(); // checked out, between queries: pg-pool has no listener on it
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
  await admin.end();
  // Without the guard this error event has no listener and vitest reports an uncaught exception.
  await waitFor(() => seen.length > 0, { what: 'the terminated connection to be reported' });
  expect(String(seen[0]?.message)).toMatch(/terminat/i);
  await expect(client.query('select 1')).rejects.toThrow();
  client.release(true);
  const again = await pool.query('select 1 as ok');
  expect(again.rows[0].ok).toBe(1);
  await pool.end();
});
