import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

/** Keys per SCAN step: large enough to finish a big namespace quickly, small enough not to block Redis. */
const SCAN_COUNT = 1000;

/**
 * Deletes every key of the namespace except the sequence and the flush marker, walking with
 * SCAN + UNLINK (an admin operation, never on a request path). The sequence is bumped and
 * stored as the flush marker *before* anything is deleted: a fill that started before the
 * flush compares against that marker and refuses to cache, although the tag markers it would
 * have seen are gone. The sequence never goes backwards.
 */
export async function flushNamespace(
  redis: Redis,
  keys: Keyspace,
  onProgress?: (deleted: number) => void,
): Promise<number> {
  const seq = await redis.incr(keys.seq);
  await redis.set(keys.flushVersion, seq);
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.everything, 'COUNT', SCAN_COUNT);
    cursor = next;
    const doomed = batch.filter((k) => k !== keys.seq && k !== keys.flushVersion);
    if (doomed.length > 0) {
      deleted += await redis.unlink(...doomed);
      onProgress?.(deleted);
    }
  } while (cursor !== '0');
  return deleted;
}
