/**
 * The read-your-writes watermark's arithmetic, on a real Redis: intervals finishing in any
 * order move W only across intervals that are all done, never backwards, and replays that
 * overlap what is done change nothing.
 */
import {
  bigIntToLsn,
  coverInterval,
  keyspace,
  parseLsnToken,
  raiseWatermark,
  readWatermark,
} from '@walcache/core';
import { type RedisServer, startRedis } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: RedisServer;
let redis: Redis;
let namespaces = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const lsn = (n: number) => bigIntToLsn(BigInt(n));
const fresh = () => keyspace(`wm${++namespaces}`);

describe('the watermark', () => {
  it('does not pass an unfinished job: jobs finishing out of order move it only over what is all done', async () => {
    const keys = fresh();
    await raiseWatermark(redis, keys, lsn(100));
    // Jobs (100,200] (200,300] (300,400]: the third and the first finish, the second is still running.
    expect(await coverInterval(redis, keys, lsn(300), lsn(400))).toBe(100n);
    expect(await coverInterval(redis, keys, lsn(100), lsn(200))).toBe(200n);
    expect(await readWatermark(redis, keys)).toBe(200n);
    // The second finishes: W joins everything after it.
    expect(await coverInterval(redis, keys, lsn(200), lsn(300))).toBe(400n);
  });

  it('never goes backwards: a late duplicate, a lower base, a replay over done intervals', async () => {
    const keys = fresh();
    await raiseWatermark(redis, keys, lsn(100));
    await coverInterval(redis, keys, lsn(100), lsn(500));
    expect(await coverInterval(redis, keys, lsn(100), lsn(150))).toBe(500n); // a duplicate of an older job
    expect(await raiseWatermark(redis, keys, lsn(50))).toBe(500n);
    // A CDC restarted from 300 (acked) forms other batches over the same LSNs, then goes on.
    expect(await coverInterval(redis, keys, lsn(300), lsn(450))).toBe(500n);
    expect(await coverInterval(redis, keys, lsn(450), lsn(700))).toBe(700n);
  });

  it('has no value until a base is set, and then takes every interval recorded meanwhile', async () => {
    const keys = fresh();
    expect(await coverInterval(redis, keys, lsn(10), lsn(20))).toBeUndefined();
    expect(await readWatermark(redis, keys)).toBeUndefined();
    expect(await raiseWatermark(redis, keys, lsn(10))).toBe(20n);
  });

  it('holds LSNs far beyond 32 bits exactly', async () => {
    const keys = fresh();
    const base = 0x1f_ffff_0000n; // ~137 GB of WAL
    await raiseWatermark(redis, keys, bigIntToLsn(base));
    expect(await coverInterval(redis, keys, bigIntToLsn(base), bigIntToLsn(base + 12_345n))).toBe(
      base + 12_345n,
    );
  });
});

describe('a read-your-writes token', () => {
  it('is an LSN as pg_current_wal_lsn() prints it, nothing else', () => {
    expect(parseLsnToken('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsnToken('1F/0')).toBe(0x1f_0000_0000n);
    expect(parseLsnToken('a/ff')).toBe(0xa_0000_00ffn);
    for (const bad of ['', '16B3748', '0/', '/1', '0/1/2', 'x/1', '0/123456789', '-1/0', '0/1 '])
      expect(parseLsnToken(bad), bad).toBeUndefined();
  });
});
