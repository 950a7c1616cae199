/**
 * Step 0 of an invalidation: wait until the job's transactions are visible. Postgres writes
 * a commit to the WAL, where the CDC decodes it, before the transaction leaves the proc
 * array; until then new snapshots do not see it (its backend waits for a synchronous
 * standby, or is descheduled). An invalidation, or a refresh, that ran in that window would
 * let the next load read the old row, pass every check and be cached for good.
 */

/** The one method needed from pg's Pool or Client (a Pool reconnects by itself). */
export interface XidQueryable {
  query<R extends Record<string, unknown>>(query: {
    name: string;
    text: string;
    values: unknown[];
  }): Promise<{ rows: R[] }>;
}

/**
 * Named, so each connection parses and plans it once: it runs once per job, on the busiest
 * process of the machine (docs/benchmarks.md, "where the time goes").
 */
const INVISIBLE_XIDS = {
  name: 'walcache-invisible-xids',
  text: `with s as (select pg_current_snapshot() as snap),
          m as (select snap, pg_snapshot_xmax(snap)::text::bigint as xmax from s),
          f as (select snap, xmax, ((xmax >> 32) << 32) + x as x64 from m, unnest($1::bigint[]) as x)
     select count(*) filter (where not pg_visible_in_snapshot(
              (case when x64 >= xmax then x64 - 4294967296 else x64 end)::text::xid8, snap)
            )::text as invisible
     from f`,
} as const;

/**
 * How many of `xids` (32-bit xids of committed transactions, as pgoutput sends them) are
 * not yet visible to a snapshot taken now. One query per job, whatever its size.
 *
 * pg_visible_in_snapshot needs 64-bit xids: each is rebuilt with the epoch of the
 * snapshot's xmax (the next xid to be assigned), one epoch back when it would lie at or
 * past xmax. A committed transaction is always below xmax, and one whose epoch is older
 * than that is long visible: either way the answer is right.
 */
export async function countInvisibleXids(db: XidQueryable, xids: readonly number[]): Promise<number> {
  if (xids.length === 0) return 0;
  const { rows } = await db.query<{ invisible: string }>({ ...INVISIBLE_XIDS, values: [xids] });
  return Number(rows[0]?.invisible ?? 0);
}
