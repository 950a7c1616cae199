import { type Kysely, sql } from 'kysely';

/** What Postgres says about walcache's replication slot (pg_replication_slots + pg_stat_replication). */
export interface SlotInfo {
  name: string;
  exists: boolean;
  /** A walsender (the CDC) is streaming from it right now. */
  active: boolean;
  activePid: number | null;
  /** `reserved`, `extended`, `unreserved` or `lost` (lost = the CDC must recreate it and flush). */
  walStatus: string | null;
  /** Last LSN the CDC acknowledged (its jobs are stored). */
  confirmedFlushLsn: string | null;
  /** Bytes of WAL written after the acknowledged position: work the CDC has not stored yet. */
  lagBytes: number | null;
  /** Bytes of WAL Postgres keeps on disk for this slot (from restart_lsn): what a stuck slot costs. */
  retainedWalBytes: number | null;
  /**
   * The walsender's flush lag as Postgres measures it from the CDC's acknowledgements; null
   * while the slot is not streaming, 0 when nothing is unacknowledged.
   */
  lagSeconds: number | null;
  currentWalLsn: string;
}

interface SlotRow {
  exists: boolean;
  active: boolean | null;
  active_pid: number | null;
  wal_status: string | null;
  confirmed_flush_lsn: string | null;
  lag_bytes: string | null;
  retained_bytes: string | null;
  flush_lag_seconds: string | null;
  current_lsn: string;
}

/** Reads the slot's state in one query. `db` is any Kysely instance (no table types needed). */
export async function readSlot<DB>(db: Kysely<DB>, slotName: string): Promise<SlotInfo> {
  const { rows } = await sql<SlotRow>`
    select s.slot_name is not null as exists,
           s.active,
           s.active_pid,
           s.wal_status,
           s.confirmed_flush_lsn::text as confirmed_flush_lsn,
           pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::text as lag_bytes,
           pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::text as retained_bytes,
           extract(epoch from r.flush_lag)::text as flush_lag_seconds,
           pg_current_wal_lsn()::text as current_lsn
      from (select 1) one
      left join pg_replication_slots s on s.slot_name = ${slotName}
      left join pg_stat_replication r on r.pid = s.active_pid`.execute(db);
  const row = rows[0];
  if (!row) throw new Error('pg_replication_slots query returned no row');
  const active = row.active === true;
  const lagBytes = row.lag_bytes === null ? null : Math.max(0, Number(row.lag_bytes));
  return {
    name: slotName,
    exists: row.exists,
    active,
    activePid: row.active_pid,
    walStatus: row.wal_status,
    confirmedFlushLsn: row.confirmed_flush_lsn,
    lagBytes,
    retainedWalBytes: row.retained_bytes === null ? null : Math.max(0, Number(row.retained_bytes)),
    // Nothing unacknowledged is zero lag, whatever flush_lag last measured; Postgres also
    // clears flush_lag once the client is caught up and idle.
    lagSeconds: !active
      ? null
      : lagBytes === 0 || row.flush_lag_seconds === null
        ? 0
        : Number(row.flush_lag_seconds),
    currentWalLsn: row.current_lsn,
  };
}

/** The insert position of the WAL now: every commit visible to a query that ran before is below it. */
export async function currentInsertLsn<DB>(db: Kysely<DB>): Promise<string> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_insert_lsn()::text as lsn`.execute(db);
  const lsn = rows[0]?.lsn;
  if (!lsn) throw new Error('pg_current_wal_insert_lsn() returned nothing');
  return lsn;
}
