import { randomBytes } from 'node:crypto';
import {
  type Keyspace,
  type RedisClient,
  type SweepProgress,
  sweepTagIndex,
  withCommands,
} from '@walcache/core';
import type { Logger } from '@walcache/observability';

export interface TagSweeperMetrics {
  sweeps: { inc(): void };
  membersRemoved: { inc(n: number): void };
}

/**
 * Runs `sweepTagIndex` every `intervalMs`, in one invalidator at a time (a lock in the cache
 * Redis: several invalidators sweeping the same index would only repeat each other's work).
 */
export class TagSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    private readonly logger: Logger,
    private readonly metrics: TagSweeperMetrics,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.schedule();
  }

  /** Stops between two script calls of a sweep in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep now, if no other process is sweeping (tests, and the timer). */
  async sweepOnce(): Promise<SweepProgress | undefined> {
    const token = randomBytes(9).toString('base64url');
    // The lock outlives a sweep that stalls, never the interval: a dead sweeper frees it.
    const lockMs = Math.max(this.intervalMs, 60_000);
    if ((await this.redis.set(this.keys.sweepLock, token, 'PX', lockMs, 'NX')) !== 'OK') return undefined;
    const started = performance.now();
    try {
      const result = await sweepTagIndex(this.redis, this.keys, {
        stopped: () => this.stopping,
        // Why 1 ms: a sweep of a million members then takes about 5 000 pauses, a few seconds
        // of wall time, while each script call blocks Redis well under a millisecond.
        pauseMs: 1,
        // Why 9: the sweep takes a tenth of Redis at most (a call's round trip counts as its
        // work), and a pass over a million members still ends in well under a minute. Without
        // it a pass of the full bench profile held Redis in bursts of seconds, and
        // invalidations waited behind them (docs/benchmarks.md).
        restPerBusy: 9,
      });
      this.metrics.sweeps.inc();
      this.metrics.membersRemoved.inc(result.removed);
      this.logger.info(
        { ...result, ms: Math.round(performance.now() - started) },
        'tag index swept: members of values that are gone removed',
      );
      return result;
    } finally {
      // The lease script: delete only if still ours.
      await withCommands(this.redis)
        .walcacheReleaseLease(this.keys.sweepLock, token)
        .catch(() => {});
    }
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.running = this.sweepOnce()
        .then(() => undefined)
        .catch((err: unknown) =>
          this.logger.warn({ err }, 'tag index sweep failed; retrying at the next interval'),
        )
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }
}
