import type { Redis } from 'ioredis';

/**
 * Step 5 of the fill protocol: write the value only while our lease still stands. An
 * invalidation that ran during the load deleted the lease, so a stale value loses here.
 * KEYS[1]=value KEYS[2]=lease ARGV[1]=token ARGV[2]=entry ARGV[3]=ttl ms
 */
const fillCasLua = `
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0`;

/**
 * Deletes version markers whose window has passed. Markers carry no TTL on purpose: with
 * the cache Redis on `volatile-lru`, only values (which have TTLs) can be evicted, never a
 * marker a running fill still has to see. The expiry index is what bounds their number.
 * KEYS[1]=expiry zset ARGV[1]=now ms ARGV[2]=marker key prefix ARGV[3]=max per call
 */
const pruneTagVersionsLua = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, tag in ipairs(due) do
  redis.call('UNLINK', ARGV[2] .. tag)
  redis.call('ZREM', KEYS[1], tag)
end
return #due`;

/** Gives a lease back only if it is still ours. KEYS[1]=lease ARGV[1]=token */
const releaseLeaseLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface WalcacheCommands {
  walcacheReleaseLease(lease: string, token: string): Promise<number>;
  walcacheFillCas(value: string, lease: string, token: string, entry: Buffer, ttlMs: number): Promise<number>;
  walcachePruneTagVersions(
    expiryKey: string,
    nowMs: number,
    markerPrefix: string,
    max: number,
  ): Promise<number>;
}

export type WalcacheRedis = Redis & WalcacheCommands;

/** Registers walcache's Lua on a client (idempotent); ioredis sends EVALSHA with EVAL fallback. */
export function withCommands(redis: Redis): WalcacheRedis {
  const r = redis as WalcacheRedis;
  if (typeof r.walcacheFillCas !== 'function') {
    redis.defineCommand('walcacheFillCas', { numberOfKeys: 2, lua: fillCasLua });
    redis.defineCommand('walcacheReleaseLease', { numberOfKeys: 1, lua: releaseLeaseLua });
    redis.defineCommand('walcachePruneTagVersions', { numberOfKeys: 1, lua: pruneTagVersionsLua });
  }
  return r;
}
