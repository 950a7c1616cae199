import { Cluster } from 'ioredis';
import type { RedisClient } from './connect.ts';
import type { Keyspace } from './keys.ts';
import { bigIntToLsn, lsnToBigInt } from './lsn.ts';

/**
 * The read-your-writes watermark W: every commit whose end LSN is ≤ W has had its
 * invalidation completed. It is derived from completed intervals, never from "the last job
 * done": each job covers `(after, lsnTo]`, where `after` is the end of the job the CDC
 * stored before it (or the slot position it started streaming from), so the intervals of
 * one CDC connection chain without gaps. W joins an interval when its `after` ≤ W, and then
 * becomes its `to`: jobs finishing in any order, on any number of invalidators, can only
 * move W across intervals that are all done. A replay after a CDC restart forms other
 * batches over the same LSNs; their intervals start at or before W's chain and only
 * overlap, never open a gap. The CDC also records intervals that hold no job at all (empty
 * transactions, heartbeats, keepalives), so an idle slot moves W too.
 *
 * Kept in the queue Redis (durable, `noeviction`, where the jobs are): a cache Redis that
 * restarts empty or is flushed leaves W true (an empty cache is consistent with everything).
 * LSNs travel as decimal integers: exact in Lua's doubles below 2^53 bytes of WAL.
 */
const advance = `
local w = tonumber(redis.call('GET', KEYS[1]) or '-1')
if w < 0 then return -1 end
while true do
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', w)
  if #due == 0 then break end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', w)
  local top = w
  for i = 1, #due do
    local to = tonumber(due[i])
    if to > top then top = to end
  end
  if top <= w then break end
  w = top
end
redis.call('SET', KEYS[1], string.format('%.0f', w))
return string.format('%.0f', w)`;

/**
 * Records one completed interval and advances W. ZADD LT: two intervals ending at the same
 * LSN keep the one starting earliest (it covers more).
 * Bounded: past MAX_PENDING intervals waiting for a gap (jobs of a CDC that never records
 * its base, say), the oldest are dropped — W then stays where it is, which is safe.
 * KEYS[1]=watermark KEYS[2]=done ARGV[1]=after ARGV[2]=to ARGV[3]=max pending
 */
const coverLua = `
redis.call('ZADD', KEYS[2], 'LT', ARGV[1], ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1) end
${advance}`;

/**
 * Raises W to at least ARGV[1] (never lowers it), then advances: a flushed cache is
 * consistent with every commit up to the position the CDC streams from.
 * KEYS[1]=watermark KEYS[2]=done ARGV[1]=base
 */
const raiseLua = `
local base = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if base > current then redis.call('SET', KEYS[1], ARGV[1]) end
${advance}`;

const MAX_PENDING = 100_000;

type WatermarkRedis = RedisClient & {
  walcacheCoverInterval(
    watermark: string,
    done: string,
    after: string,
    to: string,
    max: number,
  ): Promise<string>;
  walcacheRaiseWatermark(watermark: string, done: string, base: string): Promise<string>;
};

/** The watermark's keys for this client: hash-tagged on a Redis Cluster (keys.ts). */
const watermarkKeysOf = (redis: RedisClient, keys: Keyspace) => keys.watermarkKeys(redis instanceof Cluster);

function withWatermark(redis: RedisClient): WatermarkRedis {
  const r = redis as WatermarkRedis;
  if (typeof r.walcacheCoverInterval !== 'function') {
    redis.defineCommand('walcacheCoverInterval', { numberOfKeys: 2, lua: coverLua });
    redis.defineCommand('walcacheRaiseWatermark', { numberOfKeys: 2, lua: raiseLua });
  }
  return r;
}

const decimal = (lsn: string) => lsnToBigInt(lsn).toString();
const parsed = (reply: string | number): bigint | undefined => {
  const value = BigInt(reply);
  return value < 0n ? undefined : value;
};

/** Records that every commit in `(after, to]` is invalidated; returns W (undefined: no base yet). */
export async function coverInterval(
  redis: RedisClient,
  keys: Keyspace,
  after: string,
  to: string,
): Promise<bigint | undefined> {
  return parsed(
    await withWatermark(redis).walcacheCoverInterval(
      ...watermarkKeysOf(redis, keys),
      decimal(after),
      decimal(to),
      MAX_PENDING,
    ),
  );
}

/** W is at least `base` from now on (after a flush, or once nothing older is pending). */
export async function raiseWatermark(
  redis: RedisClient,
  keys: Keyspace,
  base: string,
): Promise<bigint | undefined> {
  return parsed(
    await withWatermark(redis).walcacheRaiseWatermark(...watermarkKeysOf(redis, keys), decimal(base)),
  );
}

export async function readWatermark(redis: RedisClient, keys: Keyspace): Promise<bigint | undefined> {
  const raw = await redis.get(watermarkKeysOf(redis, keys)[0]);
  return raw === null ? undefined : parsed(raw);
}

/** A watermark as Postgres writes LSNs (`16/B374D848`), for headers and logs. */
export const watermarkLsn = (value: bigint): string => bigIntToLsn(value);

/** A client's token (`X-Walcache-After`): an LSN as `pg_current_wal_lsn()` prints it. */
export function parseLsnToken(text: string): bigint | undefined {
  if (!/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(text)) return undefined;
  return lsnToBigInt(text.toUpperCase());
}

export interface WatermarkReaderOptions {
  /** A known W older than this is re-read in the background (the header's freshness). */
  maxAgeMs?: number;
  /** How often a request waiting for W re-reads it. */
  pollMs?: number;
}

/**
 * One API process's view of W: kept in memory, re-read in the background when older than
 * `maxAgeMs`, and polled (one GET in flight per process, shared by every waiting request)
 * while a request waits for it. It only ever rises.
 */
export class WatermarkReader {
  private value: bigint | undefined;
  private readAt = 0;
  private inflight: Promise<void> | undefined;
  private readonly maxAgeMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    options: WatermarkReaderOptions = {},
    private readonly onError: (error: unknown) => void = () => {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 50;
    this.pollMs = options.pollMs ?? 2;
  }

  /** The last W this process read (never waits); a stale one is refreshed for later requests. */
  known(): bigint | undefined {
    if (performance.now() - this.readAt > this.maxAgeMs) void this.refresh();
    return this.value;
  }

  /** W once it is ≥ `token`, or undefined when `waitMs` passed first (or Redis failed). */
  async reach(token: bigint, waitMs: number): Promise<bigint | undefined> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const value = this.value;
      if (value !== undefined && value >= token) return value;
      if (performance.now() >= deadline) return undefined;
      await this.refresh();
      const again = this.value;
      if (again !== undefined && again >= token) return again;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise((r) => setTimeout(r, Math.min(this.pollMs, left)));
    }
  }

  /** Reads W now (shared by concurrent callers). */
  refresh(): Promise<void> {
    this.inflight ??= (async () => {
      try {
        const read = await readWatermark(this.redis, this.keys);
        if (read !== undefined && (this.value === undefined || read > this.value)) this.value = read;
        this.readAt = performance.now();
      } catch (error) {
        this.onError(error);
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }
}
