import type { Cluster } from 'ioredis';

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

/**
 * Why 2 s: a healthy replica acknowledges a write within milliseconds; past this it is down
 * or far behind, and the store fails (the CDC backs off and retries) rather than wait.
 */
const REPLICA_ACK_TIMEOUT_MS = 2_000;

/** The replica did not confirm the queue's writes: a failover now could lose the job. */
export class QueueNotReplicatedError extends Error {
  readonly code = 'WALCACHE_QUEUE_NOT_REPLICATED';
}

/**
 * On a Redis Cluster the CDC acknowledges a commit to Postgres only once its job is on a
 * replica too: replication is asynchronous, and a master that dies before passing the job
 * on is replaced by a replica without it, an invalidation lost for good (the slot has moved
 * past the commit). One server instead relies on its AOF (`appendfsync always`).
 * `WAIT` counts the writes of this connection; ioredis keeps one connection per node, so the
 * pipeline's keyed command routes `WAIT` to the master of the queue's slot, after the job's
 * writes on the same connection. Not a guarantee against every failover (Redis' own
 * caveat), but it closes the common one: the master dying right after the add.
 */
export async function awaitQueueReplica(queue: Cluster, timeoutMs = REPLICA_ACK_TIMEOUT_MS): Promise<void> {
  const replies = await queue
    .pipeline()
    .exists(`${QUEUE_PREFIX}:replication`)
    .call('WAIT', 1, timeoutMs)
    .exec();
  const [error, acknowledged] = replies?.[1] ?? [new Error('no reply to WAIT')];
  if (error) throw error;
  if (Number(acknowledged) < 1)
    throw new QueueNotReplicatedError(
      `no replica of the queue's master acknowledged the job within ${timeoutMs} ms; the commit stays unacknowledged and the batch is retried`,
    );
}
