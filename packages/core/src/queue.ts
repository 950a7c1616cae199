/**
 * Names and options of the invalidation queue, shared by the CDC (producer) and the
 * invalidator (consumer) so they cannot drift apart.
 */
export const QUEUE_PREFIX = '{walcache}'; // the hash tag keeps BullMQ's keys on one Cluster slot

export const invalidationJobOptions = {
  // Why 8 attempts with exponential backoff from 500 ms: the retries wait 0.5+1+…+32 s, about
  // a minute, which covers a Redis failover or a Postgres restart (refresh loads); past that
  // the job falls back to a table-wide invalidation rather than leave a stale key.
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  // Completed jobs are kept an hour (for the dashboard and the auditor), failed ones a week.
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;
