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
  /**
   * The end of the job the CDC stored before this one on its connection (or the slot
   * position it began streaming from): the job covers every commit in `(after, lsnTo]`, and
   * its completion advances the read-your-writes watermark (watermark.ts). Absent in jobs of
   * older CDCs, which do not advance it.
   */
  after: z
    .string()
    .regex(/^[0-9A-F]+\/[0-9A-F]+$/)
    .optional(),
  /** Commit timestamps (ms since epoch) of the first and last transaction in the batch. */
  firstCommitMs: z.number().int().nonnegative(),
  lastCommitMs: z.number().int().nonnegative(),
  transactions: z.number().int().positive(),
  /**
   * The 32-bit xids of the batch's transactions that carry tags: the invalidator waits until
   * every one is visible before it invalidates (see visibility.ts). Absent in jobs of older
   * CDCs, which are run without that wait.
   */
  xids: z.array(z.number().int().min(0).max(0xffff_ffff)).max(100_000).optional(),
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

/**
 * Which database history a commit LSN belongs to: the cluster's `system_identifier` and its
 * WAL timeline. The same LSN names different commits after a re-initdb (another cluster), a
 * PITR or a failover (another timeline).
 */
export interface SourceIdentity {
  systemId: string;
  timeline: number;
}

/** The identity as one string (the CDC's in-sync marker records it). */
export function sourceKey(source: SourceIdentity): string {
  return `${source.systemId}-${source.timeline}`;
}

/**
 * The job id of the batch ending at `lsn`: deterministic, so a replay that forms the same
 * batch is deduplicated, and qualified by the source, so a commit of another cluster or
 * timeline at the same LSN is never taken for a duplicate (and dropped while the CDC acks).
 * BullMQ job ids may not contain ':' and may not be all digits.
 */
export function jobIdForCommit(source: SourceIdentity, lsn: string): string {
  return `lsn-${sourceKey(source)}-${lsn.replace('/', '-')}`;
}

export const INVALIDATE_JOB_NAME = 'invalidate';
