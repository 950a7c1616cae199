import type { Logger } from 'pino';

/** The parent this process started under, read when the app's modules load (at startup). */
const startPpid = process.ppid;

/** Why 500 ms: an orphan must notice within a second; one getppid() per half second is free. */
const PPID_POLL_MS = 500;

export interface ShutdownOptions {
  /** Bound of a stop asked for by SIGTERM/SIGINT: in-flight work gets this long. */
  timeoutMs?: number;
  /**
   * Bound of a stop because the supervisor is gone. Why 3 s: whatever started this process
   * is dead, and so (usually) are the servers it started with it; in-flight work either
   * finishes quickly or is redone on the next start (nothing is acknowledged that is not
   * stored), and `npm start` promises that nothing of it is left 5 s after a kill -9.
   */
  orphanTimeoutMs?: number;
  /** Exit when the parent process goes away (default on; see watchParent). */
  watchParent?: boolean;
}

/**
 * Runs `close` once on SIGTERM or SIGINT, or when the parent process is gone, then exits.
 * A second signal while closing forces the exit: an operator pressing Ctrl-C twice means it.
 * `close` must finish in-flight work. The deadline is armed before anything else (a log
 * line included), so nothing can keep a process alive that was told to stop.
 */
export function onShutdown(
  logger: Logger,
  close: () => Promise<void>,
  { timeoutMs = 15_000, orphanTimeoutMs = 3_000, watchParent: watch = true }: ShutdownOptions = {},
): void {
  let closing = false;
  const stop = (reason: string, deadlineMs: number, force: boolean) => {
    if (closing) {
      if (!force) return;
      quietly(() => logger.warn({ reason }, 'second signal: exiting now'));
      process.exit(1);
    }
    closing = true;
    // Why a deadline: a hung dependency must not keep a process alive that was told to stop.
    const timer = setTimeout(() => {
      quietly(() => logger.error({ timeoutMs: deadlineMs }, 'shutdown took too long; exiting'));
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    quietly(() => logger.info({ reason }, 'shutting down'));
    close().then(
      () => {
        quietly(() => logger.info('stopped'));
        process.exit(0);
      },
      (error: unknown) => {
        quietly(() => logger.error({ err: error }, 'shutdown failed'));
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', timeoutMs, true));
  process.on('SIGINT', () => stop('SIGINT', timeoutMs, true));
  if (watch) watchParent(() => stop('parent process exited', orphanTimeoutMs, false));
}

/**
 * Calls `onGone` once when the process that started this one is gone: its IPC channel
 * closes (a parent that spawned us with one, like `npm start`) or we are reparented (any
 * other parent; the kernel hands orphans to init or a subreaper). A process that is meant to
 * outlive its parent should be started by a real supervisor (systemd, a container runtime),
 * which does not go away.
 */
export function watchParent(onGone: () => void): void {
  let gone = false;
  const fire = () => {
    if (gone) return;
    gone = true;
    clearInterval(poll);
    onGone();
  };
  const poll = setInterval(() => {
    if (process.ppid !== startPpid) fire();
  }, PPID_POLL_MS);
  poll.unref();
  if (process.channel) {
    // The channel is how the supervisor's death is heard, not a reason to stay alive.
    process.channel.unref();
    process.once('disconnect', fire);
    if (!process.connected) fire();
  }
  if (process.ppid !== startPpid) fire();
}

/** A log call during shutdown must not be able to throw into a signal handler. */
function quietly(log: () => void): void {
  try {
    log();
  } catch {
    // The destination is broken; the exit goes ahead without this line.
  }
}

/** True when the module at `metaUrl` is the process entry point (not imported by a test). */
export function isMain(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  const path = new URL(metaUrl).pathname;
  return path === entry || path.replace(/\.ts$/, '') === entry.replace(/\.ts$/, '');
}
