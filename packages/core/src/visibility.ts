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
          m as (select snap, pg_snapshot_xmax(snap)::text::bigint as xmax,
                       pg_snapshot_xmin(snap)::text::bigint as xmin from s),
          f as (select snap, xmax, xmin, ((xmax >> 32) << 32) + x as x64 from m, unnest($1::bigint[]) as x)
     select count(*) filter (where not pg_visible_in_snapshot(
              (case when x64 >= xmax then x64 - 4294967296 else x64 end)::text::xid8, snap)
            )::text as invisible,
            (min(xmin) & 4294967295)::text as xmin
     from f`,
} as const;

/**
 * How long what one check learned is trusted by later jobs (VisibilityHorizon). Why 1 s:
 * within it the checks of a busy invalidator keep renewing it, and it is far shorter than
 * any failover or restore, after which a server may hand out again xids an old snapshot
 * said were done.
 */
export const VISIBILITY_HORIZON_MAX_AGE_MS = 1_000;

/** `a` is an older xid than `b` (Postgres' TransactionIdPrecedes: modulo 2^32). */
const precedes = (a: number, b: number) => ((a - b) | 0) < 0;

/**
 * What the last checks learned for the jobs after them: every transaction below a
 * snapshot's xmin had ended when the snapshot was taken, and a committed one (every xid a
 * job carries is) is visible to every snapshot after it. A job whose xids all lie below a
 * recent check's xmin needs no query of its own: 40–80 % of the jobs in the bench's
 * invalidation parts (docs/benchmarks.md). A transaction still waiting for a standby is
 * still running, so no xmin passes it. One per process, fed by countInvisibleXids.
 */
export class VisibilityHorizon {
  private xmin: number | undefined;
  private learnedAtMs = 0;

  constructor(
    private readonly maxAgeMs = VISIBILITY_HORIZON_MAX_AGE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Every one of `xids` is known visible without a query. */
  covers(xids: readonly number[]): boolean {
    const xmin = this.current();
    return xmin !== undefined && xids.length > 0 && xids.every((x) => precedes(x, xmin));
  }

  /** A snapshot's xmin (low 32 bits), taken after `sentAtMs`: kept unless older than the one held. */
  learn(xmin: number, sentAtMs: number): void {
    const held = this.current();
    if (held === undefined || !precedes(xmin, held)) {
      this.xmin = xmin;
      this.learnedAtMs = sentAtMs;
    }
  }

  /** The clock `learn` expects its `sentAtMs` from. */
  clock(): number {
    return this.now();
  }

  private current(): number | undefined {
    return this.xmin !== undefined && this.now() - this.learnedAtMs <= this.maxAgeMs ? this.xmin : undefined;
  }
}

/**
 * How many of `xids` (32-bit xids of committed transactions, as pgoutput sends them) are
 * not yet visible to a snapshot taken now. One query, whatever the job's size.
 *
 * pg_visible_in_snapshot needs 64-bit xids: each is rebuilt with the epoch of the
 * snapshot's xmax (the next xid to be assigned), one epoch back when it would lie at or
 * past xmax. A committed transaction is always below xmax, and one whose epoch is older
 * than that is long visible: either way the answer is right.
 */
export async function countInvisibleXids(
  db: XidQueryable,
  xids: readonly number[],
  /** Learns the snapshot's xmin, for later jobs. */
  horizon?: VisibilityHorizon,
): Promise<number> {
  if (xids.length === 0) return 0;
  const sentAt = horizon?.clock() ?? 0;
  const { rows } = await db.query<{ invisible: string; xmin: string | null }>({
    ...INVISIBLE_XIDS,
    values: [xids],
  });
  const xmin = rows[0]?.xmin;
  if (horizon && xmin != null) horizon.learn(Number(xmin), sentAt);
  return Number(rows[0]?.invisible ?? 0);
}
