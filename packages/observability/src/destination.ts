import { writeSync } from 'node:fs';

/**
 * Why 1 MiB: lines waiting for a slow reader are kept up to this much (thousands of lines);
 * past it new lines are dropped, so a stalled log reader cannot grow the process unboundedly.
 */
const MAX_PENDING_BYTES = 1024 * 1024;
/** Why 20 ms: a reader that is only busy drains a full pipe in about that time. */
const RETRY_MS = 20;

export interface SafeDestination {
  write(line: string): void;
  /** One non-blocking attempt to write what is still pending; never throws, never waits. */
  flushOnce(): void;
  /** True once a write failed for good (EPIPE: nobody reads any more); later lines are dropped. */
  readonly broken: boolean;
  readonly dropped: number;
}

/**
 * A pino destination on a file descriptor (stdout by default) that can neither block nor
 * throw. pino's default (sonic-boom) retries a failed write forever when the process exits
 * (EPIPE included), which kept an orphaned app whose stdout had no reader from ever
 * finishing its shutdown. Here a write is one non-blocking attempt: the rest waits for a
 * timer (EAGAIN, a slow reader) or is dropped (EPIPE or any other error, or over the cap).
 */
export function safeDestination(fd = 1): SafeDestination {
  // Touching process.stdout/stderr makes libuv switch a pipe to non-blocking mode, so a
  // full pipe answers EAGAIN instead of blocking the event loop (and every timer with it).
  if (fd === 1) void process.stdout.fd;
  if (fd === 2) void process.stderr.fd;
  let pending: Buffer = Buffer.alloc(0);
  let broken = false;
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;

  const drain = (): void => {
    while (pending.length > 0 && !broken) {
      let written: number;
      try {
        written = writeSync(fd, pending);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          timer ??= setTimeout(() => {
            timer = undefined;
            drain();
          }, RETRY_MS);
          // A retry must never be what keeps a process alive that is otherwise done.
          timer.unref();
          return;
        }
        broken = true;
        pending = Buffer.alloc(0);
        return;
      }
      pending = pending.subarray(written);
    }
  };

  const destination: SafeDestination = {
    write(line: string) {
      if (broken) return;
      const chunk = Buffer.from(line);
      if (pending.length + chunk.length > MAX_PENDING_BYTES) {
        dropped += 1;
        return;
      }
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      if (!timer) drain();
    },
    flushOnce() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (broken || pending.length === 0) return;
      try {
        pending = pending.subarray(writeSync(fd, pending));
      } catch {
        // Exiting: whatever cannot be written now is lost, by design (see above).
      }
    },
    get broken() {
      return broken;
    },
    get dropped() {
      return dropped;
    },
  };
  return destination;
}
