import type { Tag } from '@walcache/core';
import { compareLsn, epochTag, tableOfTag, tableTag } from '@walcache/core';

/** One committed transaction's tags, deduplicated. */
export interface CommittedTx {
  tags: Set<Tag>;
  /** End LSN of the commit record: what we acknowledge once the job is stored. */
  endLsn: string;
  commitMs: number;
}

export interface Batch {
  tags: Tag[];
  lsnFrom: string;
  lsnTo: string;
  firstCommitMs: number;
  lastCommitMs: number;
  transactions: number;
}

export interface BatcherOptions {
  /** Stores a batch (enqueues the job). Must throw if it is not stored. */
  store(batch: Batch): Promise<void>;
  /** Called with the batch's last LSN once it is stored: the only place that may ack. */
  stored(lsn: string, batch: Batch): void;
  /**
   * A table with more row tags than this in one batch becomes `epoch:` + `table:` instead:
   * one cheap table-wide invalidation rather than millions of keys. Per table, default 10 000.
   */
  maxTagsPerTable?: number | ((table: string) => number);
  /** Back-pressure: commits waiting behind the in-flight enqueue before the stream is paused. */
  maxPendingTransactions?: number;
}

/**
 * Group commit. An isolated commit is stored at once; commits that arrive while a store
 * is in flight are merged into the next one, so under load the job rate stays far below
 * the commit rate. Stores run one at a time and in order, so LSNs are acknowledged in order.
 */
export class Batcher {
  private pending: CommittedTx[] = [];
  private inflight: Promise<void> | undefined;
  private failure: unknown;

  constructor(private readonly options: BatcherOptions) {}

  /** Resolves when the stream may continue (back-pressure); rejects if storing failed. */
  async add(tx: CommittedTx): Promise<void> {
    if (this.failure) throw this.failure;
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

  get pendingCount(): number {
    return this.pending.length;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const txs = this.pending;
        this.pending = [];
        const batch = this.merge(txs);
        await this.options.store(batch);
        this.options.stored(batch.lsnTo, batch);
      }
    } catch (error) {
      // Nothing after the failed batch may be acked; the stream restarts from the slot.
      this.failure = error;
    } finally {
      this.inflight = undefined;
    }
  }

  merge(txs: CommittedTx[]): Batch {
    const all = new Set<Tag>();
    for (const tx of txs) for (const tag of tx.tags) all.add(tag);
    const limit = this.options.maxTagsPerTable ?? 10_000;
    const perTable = new Map<string, number>();
    for (const tag of all) {
      const table = tableOfTag(tag);
      if (table) perTable.set(table, (perTable.get(table) ?? 0) + 1);
    }
    for (const [table, count] of perTable) {
      const max = typeof limit === 'function' ? limit(table) : limit;
      if (count <= max) continue;
      for (const tag of [...all]) if (tableOfTag(tag) === table) all.delete(tag);
      all.add(tableTag(table));
      all.add(epochTag(table));
    }
    const first = txs[0]!;
    const last = txs.reduce((a, b) => (compareLsn(a.endLsn, b.endLsn) >= 0 ? a : b));
    return {
      tags: [...all],
      lsnFrom: first.endLsn,
      lsnTo: last.endLsn,
      firstCommitMs: first.commitMs,
      lastCommitMs: last.commitMs,
      transactions: txs.length,
    };
  }
}
