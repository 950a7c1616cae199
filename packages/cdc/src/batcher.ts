import type { Tag } from '@walcache/core';
import { compareLsn, epochTag, tableOfTag, tableTag } from '@walcache/core';

/** One committed transaction's tags, deduplicated. */
export interface CommittedTx {
  tags: ReadonlySet<Tag>;
  /** End LSN of the commit record: what we acknowledge once the job is stored. */
  endLsn: string;
  commitMs: number;
  /** The transaction's xid (pgoutput's Begin); none for a heartbeat message. */
  xid?: number;
}

export interface Batch {
  tags: Tag[];
  lsnFrom: string;
  lsnTo: string;
  firstCommitMs: number;
  lastCommitMs: number;
  transactions: number;
  /** Xids of the transactions that carry tags (the invalidator waits for their visibility). */
  xids: number[];
  /** Where the interval this batch covers begins (set by the stream; see core watermark.ts). */
  after?: string;
}

/** A table's limit of tags in one transaction or job, before it collapses to `table:` + `epoch:`. */
export type TagLimit = number | ((table: string) => number);

/**
 * Why 10 000 row tags per table: a job of 10 000 tags runs in well under a second on the
 * invalidator, while one `epoch:` tag costs a cold cache for that table. Above it, resolving
 * the row tags (one SMEMBERS each) costs more than refilling the table's keys.
 */
export const DEFAULT_MAX_TAGS_PER_TABLE = 10_000;

/**
 * Why 50 000 tags per job: the job schema accepts 100 000 (packages/core/src/job.ts); half of
 * it keeps a job's payload (a few MB) far from Redis' limits even when many tables are each
 * just below their own threshold.
 */
export const DEFAULT_MAX_TAGS_PER_JOB = 50_000;

/**
 * The job schema's limit for one tag (packages/core/src/job.ts). A longer tag (a watched
 * column holding a long text) cannot travel in a job: its table is invalidated as a whole.
 */
export const MAX_TAG_LENGTH = 1024;

export function limitOf(limit: TagLimit | undefined, table: string): number {
  if (limit === undefined) return DEFAULT_MAX_TAGS_PER_TABLE;
  return typeof limit === 'function' ? limit(table) : limit;
}

/**
 * The tags of one transaction while it is being decoded. Per table it counts tags; once a
 * table passes its limit it collapses to `table:` + `epoch:` and further row tags of that table
 * are dropped at once, so a 10-million-row UPDATE holds two tags in memory, not 20 million.
 */
export class TxTags {
  private readonly tags = new Set<Tag>();
  private readonly perTable = new Map<string, number>();
  private readonly collapsed = new Set<string>();
  changes = 0;

  constructor(private readonly limit?: TagLimit) {}

  /** `table`: the table the tag names, when the caller knows it (every tag of a row change). */
  add(tag: Tag, table: string | undefined = tableOfTag(tag)): void {
    if (table === undefined) {
      this.tags.add(tag);
      return;
    }
    if (this.collapsed.has(table)) return;
    if (tag.length > MAX_TAG_LENGTH) {
      this.collapse(table);
      return;
    }
    if (this.tags.has(tag)) return;
    this.tags.add(tag);
    const count = (this.perTable.get(table) ?? 0) + 1;
    this.perTable.set(table, count);
    if (count > limitOf(this.limit, table)) this.collapse(table);
  }

  /** Marks the whole table changed (TRUNCATE, an unmappable row, a schema change). */
  collapse(table: string): void {
    for (const tag of [...this.tags]) if (tableOfTag(tag) === table) this.tags.delete(tag);
    this.tags.add(tableTag(table));
    this.tags.add(epochTag(table));
    this.collapsed.add(table);
    this.perTable.set(table, 2);
  }

  get collapsedTables(): ReadonlySet<string> {
    return this.collapsed;
  }

  get size(): number {
    return this.tags.size;
  }

  toSet(): ReadonlySet<Tag> {
    return this.tags;
  }
}

export interface BatcherOptions {
  /** Stores a batch (enqueues the job). Must throw if it is not stored. */
  store(batch: Batch): Promise<void>;
  /** Called with the batch's last LSN once it is stored: the only place that may ack. */
  stored(lsn: string, batch: Batch): void;
  /** Called once when a store fails: the stream must stop and resume from the slot. */
  failed?(error: unknown): void;
  /**
   * A table with more tags than this in one job becomes `epoch:` + `table:` instead: one
   * cheap table-wide invalidation rather than millions of keys. Per table.
   */
  maxTagsPerTable?: TagLimit;
  /** Above this many tags in one job, the largest tables collapse until it fits. */
  maxTagsPerJob?: number;
  /**
   * Back-pressure: commits waiting behind the in-flight enqueue before `add` waits (and with
   * it the stream, through flowControl). Why 5 000: a few MB of tags at most, and at least
   * one store round trip's worth of commits at any realistic commit rate.
   */
  maxPendingTransactions?: number;
  /**
   * Coalescing: a batch with tags is stored no sooner than this long after the previous
   * store began; commits arriving meanwhile join it. 0: store as soon as the previous store
   * is done. See DEFAULT_MIN_STORE_INTERVAL_MS.
   */
  minStoreIntervalMs?: number;
  /** Test seam: how the coalescing wait sleeps (default a timer). */
  wait?(ms: number): Promise<void>;
}

/**
 * Why 2 ms: every job costs the invalidator a fixed set of round trips (BullMQ's fetch and
 * completion, the visibility query, the markers, the tag sets, the watermark), and Postgres
 * and Redis the other ends of them, whatever its size. Without a floor a fast store
 * (a fraction of a millisecond) makes one job per commit at 1 000 commits/s, and that fixed
 * cost, not the tags, fills the machine (docs/benchmarks.md, "where the time goes"). At most
 * 500 jobs a second, and an isolated commit still goes out at once: the wait only applies
 * within 2 ms of the previous store.
 */
export const DEFAULT_MIN_STORE_INTERVAL_MS = 2;

/**
 * Group commit. An isolated commit is stored at once; commits that arrive while a store
 * is in flight, or within `minStoreIntervalMs` of its start, are merged into the next one, so
 * under load the job rate stays far below the commit rate. Stores run one at a time and in order, so LSNs are acknowledged in order:
 * a later batch is never acked before an earlier one is stored.
 */
export class Batcher {
  private pending: CommittedTx[] = [];
  private inflight: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;
  private lastStoreMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: BatcherOptions) {}

  /** Resolves when the stream may continue (back-pressure); rejects if storing failed. */
  async add(tx: CommittedTx): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) return;
    this.pending.push(tx);
    if (!this.inflight) this.inflight = this.drain();
    if (this.pending.length >= (this.options.maxPendingTransactions ?? 5_000)) await this.inflight;
    if (this.failure) throw this.failure;
  }

  /** Waits until everything added so far is stored (graceful shutdown). */
  async flush(): Promise<void> {
    while (this.inflight) await this.inflight;
    if (this.failure) throw this.failure;
  }

  /**
   * After close nothing more is stored or acknowledged: a store still in flight may land in
   * Redis (harmless, it is replayed and deduplicated) but its LSN is never reported.
   */
  close(): void {
    this.closed = true;
    this.pending = [];
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  get busy(): boolean {
    return this.inflight !== undefined;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.closed) {
        await this.coalesce();
        if (this.closed) return;
        const txs = this.pending;
        this.pending = [];
        const batch = this.merge(txs);
        if (batch.tags.length > 0) this.lastStoreMs = performance.now();
        await this.options.store(batch);
        if (this.closed) return;
        this.options.stored(batch.lsnTo, batch);
      }
    } catch (error) {
      // Nothing after the failed batch may be acked; the stream restarts from the slot.
      this.failure = error;
      this.pending = [];
      this.options.failed?.(error);
    } finally {
      this.inflight = undefined;
    }
  }

  /**
   * Waits out the rest of the minimum interval since the previous store when what is pending
   * would make a job; a batch without tags (empty transactions, heartbeats) stores nothing
   * and goes at once. Nothing is acknowledged meanwhile: the pending commits are not stored.
   */
  private async coalesce(): Promise<void> {
    const interval = this.options.minStoreIntervalMs ?? DEFAULT_MIN_STORE_INTERVAL_MS;
    const wait = this.lastStoreMs + interval - performance.now();
    // Below half a millisecond a timer costs more than the job it would save.
    if (wait < 0.5 || !this.pending.some((tx) => tx.tags.size > 0)) return;
    await (this.options.wait ? this.options.wait(wait) : new Promise((r) => setTimeout(r, wait)));
  }

  /** Merges transactions (in commit order) into one batch, collapsing over-large tables. */
  merge(txs: readonly CommittedTx[]): Batch {
    if (txs.length === 0) throw new Error('cannot merge an empty list of transactions');
    const all = new Set<Tag>();
    for (const tx of txs) for (const tag of tx.tags) all.add(tag);
    const perTable = new Map<string, number>();
    for (const tag of all) {
      const table = tableOfTag(tag);
      if (table) perTable.set(table, (perTable.get(table) ?? 0) + 1);
    }
    const collapse = (table: string) => {
      for (const tag of [...all]) if (tableOfTag(tag) === table) all.delete(tag);
      all.add(tableTag(table));
      all.add(epochTag(table));
      perTable.set(table, 2);
    };
    for (const [table, count] of perTable) {
      if (count > limitOf(this.options.maxTagsPerTable, table)) collapse(table);
    }
    const maxPerJob = this.options.maxTagsPerJob ?? DEFAULT_MAX_TAGS_PER_JOB;
    // Largest tables first: the fewest table-wide invalidations that make the job fit.
    const bySize = [...perTable.entries()].sort((a, b) => b[1] - a[1]);
    for (const [table] of bySize) {
      if (all.size <= maxPerJob) break;
      collapse(table);
    }
    const xids = new Set<number>();
    for (const tx of txs) if (tx.xid !== undefined && tx.tags.size > 0) xids.add(tx.xid);
    let first = txs[0] as CommittedTx;
    let last = first;
    for (const tx of txs) {
      if (compareLsn(tx.endLsn, first.endLsn) < 0) first = tx;
      if (compareLsn(tx.endLsn, last.endLsn) > 0) last = tx;
    }
    return {
      tags: [...all],
      lsnFrom: first.endLsn,
      lsnTo: last.endLsn,
      firstCommitMs: first.commitMs,
      lastCommitMs: last.commitMs,
      transactions: txs.length,
      xids: [...xids],
    };
  }
}
