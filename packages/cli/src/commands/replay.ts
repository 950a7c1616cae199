import type { Clients } from '../context.ts';
import { confirm, type Io } from '../io.ts';

/** Failed jobs fetched and requeued per step: bounded so a week of failures never blocks Redis. */
const RETRY_BATCH = 100;

/**
 * Moves every failed invalidation job back to waiting, oldest first, with progress. Safe:
 * invalidation is idempotent, and a job that already fell back to a table-wide invalidation
 * only runs again. Only jobs that failed before the command started are requeued, so a job
 * that fails again at once is not picked up a second time.
 */
export async function replayFailedCommand(
  clients: Clients,
  io: Io,
  options: { yes: boolean; json: boolean },
): Promise<void> {
  const queue = await clients.queue();
  const startedAt = Date.now();
  const { failed = 0 } = await queue.getJobCounts('failed');
  if (failed === 0) {
    io.out(options.json ? JSON.stringify({ requeued: 0 }) : 'no failed jobs');
    return;
  }
  await confirm(io, `requeue ${failed} failed invalidation jobs of queue "${queue.name}"`, options.yes);
  let requeued = 0;
  for (;;) {
    // asc: the oldest failures first; requeued jobs leave the failed set, so each step reads the next ones.
    const batch = (await queue.getJobs(['failed'], 0, RETRY_BATCH - 1, true)).filter(
      (job) => job !== undefined && (job.finishedOn ?? 0) <= startedAt,
    );
    if (batch.length === 0) break;
    for (const job of batch) {
      await job.retry('failed');
      requeued += 1;
    }
    io.err(`  … ${requeued}/${failed} requeued`);
  }
  io.out(options.json ? JSON.stringify({ requeued }) : `requeued ${requeued} failed jobs`);
}
