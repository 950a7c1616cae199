import { isCluster, mastersOf, type RedisClient } from './connect.ts';
import { type Keyspace, resourceKeyOf } from './keys.ts';

/**
 * The tag index keeps a member for every value registered under a tag, and nothing removes
 * it when the value expires or is evicted: only an invalidation of that very tag does. A tag
 * that never changes (the row tag of an id that does not exist, asked for once) would keep
 * its set for good, a few hundred bytes of unevictable memory per request for a random id.
 * The sweeper walks every tag set and removes the members whose value is gone.
 *
 * A member may be removed only when neither its value nor its lease exists, checked and
 * removed in one script: a fill registers its tags while it holds its lease (step 3) and
 * writes its value in the same script that deletes the lease (step 5), so at every moment of
 * a fill that can still cache, the lease or the value exists. A fill whose lease expired
 * cannot cache (its compare-and-set fails), so removing its member loses nothing.
 * KEYS[1]=tag set, then pairs KEYS[2i]=value KEYS[2i+1]=lease; returns the members removed.
 */
const removeIfGoneLua = `
local function removeIfGone(set, value, lease)
  if redis.call('EXISTS', value) == 0 and redis.call('EXISTS', lease) == 0 then
    return redis.call('SREM', set, value)
  end
  return 0
end
`;
const sweepMembersLua = `${removeIfGoneLua}
local removed = 0
for i = 2, #KEYS, 2 do removed = removed + removeIfGone(KEYS[1], KEYS[i], KEYS[i + 1]) end
return removed`;

/**
 * One server: a batch of tag sets found by SCAN, each read and swept by the check above,
 * in one call. Swept from the client, every set cost two round trips (SSCAN, then the
 * check) and a pause, and most sets hold a few members: on the bench's full profile a pass
 * lasted about its interval, so the sweeper never rested and took a share of the
 * invalidator and of Redis at every moment (docs/benchmarks.md). A set of more than
 * `max` members, and every set past a budget of `budget` members in the call, is left to the
 * caller, which sweeps it by SSCAN in batches: a call blocks Redis for about one budget's
 * checks at most.
 * ARGV[1]=cursor ARGV[2]=tag set pattern ARGV[3]=SCAN count ARGV[4]=what every value key
 * starts with ARGV[5]=what a lease key adds to its value key ARGV[6]=max members of a set
 * ARGV[7]=members per call. Returns { next cursor, sets swept, members seen, members
 * removed, the sets left }.
 */
const sweepSetsLua = `${removeIfGoneLua}
local found = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', tonumber(ARGV[3]), 'TYPE', 'set')
local head, leaseSuffix, max, budget = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local swept, members, removed, large = 0, 0, 0, {}
for _, set in ipairs(found[2]) do
  local size = redis.call('SCARD', set)
  if size > max or members + size > budget then
    large[#large + 1] = set
  else
    swept = swept + 1
    for _, m in ipairs(redis.call('SMEMBERS', set)) do
      members = members + 1
      if string.sub(m, 1, #head) == head and string.byte(m, -1) == 125 then
        removed = removed + removeIfGone(set, m, m .. leaseSuffix)
      end
    end
  end
end
return { found[1], swept, members, removed, large }`;

/**
 * On a Redis Cluster the tag set and the value lie in different slots, so no script can
 * check and remove in one step. Three steps per member instead, each value's in its slot:
 * (a) `gone`: value and lease both absent; (b) SREM of the members found gone; (c)
 * `settle`: if the value or the lease now exists, delete both. A fill that took its lease
 * after (a) and registered before (b) had its registration removed by (b) (its SADD of a
 * member already there changed nothing); its lease was taken before its SADD, so at (c) its
 * lease or its value exists and (c) deletes it: a miss, never a stale value left without a
 * registration. A fill that registered after (b) keeps its registration, whatever (c) does
 * to its lease (at worst another miss). Re-adding the member at (c) instead would not be
 * safe: an invalidation that ran between (b) and the re-add would not have found it.
 * KEYS[1]=value KEYS[2]=lease.
 */
const memberGoneLua = `
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 1 end
return 0`;
const settleMemberLua = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('UNLINK', KEYS[2])
  redis.call('UNLINK', KEYS[1])
  return 1
end
return 0`;

/** Members checked per script call: long enough to amortise a round trip, short enough not to block Redis. */
const MEMBERS_PER_CALL = 200;
const SETS_PER_SCAN = 500;
/** SCAN count of one sweepSetsLua call (hash-table buckets visited, ~100 sets at most). */
const SETS_PER_SCRIPT = 100;
/**
 * Members one sweepSetsLua call checks at most: two EXISTS each, about a millisecond of
 * Redis for the whole call.
 */
const MEMBERS_PER_SCRIPT = 1000;

export interface SweepProgress {
  sets: number;
  members: number;
  removed: number;
}

export interface SweepOptions {
  /** Called after each tag set (on one server, after each batch of them). */
  onProgress?(progress: SweepProgress): void;
  /** Stops between two script calls when it returns true (shutdown). */
  stopped?(): boolean;
  /** Pause between script calls, so a sweep of a large index leaves Redis to the requests. */
  pauseMs?: number;
  /**
   * On one server, rest this many times as long as a batch call took after it (at least
   * `pauseMs`): a batch does a millisecond of Redis work, and back to back they would hold
   * Redis for seconds, where invalidations and fills wait behind them.
   */
  restPerBusy?: number;
  /** Test seam (Redis Cluster): runs between steps (a) and (b), and between (b) and (c). */
  betweenSteps?(step: 'checked' | 'removed'): Promise<void> | void;
}

type SweepRedis = RedisClient & {
  walcacheSweepSets(
    cursor: string,
    pattern: string,
    count: number,
    valueHead: string,
    leaseSuffix: string,
    maxMembers: number,
    membersPerCall: number,
  ): Promise<[string, number, number, number, string[]]>;
  walcacheSweepMembers(...keys: string[]): Promise<number>;
  walcacheMemberGone(value: string, lease: string): Promise<number>;
  walcacheSettleMember(value: string, lease: string): Promise<number>;
};

function withSweep(redis: RedisClient): SweepRedis {
  const r = redis as SweepRedis;
  if (typeof r.walcacheSweepMembers !== 'function') {
    redis.defineCommand('walcacheSweepSets', { numberOfKeys: 0, lua: sweepSetsLua });
    redis.defineCommand('walcacheSweepMembers', { lua: sweepMembersLua });
    redis.defineCommand('walcacheMemberGone', { numberOfKeys: 2, lua: memberGoneLua });
    redis.defineCommand('walcacheSettleMember', { numberOfKeys: 2, lua: settleMemberLua });
  }
  return r;
}

/** One pass over the whole tag index; returns what it saw and removed. */
export async function sweepTagIndex(
  redis: RedisClient,
  keys: Keyspace,
  options: SweepOptions = {},
): Promise<SweepProgress> {
  const r = withSweep(redis);
  const progress: SweepProgress = { sets: 0, members: 0, removed: 0 };
  const sleep = (ms: number) => (ms > 0 ? new Promise((ok) => setTimeout(ok, ms)) : undefined);
  const pause = () => sleep(options.pauseMs ?? 0);
  const clustered = isCluster(redis);
  if (!clustered) {
    let cursor = '0';
    do {
      if (options.stopped?.()) return progress;
      const started = performance.now();
      const [next, swept, members, removed, large] = await r.walcacheSweepSets(
        cursor,
        keys.tagSets,
        SETS_PER_SCRIPT,
        keys.valueHead,
        keys.leaseSuffix,
        MEMBERS_PER_CALL,
        MEMBERS_PER_SCRIPT,
      );
      const busyMs = performance.now() - started;
      cursor = next;
      progress.sets += swept;
      progress.members += members;
      progress.removed += removed;
      for (const set of large)
        if (!(await sweepSet(r, keys, set, false, progress, options, pause))) return progress;
      options.onProgress?.(progress);
      await sleep(Math.max(options.pauseMs ?? 0, busyMs * (options.restPerBusy ?? 0)));
    } while (cursor !== '0');
    return progress;
  }
  // SCAN reaches one node: on a cluster every master is walked, one after another.
  for (const node of mastersOf(redis)) {
    let cursor = '0';
    do {
      const [next, sets] = await node.scan(
        cursor,
        'MATCH',
        keys.tagSets,
        'COUNT',
        SETS_PER_SCAN,
        'TYPE',
        'set',
      );
      cursor = next;
      for (const set of sets) {
        if (!(await sweepSet(r, keys, set, true, progress, options, pause))) return progress;
        options.onProgress?.(progress);
      }
    } while (cursor !== '0');
  }
  return progress;
}

/** One tag set by SSCAN, a batch of members per call; false when stopped midway. */
async function sweepSet(
  r: SweepRedis,
  keys: Keyspace,
  set: string,
  clustered: boolean,
  progress: SweepProgress,
  options: SweepOptions,
  pause: () => Promise<unknown> | undefined,
): Promise<boolean> {
  let memberCursor = '0';
  do {
    if (options.stopped?.()) return false;
    const [nextMember, members] = await r.sscan(set, memberCursor, 'COUNT', MEMBERS_PER_CALL);
    memberCursor = nextMember;
    const pairs: [string, string][] = [];
    for (const member of members) {
      const resourceKey = resourceKeyOf(keys, member);
      if (resourceKey !== undefined) pairs.push([member, keys.lease(resourceKey)]);
    }
    progress.members += members.length;
    if (pairs.length > 0) {
      progress.removed += clustered
        ? await sweepAcrossSlots(r, set, pairs, options)
        : await r.walcacheSweepMembers(String(pairs.length * 2 + 1), set, ...pairs.flat());
      await pause();
    }
  } while (memberCursor !== '0');
  progress.sets++;
  return true;
}

/** Steps (a), (b), (c) above for one batch of a set's members; returns the members removed. */
async function sweepAcrossSlots(
  r: SweepRedis,
  set: string,
  pairs: readonly [string, string][],
  options: SweepOptions,
): Promise<number> {
  const gone = await Promise.all(pairs.map(([value, lease]) => r.walcacheMemberGone(value, lease)));
  const candidates = pairs.filter((_, i) => gone[i] === 1);
  if (candidates.length === 0) return 0;
  await options.betweenSteps?.('checked');
  const removed = await r.srem(set, ...candidates.map(([value]) => value));
  await options.betweenSteps?.('removed');
  // Every candidate, not only those this SREM removed: a concurrent invalidation may have
  // removed a member while a fill that took the lease after (a) still holds it.
  await Promise.all(candidates.map(([value, lease]) => r.walcacheSettleMember(value, lease)));
  return removed;
}
