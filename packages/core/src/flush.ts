import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

/**
 * Deletes every key of the namespace except the sequence, walking with SCAN + UNLINK (an
 * admin operation, never on a request path). The sequence survives and is bumped: a fill
 * that started before the flush compares against it, and it must never go backwards.
 */
export async function flushNamespace(
  redis: Redis,
  keys: Keyspace,
  onProgress?: (deleted: number) => void,
): Promise<number> {
  await redis.incr(keys.seq);
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.everything, 'COUNT', 1000);
    cursor = next;
    const doomed = batch.filter((k) => k !== keys.seq);
    if (doomed.length > 0) {
      deleted += await redis.unlink(...doomed);
      onProgress?.(deleted);
    }
  } while (cursor !== '0');
  return deleted;
}
