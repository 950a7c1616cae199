import type { Redis } from 'ioredis';
import { isValueOrLease, type Keyspace } from './keys.ts';

/** Keys per SCAN step: large enough to finish a big namespace quickly, small enough not to block Redis. */
const SCAN_COUNT = 1000;

/**
 * Deletes every key of the namespace except the sequence, walking with SCAN + UNLINK (an
 * admin operation, never on a request path), in two passes whose order matters:
 *
 * 1. the protocol's keys (tag sets, version markers, their expiry index), then
 * 2. values and leases.
 *
 * A fill holding a lease taken before pass 2 reached it loses that lease, so it cannot
 * write, whatever markers or registrations pass 1 deleted. A fill whose lease survives took
 * it after pass 2 passed, so after pass 1 finished: it loads after every commit the flush is
 * meant to cover, and the markers and registrations it relies on are all written after pass 1.
 * A single pass in SCAN order could delete a marker written after such a fill's load.
 * The sequence is bumped and never deleted: it must never go backwards.
 */
export async function flushNamespace(
  redis: Redis,
  keys: Keyspace,
  onProgress?: (deleted: number) => void,
): Promise<number> {
  await redis.incr(keys.seq);
  let deleted = 0;
  for (const pass of [(k: string) => !isValueOrLease(keys, k), (k: string) => isValueOrLease(keys, k)]) {
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', keys.everything, 'COUNT', SCAN_COUNT);
      cursor = next;
      const doomed = batch.filter((k) => k !== keys.seq && pass(k));
      if (doomed.length > 0) {
        deleted += await redis.unlink(...doomed);
        onProgress?.(deleted);
      }
    } while (cursor !== '0');
  }
  return deleted;
}
