import type { Redis } from 'ioredis';
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
const sweepMembersLua = `
local removed = 0
for i = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], KEYS[i])
  end
end
return removed`;

/** Members checked per script call: long enough to amortise a round trip, short enough not to block Redis. */
const MEMBERS_PER_CALL = 200;
const SETS_PER_SCAN = 500;

export interface SweepProgress {
  sets: number;
  members: number;
  removed: number;
}

export interface SweepOptions {
  /** Called after each tag set. */
  onProgress?(progress: SweepProgress): void;
  /** Stops between two script calls when it returns true (shutdown). */
  stopped?(): boolean;
  /** Pause between script calls, so a sweep of a large index leaves Redis to the requests. */
  pauseMs?: number;
}

interface SweepRedis extends Redis {
  walcacheSweepMembers(...keys: string[]): Promise<number>;
}

function withSweep(redis: Redis): SweepRedis {
  const r = redis as SweepRedis;
  if (typeof r.walcacheSweepMembers !== 'function')
    redis.defineCommand('walcacheSweepMembers', { lua: sweepMembersLua });
  return r;
}

/** One pass over the whole tag index; returns what it saw and removed. */
export async function sweepTagIndex(
  redis: Redis,
  keys: Keyspace,
  options: SweepOptions = {},
): Promise<SweepProgress> {
  const r = withSweep(redis);
  const progress: SweepProgress = { sets: 0, members: 0, removed: 0 };
  const pause = () => (options.pauseMs ? new Promise((ok) => setTimeout(ok, options.pauseMs)) : undefined);
  let cursor = '0';
  do {
    const [next, sets] = await redis.scan(
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
      let memberCursor = '0';
      do {
        if (options.stopped?.()) return progress;
        const [nextMember, members] = await redis.sscan(set, memberCursor, 'COUNT', MEMBERS_PER_CALL);
        memberCursor = nextMember;
        const pairs: string[] = [];
        for (const member of members) {
          const resourceKey = resourceKeyOf(keys, member);
          if (resourceKey !== undefined) pairs.push(member, keys.lease(resourceKey));
        }
        progress.members += members.length;
        if (pairs.length > 0) {
          progress.removed += await r.walcacheSweepMembers(String(pairs.length + 1), set, ...pairs);
          await pause();
        }
      } while (memberCursor !== '0');
      progress.sets++;
      options.onProgress?.(progress);
    }
  } while (cursor !== '0');
  return progress;
}
