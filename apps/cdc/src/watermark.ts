import {
  coverInterval,
  type Keyspace,
  type RedisClient,
  raiseWatermark,
  readWatermark,
} from '@walcache/core';
import type { Logger } from '@walcache/observability';
import type { Queue } from 'bullmq';

/**
 * Why 5 ms: an idle-progress write per empty transaction would be one Redis call per commit
 * of an unwatched table; coalesced, it is at most 200 a second, and a read-your-writes token
 * behind an empty commit waits at most this much longer.
 */
const COALESCE_MS = 5;

/**
 * The CDC's part of the read-your-writes watermark (core watermark.ts): the intervals that
 * need no job (coalesced: consecutive ones with the same start merge), and the base W
 * starts from. A failed write only delays W (token reads then answer from Postgres); it
 * never stops the stream.
 */
export class WatermarkProgress {
  private pending: { after: string; to: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    private readonly queue: Queue,
    private readonly logger: Logger,
  ) {}

  progressed(after: string, to: string): void {
    if (this.pending && this.pending.after !== after) this.flush();
    this.pending = { after, to };
    this.timer ??= setTimeout(() => this.flush(), COALESCE_MS);
  }

  /**
   * After a flush the cache is consistent with every commit up to the slot position: W is at
   * least that. Without a flush, W is only ever set from nothing when no job is waiting
   * (every job up to the position is then done): a first start on a namespace that has none.
   */
  async streamingFrom(position: string, flushed: boolean): Promise<void> {
    try {
      if (flushed) {
        await raiseWatermark(this.redis, this.keys, position);
        return;
      }
      if ((await readWatermark(this.redis, this.keys)) !== undefined) return;
      const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused');
      const pending = Object.values(counts).reduce((a, b) => a + b, 0);
      if (pending === 0) await raiseWatermark(this.redis, this.keys, position);
      else
        this.logger.warn(
          { pending },
          'read-your-writes watermark has no base and jobs are pending: it starts at the next flush or idle start',
        );
    } catch (err) {
      this.logger.warn({ err }, 'could not set the read-your-writes watermark base');
    }
  }

  /** Writes what is pending now (shutdown, or a new interval start). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.pending;
    this.pending = undefined;
    if (next) {
      // In order: an older interval's write never lands after a newer one's.
      this.writing = this.writing.then(() =>
        coverInterval(this.redis, this.keys, next.after, next.to).then(
          () => undefined,
          (err: unknown) => this.logger.debug({ err }, 'idle watermark progress not recorded'),
        ),
      );
    }
    return this.writing;
  }
}
