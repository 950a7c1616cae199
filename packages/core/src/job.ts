import { z } from 'zod';

/**
 * The invalidation job the CDC enqueues and the invalidator runs. Validated on both sides:
 * a payload that does not parse fails the job with the reason, it never half-runs.
 */
export const invalidationJobSchema = z.object({
  v: z.literal(1),
  tags: z.array(z.string().min(3).max(1024)).max(100_000),
  /** First and last commit LSN covered (`X/Y` text form). */
  lsnFrom: z.string().regex(/^[0-9A-F]+\/[0-9A-F]+$/),
  lsnTo: z.string().regex(/^[0-9A-F]+\/[0-9A-F]+$/),
  /** Commit timestamps (ms since epoch) of the first and last transaction in the batch. */
  firstCommitMs: z.number().int().nonnegative(),
  lastCommitMs: z.number().int().nonnegative(),
  transactions: z.number().int().positive(),
  /** When the CDC stored the job; commit → enqueued → invalidated latency is measured from these. */
  enqueuedMs: z.number().int().nonnegative(),
  /**
   * Keys whose refresh failed in an earlier attempt of this job. Their tag-set entries were
   * removed by that attempt, so a retry would not find them again: the worker records them
   * here (job.updateData) before it throws.
   */
  refreshKeys: z.array(z.string().min(1).max(1024)).max(100_000).optional(),
  /**
   * Delete only, no refresh: set on the table-wide fallback job, which must succeed whenever
   * Redis is up (a refresh could keep failing for the reason the original job did).
   */
  deleteOnly: z.boolean().optional(),
});

export type InvalidationJob = z.infer<typeof invalidationJobSchema>;

/** BullMQ job ids may not contain ':' and may not be all digits. */
export function jobIdForLsn(lsn: string): string {
  return `lsn-${lsn.replace('/', '-')}`;
}

export const INVALIDATE_JOB_NAME = 'invalidate';
