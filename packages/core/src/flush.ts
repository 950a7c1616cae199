import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isCluster, mastersOf, type RedisClient } from './connect.ts';
import { isNamespaceState, isValueOrLease, type Keyspace } from './keys.ts';

/** Keys per SCAN step: large enough to finish a big namespace quickly, small enough not to block Redis. */
const SCAN_COUNT = 1000;

/**
 * Deletes every key of the namespace except its state (`isNamespaceState`: the sequence,
 * the generation, the CDC's in-sync markers), walking with SCAN + UNLINK (an
 * admin operation, never on a request path), in three passes whose order matters:
 *
 * 1. the protocol's keys (tag sets, version markers, their expiry index), then
 * 2. values and leases, then
 * 3. values and leases again.
 *
 * The sequence is bumped first and never deleted (it must never go backwards): a fill
 * takes its lease before it reads the sequence, so a fill whose lease was taken after the
 * flush began read a sequence at or above the flush's and loaded after the flush began.
 * A fill whose lease is older than the flush either writes before pass 2 has begun (its
 * value exists throughout pass 2, and SCAN returns every key present for a whole walk), or
 * writes during pass 2 (its value exists throughout pass 3), or finds its lease deleted by
 * pass 2 (present throughout it until then). Without pass 3, a value written during pass 2
 * is a key created mid-walk, which SCAN need not return: it survived the flush
 * (`test/core/holes.test.ts`, item 4).
 *
 * On a Redis Cluster each pass walks every master before the next pass begins (the argument
 * above holds per key, whichever master holds it), and each key is unlinked on its own: the
 * keys one SCAN step returns lie in many slots, and a multi-key UNLINK must stay in one.
 */
export async function flushNamespace(
  redis: RedisClient,
  keys: Keyspace,
  onProgress?: (deleted: number) => void,
  /** Test seam: awaited after each SCAN step of each pass (0-based). */
  afterStep?: (pass: number) => Promise<void> | void,
): Promise<number> {
  await redis.incr(keys.seq);
  let deleted = 0;
  const protocolKey = (k: string) => !isValueOrLease(keys, k);
  const valueOrLease = (k: string) => isValueOrLease(keys, k);
  const passes = [protocolKey, valueOrLease, valueOrLease];
  const clustered = isCluster(redis);
  for (const [index, pass] of passes.entries()) {
    for (const node of mastersOf(redis)) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', keys.everything, 'COUNT', SCAN_COUNT);
        cursor = next;
        const doomed = batch.filter((k) => !isNamespaceState(keys, k) && pass(k));
        if (doomed.length > 0) {
          deleted += clustered ? await unlinkEach(node, doomed) : await node.unlink(...doomed);
          onProgress?.(deleted);
        }
        await afterStep?.(index);
      } while (cursor !== '0');
    }
  }
  // Last, once every pass is done: a warm-up that sees the new marker fills an emptied
  // namespace, never one a pass is still emptying.
  await redis.set(keys.flushed, `${Date.now()}-${randomBytes(6).toString('base64url')}`);
  return deleted;
}

/**
 * Deletes every key matching `pattern` on every master (an admin walk: `walcache flush
 * <resource>`), key by key on a cluster. Returns how many were deleted.
 */
export async function unlinkMatching(
  redis: RedisClient,
  pattern: string,
  onProgress?: (deleted: number) => void,
): Promise<number> {
  const clustered = isCluster(redis);
  let deleted = 0;
  for (const node of mastersOf(redis)) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (batch.length > 0) {
        deleted += clustered ? await unlinkEach(node, batch) : await node.unlink(...batch);
        onProgress?.(deleted);
      }
    } while (cursor !== '0');
  }
  return deleted;
}

/** UNLINK key by key in one pipeline on one node (the keys lie in several slots). */
async function unlinkEach(node: Redis, doomed: string[]): Promise<number> {
  const pipeline = node.pipeline();
  for (const key of doomed) pipeline.unlink(key);
  let count = 0;
  for (const [error, removed] of (await pipeline.exec()) ?? []) {
    if (error) throw error;
    count += Number(removed);
  }
  return count;
}
