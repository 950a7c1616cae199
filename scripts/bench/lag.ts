import { lsnToBigInt } from '@walcache/core';
import type pg from 'pg';
import { LAG_PROBE_INTERVAL_MS } from './config.ts';
import type { Quantiles } from './results.ts';

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function quantiles(values: number[]): Quantiles {
  if (values.length === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1] ?? 0 };
}

/**
 * Replication lag as the CDC's own acknowledgements show it: a marker is written into the
 * WAL (a non-transactional logical message with the CDC's heartbeat prefix, which the CDC
 * decodes, batches in order and acknowledges) and timed until the slot's
 * `confirmed_flush_lsn` passes it — i.e. until every change before it is stored as a job.
 */
export class LagProbe {
  private readonly pending: { t: number; lsn: bigint }[] = [];
  private readonly lags: number[] = [];
  private emitTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pollLoop: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly emitter: pg.Client,
    private readonly poller: pg.Client,
    private readonly slotName: string,
  ) {}

  start(): void {
    this.lags.length = 0;
    this.emitTimer = setInterval(() => void this.emit(), LAG_PROBE_INTERVAL_MS);
    this.polling = true;
    this.pollLoop = this.poll();
  }

  private async emit(): Promise<void> {
    const t = performance.now();
    try {
      const { rows } = await this.emitter.query<{ lsn: string }>(
        `select pg_logical_emit_message(false, 'walcache.heartbeat', $1)::text as lsn`,
        [String(Date.now())],
      );
      if (rows[0]) this.pending.push({ t, lsn: lsnToBigInt(rows[0].lsn) });
    } catch (error) {
      this.failure ??= error;
    }
  }

  private async poll(): Promise<void> {
    while (this.polling || this.pending.length > 0) {
      const { rows } = await this.poller.query<{ lsn: string | null }>(
        'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
        [this.slotName],
      );
      const confirmed = rows[0]?.lsn ? lsnToBigInt(rows[0].lsn) : 0n;
      const now = performance.now();
      while (this.pending[0] && this.pending[0].lsn <= confirmed) {
        const p = this.pending.shift();
        if (p) this.lags.push(now - p.t);
      }
      if (!this.polling) return;
      // Why 20 ms: the lag figure is then exact to 20 ms, for one cheap catalog read each time.
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops emitting, waits up to `graceMs` for the markers still pending, and summarises. */
  async stop(graceMs: number): Promise<Quantiles & { unresolved: number }> {
    clearInterval(this.emitTimer);
    const deadline = performance.now() + graceMs;
    while (this.pending.length > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.polling = false;
    const now = performance.now();
    const unresolved = this.pending.splice(0);
    // An unresolved marker's lag is at least its age now: counted so, the max is a lower bound.
    const all = [...this.lags, ...unresolved.map((p) => now - p.t)];
    await this.pollLoop;
    if (this.failure) throw new Error('the lag probe failed', { cause: this.failure });
    return { ...quantiles(all), unresolved: unresolved.length };
  }
}
