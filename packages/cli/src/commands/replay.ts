import type { Clients } from '../context.ts';
import { confirm, type Io } from '../io.ts';

/** Jobs moved back per Redis call: bounded so a week of failures does not block Redis at once. */
const RETRY_BATCH = 100;

/**
 * Moves every failed invalidation job back to waiting. Safe: invalidation is idempotent, and
 * a job that already fell back to a table-wide invalidation only runs again.
 */
export async function replayFailedCommand(
  clients: Clients,
  io: Io,
  options: { yes: boolean; json: boolean },
): Promise<void> {
  const queue = await clients.queue();
  const { failed = 0 } = await queue.getJobCounts('failed');
  if (failed === 0) {
    io.out(options.json ? JSON.stringify({ requeued: 0 }) : 'no failed jobs');
    return;
  }
  await confirm(io, `requeue ${failed} failed invalidation jobs of queue "${queue.name}"`, options.yes);
  io.err(`requeueing ${failed} failed jobs…`);
  // `timestamp`: only jobs that failed before now, so a job failing again at once is not
  // picked up a second time by this same command.
  await queue.retryJobs({ state: 'failed', count: RETRY_BATCH, timestamp: Date.now() });
  const { failed: left = 0 } = await queue.getJobCounts('failed');
  const requeued = Math.max(0, failed - left);
  io.out(
    options.json
      ? JSON.stringify({ requeued, stillFailed: left })
      : `requeued ${requeued} jobs${left > 0 ? `; ${left} are failed (again or newly)` : ''}`,
  );
}
