import { compareLsn, invalidationJobSchema } from '@walcache/core';
import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { readSlot } from './slot.ts';

/** Jobs per pending state inspected when deciding whether the queue passed an LSN (oldest first). */
const PENDING_PEEK = 200;

/**
 * True once every change below `lsn` has been invalidated: the CDC acknowledged the slot
 * past it (so its jobs are stored) and no pending job starts at or below it (so they ran).
 * The auditor asks it before calling a value stale; `walcache verify` after each write.
 */
export async function pipelinePassed<DB>(
  db: Kysely<DB>,
  queue: Queue,
  slotName: string,
  lsn: string,
): Promise<boolean> {
  const slot = await readSlot(db, slotName);
  return (
    slot.confirmedFlushLsn !== null &&
    compareLsn(slot.confirmedFlushLsn, lsn) >= 0 &&
    !(await jobsAtOrBelow(queue, lsn))
  );
}

async function jobsAtOrBelow(queue: Queue, lsn: string): Promise<boolean> {
  // Waiting jobs are FIFO in LSN order, so the oldest ones decide; delayed (retrying) and
  // active ones are few.
  const jobs = await queue.getJobs(
    ['active', 'waiting', 'prioritized', 'delayed'],
    0,
    PENDING_PEEK - 1,
    true,
  );
  return jobs.some((job) => {
    const data = invalidationJobSchema.safeParse(job?.data);
    // A job we cannot read might cover anything: treat it as pending.
    return !data.success || compareLsn(data.data.lsnFrom, lsn) <= 0;
  });
}
