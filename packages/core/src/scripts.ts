import { ENTRY_MAGIC } from './codec.ts';
import type { RedisClient } from './connect.ts';

/**
 * Step 5 of the fill protocol: write the value only while our lease still stands. An
 * invalidation that found this key deleted the lease, and a refresh that started later took
 * it over, so a stale or older value loses here. Second guard: a cached entry whose version
 * (the sequence its fill started at, in the `wc2 <version> …` header) is newer than ours is
 * never overwritten, whatever the lease says.
 * Returns 1 written, 0 lease lost, 2 a newer entry is cached.
 * KEYS[1]=value KEYS[2]=lease ARGV[1]=token ARGV[2]=entry ARGV[3]=ttl ms ARGV[4]=version
 */
/** Deletes a lease only while it holds our token (a later fill or refresh may have taken it). */
const releaseIfOursLua = `
local function releaseIfOurs(lease, token)
  if redis.call('GET', lease) == token then return redis.call('DEL', lease) end
  return 0
end
`;

const fillCasLua = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local current = redis.call('GET', KEYS[1])
if current then
  local v = tonumber(string.match(current, '^${ENTRY_MAGIC} (%d+) '))
  if v and v > tonumber(ARGV[4]) then return 2 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;

/**
 * Steps 3 to 5 of the fill protocol in one call, on one server: register the value under
 * its tags, check the tags' version markers against the fill's sequence, and compare-and-set
 * (the script above). In one script nothing runs between the steps, which the protocol only
 * needs in this order; sent apart they were two round trips of every miss. A tag invalidated
 * since the fill's sequence read gives the lease back (if still ours) and writes nothing.
 * Returns 1 written, 0 lease lost, 2 a newer entry is cached, 3 a tag was invalidated.
 * KEYS[1]=value KEYS[2]=lease KEYS[3..2+n]=tag sets KEYS[3+n..2+2n]=version markers
 * ARGV[1]=token ARGV[2]=entry ARGV[3]=ttl ms ARGV[4]=version (the fill's sequence) ARGV[5]=n
 */
const fillCheckedLua = `${releaseIfOursLua}
local n = tonumber(ARGV[5])
for i = 3, 2 + n do redis.call('SADD', KEYS[i], KEYS[1]) end
local s0 = tonumber(ARGV[4])
for i = 3 + n, 2 + 2 * n do
  local marker = tonumber(redis.call('GET', KEYS[i]))
  if marker and marker > s0 then
    releaseIfOurs(KEYS[2], ARGV[1])
    return 3
  end
end
${fillCasLua}`;

/**
 * Lua shared by the invalidation scripts below, so each step is written once.
 * `indexExpiry`: each tag's entry in the markers' expiry index (a sorted set scored by when
 * its window ends), raised, never lowered (GT), in one ZADD for the batch.
 * `pruneDue`: deletes up to `max` markers whose window passed and their index entries, one
 * UNLINK and one ZREM for all of them.
 * `markAll`: each marker set to `seq` with its expiry entry, for a `seq` just drawn in the
 * same script (no marker can hold a newer one, so none is read first).
 * `cleanupSets`: step 2 of an invalidation on one server (see cleanupTagSetsLua).
 * Each is one command per step for the whole batch, not one per tag: a call from Lua costs
 * Redis a few microseconds whatever it does, and per tag these were the largest share of
 * Redis' time per job (docs/benchmarks.md).
 * Times are Redis' clock (TIME): with each process's own clock, an invalidator whose clock
 * runs ahead would prune markers other processes wrote before their window had passed.
 */
const invalidationLuaFunctions = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function indexExpiry(expiryKey, tags, windowMs)
  local expires, args = nowMs() + windowMs, {}
  for _, tag in ipairs(tags) do
    args[#args + 1] = expires
    args[#args + 1] = tag
  end
  redis.call('ZADD', expiryKey, 'GT', unpack(args))
end
local function markAll(expiryKey, markerKeys, tags, windowMs, seq)
  indexExpiry(expiryKey, tags, windowMs)
  local args = {}
  for _, key in ipairs(markerKeys) do
    args[#args + 1] = key
    args[#args + 1] = seq
  end
  redis.call('MSET', unpack(args))
end
local function pruneDue(expiryKey, markerPrefix, max)
  local due = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', nowMs(), 'LIMIT', 0, max)
  if #due == 0 then return 0 end
  local markers = {}
  for i, tag in ipairs(due) do markers[i] = markerPrefix .. tag end
  redis.call('UNLINK', unpack(markers))
  redis.call('ZREM', expiryKey, unpack(due))
  return #due
end
local function cleanupSets(tagSets, head, leaseSuffix)
  local values, sets, leases = {}, {}, {}
  for _, set in ipairs(tagSets) do
    local members = redis.call('SMEMBERS', set)
    if #members > 0 then
      sets[#sets + 1] = set
      for _, k in ipairs(members) do values[#values + 1] = k end
    end
  end
  for _, k in ipairs(values) do
    if string.sub(k, 1, #head) == head and string.byte(k, -1) == 125 then leases[#leases + 1] = k .. leaseSuffix end
  end
  for _, list in ipairs({ leases, values, sets }) do
    for i = 1, #list, 1000 do redis.call('UNLINK', unpack(list, i, math.min(i + 999, #list))) end
  end
  return values
end
local function slice(list, first, last)
  local out = {}
  for i = first, last do out[#out + 1] = list[i] end
  return out
end
`;

/**
 * Step 1 of an invalidation: raise each tag's version marker to `seq`, never lower it.
 * Invalidation jobs run concurrently (several workers, several processes): a plain SET from
 * a slow job with seq 6 landing after a fast one with seq 7 would lower the marker, and a
 * fill that started at seq 6 would then miss the newer invalidation (a stale fill).
 * The expiry index entry is written in the same script, so a concurrent prune can never
 * delete a marker between its write and its expiry update.
 * Markers carry no TTL on purpose: with the cache Redis on `volatile-lru`, only values and
 * leases (which have TTLs) can be evicted, never a marker a running fill still has to see.
 * KEYS[1]=expiry zset, KEYS[2..]=markers; ARGV[1]=seq ARGV[2]=window ms ARGV[3..]=tags
 */
const bumpTagVersionsLua = `${invalidationLuaFunctions}
local seq = tonumber(ARGV[1])
indexExpiry(KEYS[1], slice(ARGV, 3, #ARGV), tonumber(ARGV[2]))
local current, raise = redis.call('MGET', unpack(KEYS, 2)), {}
for i = 2, #KEYS do
  local v = tonumber(current[i - 1])
  if v == nil or v < seq then
    raise[#raise + 1] = KEYS[i]
    raise[#raise + 1] = ARGV[1]
  end
end
if #raise > 0 then redis.call('MSET', unpack(raise)) end
return #KEYS - 1`;

/**
 * INCR of the sequence and the first marker batch in one call, on one server: the job's
 * first round trip does both. Nothing runs between the INCR and the markers, so every
 * marker holds an older sequence than the one just drawn: each is set to it with no read
 * (the bump above reads them: other jobs draw sequences between its calls). Returns the seq.
 * KEYS[1]=seq KEYS[2]=expiry zset, KEYS[3..]=markers; ARGV[1]=window ms ARGV[2..]=tags
 */
export const incrBumpTagVersionsLua = `${invalidationLuaFunctions}
local seq = redis.call('INCR', KEYS[1])
if #KEYS < 3 then return seq end
markAll(KEYS[2], slice(KEYS, 3, #KEYS), slice(ARGV, 2, #ARGV), tonumber(ARGV[1]), seq)
return seq`;

/**
 * Deletes version markers whose window has passed; the expiry index is what bounds their
 * number. KEYS[1]=expiry zset ARGV[1]=marker key prefix ARGV[2]=max per call
 */
const pruneTagVersionsLua = `${invalidationLuaFunctions}
return pruneDue(KEYS[1], ARGV[1], tonumber(ARGV[2]))`;

/**
 * Step 2 of an invalidation on one server, inside Redis: read the tag sets, unlink every
 * member's lease, then every member, then the sets. A script runs whole with nothing in
 * between, so deleting a set after reading it removes exactly the members read (a fill can
 * only register before or after the script). Sent from the invalidator, the members went to
 * it and came back three times as arguments (SREM, lease UNLINK, value UNLINK): a 10 000-key
 * fan-out spent more time encoding and parsing them than Redis spent deleting.
 * A script is not rolled back when a command in it fails (an ACL refusing a key, say), so
 * the sets go last: whatever stopped it, the retry finds every member again. Its effects
 * reach the AOF and the replicas as one MULTI/EXEC block (Redis 7 replicates scripts by
 * their effects), so a restart or a failover cannot split them either.
 * The values and leases are keys the script does not declare: one server allows it (a Redis
 * Cluster takes the step-by-step path in invalidate.ts).
 * Duplicates (a key in two sets) are unlinked twice, which is harmless; the caller dedupes.
 * KEYS = tag sets; ARGV[1] = what every value key starts with (`wc:{`), ARGV[2] = what a lease
 * key adds to its value key (`:lease`). Returns the members.
 */
const cleanupTagSetsLua = `${invalidationLuaFunctions}
return cleanupSets(KEYS, ARGV[1], ARGV[2])`;

/**
 * A whole invalidation of up to one marker batch of tags on one server, in one call: the
 * INCR and the markers (as incrBumpTagVersionsLua), step 2 (as cleanupTagSetsLua), then one
 * prune of expired markers. One script keeps the protocol's order with nothing between the
 * steps, where the steps took two round trips and three scripts, each a fixed cost to Redis
 * and to the invalidator whatever the job's size.
 * KEYS[1]=seq KEYS[2]=expiry zset KEYS[3..2+n]=markers KEYS[3+n..2+2n]=tag sets
 * ARGV[1]=n ARGV[2]=window ms ARGV[3]=value key head ARGV[4]=lease suffix
 * ARGV[5]=marker key prefix ARGV[6]=max markers pruned ARGV[7..6+n]=tags
 * Returns { seq, the members deleted, markers pruned }.
 */
const invalidateOnceLua = `${invalidationLuaFunctions}
local n = tonumber(ARGV[1])
local seq = redis.call('INCR', KEYS[1])
markAll(KEYS[2], slice(KEYS, 3, 2 + n), slice(ARGV, 7, 6 + n), tonumber(ARGV[2]), seq)
local values = cleanupSets(slice(KEYS, 3 + n, 2 + 2 * n), ARGV[3], ARGV[4])
local pruned = pruneDue(KEYS[2], ARGV[5], tonumber(ARGV[6]))
return { seq, values, pruned }`;

/** Gives a lease back only if it is still ours. KEYS[1]=lease ARGV[1]=token */
const releaseLeaseLua = `${releaseIfOursLua}
return releaseIfOurs(KEYS[1], ARGV[1])`;

export interface WalcacheCommands {
  walcacheReleaseLease(lease: string, token: string): Promise<number>;
  walcacheFillCas(
    value: string,
    lease: string,
    token: string,
    entry: Buffer,
    ttlMs: number,
    version: number,
  ): Promise<number>;
  walcacheFillChecked(...keysThenArgs: (string | number | Buffer)[]): Promise<number>;
  walcacheBumpTagVersions(...keysThenArgs: (string | number)[]): Promise<number>;
  walcachePruneTagVersions(expiryKey: string, markerPrefix: string, max: number): Promise<number>;
  walcacheCleanupTagSets(...keysThenArgs: (string | number)[]): Promise<string[]>;
  walcacheInvalidateOnce(...keysThenArgs: (string | number)[]): Promise<[number, string[], number]>;
}

export type WalcacheRedis = RedisClient & WalcacheCommands;

/** Registers walcache's Lua on a client (idempotent); ioredis sends EVALSHA with EVAL fallback. */
export function withCommands(redis: RedisClient): WalcacheRedis {
  const r = redis as WalcacheRedis;
  if (typeof r.walcacheBumpTagVersions !== 'function') {
    redis.defineCommand('walcacheFillCas', { numberOfKeys: 2, lua: fillCasLua });
    redis.defineCommand('walcacheReleaseLease', { numberOfKeys: 1, lua: releaseLeaseLua });
    redis.defineCommand('walcachePruneTagVersions', { numberOfKeys: 1, lua: pruneTagVersionsLua });
    // Variable key count: the caller passes numkeys first.
    redis.defineCommand('walcacheBumpTagVersions', { lua: bumpTagVersionsLua });
    redis.defineCommand('walcacheCleanupTagSets', { lua: cleanupTagSetsLua });
    redis.defineCommand('walcacheFillChecked', { lua: fillCheckedLua });
    redis.defineCommand('walcacheInvalidateOnce', { lua: invalidateOnceLua });
  }
  return r;
}
