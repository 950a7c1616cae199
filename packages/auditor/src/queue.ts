import { invalidationJobSchema } from '@walcache/core';
import type { Job, Queue } from 'bullmq';

/** The job states an operator watches (BullMQ's names). */
export const QUEUE_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'failed',
  'completed',
  'paused',
  'waiting-children',
] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/** Jobs not processed yet: a retry waits in `delayed`, so it is pending work too. */
export const PENDING_STATES = ['waiting', 'prioritized', 'delayed', 'active'] as const;

export interface QueueCounts {
  counts: Record<QueueState, number>;
  /** Age of the oldest job that waits for a worker (waiting, prioritized or delayed), seconds. */
  oldestPendingAgeSeconds: number | null;
}

export async function readQueueCounts(queue: Queue, now = Date.now()): Promise<QueueCounts> {
  const raw = await queue.getJobCounts(...QUEUE_STATES);
  const counts = Object.fromEntries(QUEUE_STATES.map((s) => [s, raw[s] ?? 0])) as Record<QueueState, number>;
  let oldest: number | undefined;
  for (const state of ['waiting', 'prioritized', 'delayed'] as const) {
    if (counts[state] === 0) continue;
    // asc = true: the oldest first. Only one job per state is fetched.
    const [job] = await queue.getJobs([state], 0, 0, true);
    if (job?.timestamp !== undefined) oldest = Math.min(oldest ?? job.timestamp, job.timestamp);
  }
  return {
    counts,
    oldestPendingAgeSeconds: oldest === undefined ? null : Math.max(0, (now - oldest) / 1000),
  };
}

export interface FailedJobSummary {
  id: string;
  reason: string;
  attemptsMade: number;
  failedAt: string | null;
  tags: number | null;
}

/** The most recently failed jobs, newest first. */
export async function recentFailedJobs(queue: Queue, limit = 5): Promise<FailedJobSummary[]> {
  const jobs = await queue.getJobs(['failed'], 0, limit - 1, false);
  return jobs.filter(isJob).map((job) => {
    const data = invalidationJobSchema.safeParse(job.data);
    return {
      id: String(job.id),
      reason: job.failedReason ?? '',
      attemptsMade: job.attemptsMade,
      failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
      tags: data.success ? data.data.tags.length : null,
    };
  });
}

export interface LatencySummary {
  windowSeconds: number;
  /** Completed jobs in the window that carried a commit timestamp. */
  jobs: number;
  p50Seconds: number | null;
  p99Seconds: number | null;
  maxSeconds: number | null;
}

/**
 * Commit → invalidated latency over the last `windowSeconds`, from the completed jobs BullMQ
 * keeps (an hour, see invalidationJobOptions): `finishedOn − data.lastCommitMs` per job.
 * At most `maxJobs` of the newest are read, so a status request stays cheap under load.
 */
export async function invalidationLatency(
  queue: Queue,
  { windowSeconds = 300, maxJobs = 500, now = Date.now() } = {},
): Promise<LatencySummary> {
  const since = now - windowSeconds * 1000;
  const jobs = await queue.getJobs(['completed'], 0, maxJobs - 1, false);
  const samples: number[] = [];
  for (const job of jobs) {
    if (!isJob(job) || !job.finishedOn || job.finishedOn < since) continue;
    const data = invalidationJobSchema.safeParse(job.data);
    if (!data.success) continue;
    samples.push(Math.max(0, job.finishedOn - data.data.lastCommitMs) / 1000);
  }
  samples.sort((a, b) => a - b);
  return {
    windowSeconds,
    jobs: samples.length,
    p50Seconds: quantile(samples, 0.5),
    p99Seconds: quantile(samples, 0.99),
    maxSeconds: samples.at(-1) ?? null,
  };
}

/** Nearest-rank quantile of sorted samples. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? null;
}

/** BullMQ returns undefined holes for jobs removed between the range read and the fetch. */
function isJob(job: Job | undefined): job is Job {
  return job !== undefined && job !== null;
}
