import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCdc, startCdc } from '../../apps/cdc/src/main.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

// WAL written by tables outside the publication is decoded and skipped by Postgres; the CDC
// receives only keepalives for it. Confirming those positions once caught up is what keeps
// the slot from pinning WAL, and what lets a fast shutdown of Postgres finish: its walsender
// waits until the client has confirmed everything it sent.
let servers: Servers;
let cdc: RunningCdc;
let writer: pg.Client;
let slotName: string;

beforeAll(async () => {
  servers = await startServers({ users: 5, articles: 10, tags: 2, commentsPerArticle: 1 });
  const env = testEnv(servers);
  slotName = env.SLOT_NAME;
  // No heartbeat messages: only Postgres' own keepalives may move the slot here.
  cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 0 });
  await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  await writer.query(
    'create table audit_log (id bigint generated always as identity primary key, note text)',
  );
});

afterAll(async () => {
  await writer?.end().catch(() => undefined);
  await cdc?.close();
  await servers?.stop();
});

const lsn = (text: string) => {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
};

describe('keepalives after unpublished WAL', () => {
  it('the slot confirms past writes to unpublished tables, and Postgres can shut down', async () => {
    await writer.query("insert into audit_log (note) select 'x' from generate_series(1, 1000)");
    const { rows } = await writer.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    const written = lsn(rows[0]!.lsn);
    // Ask the walsender to report progress: a checkpoint is WAL it decodes and skips, too.
    await writer.query('checkpoint');
    await waitFor(
      async () => {
        const { rows: slot } = await writer.query<{ lsn: string }>(
          'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
          [slotName],
        );
        return lsn(slot[0]!.lsn) >= written;
      },
      { timeoutMs: 60_000, what: 'the slot to confirm past the unpublished writes' },
    );
    await writer.end();
    // Before the fix this never resolved: the walsender waited for a confirmation of WAL the
    // CDC had no message for. The bound only turns a hang into a failure.
    const stopped = await Promise.race([
      servers.pg.stopServer().then(() => 'stopped'),
      new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000).unref()),
    ]);
    expect(stopped).toBe('stopped');
  }, 120_000);
});
