/** Pure functions of the cache engine: codec, TTL jitter, breaker, tags. No servers needed. */
import { describe, expect, it } from 'vitest';
import {
  CircuitBreaker,
  CorruptEntryError,
  compareLsn,
  decodeEntry,
  decodeEntryHead,
  encodeEntry,
  epochTag,
  etagOf,
  isNullBody,
  isSourceUnavailable,
  jitteredTtlMs,
  lsnToBigInt,
  NULL_BODY,
  normalizeLsn,
  rowTag,
  tableOfTag,
  timings,
  VisibilityHorizon,
  withEpochTags,
} from '../src/index.ts';

describe('codec', () => {
  it('round-trips the header and keeps the body bytes exactly', () => {
    const body = Buffer.from(JSON.stringify({ id: '1', title: 'héllo\nworld', tags: ['a b'] }));
    const tags = ['row:articles:1', 'col:tags:name:a b\nwith a newline', 'epoch:articles'];
    const decoded = decodeEntry(encodeEntry({ version: 42, storedAtMs: 1700000000000, tags, body }));
    expect(decoded.version).toBe(42);
    expect(decoded.storedAtMs).toBe(1700000000000);
    expect(decoded.tags).toEqual(tags);
    expect(decoded.etag).toBe(etagOf(body));
    expect(decoded.body.equals(body)).toBe(true);
    expect(decodeEntryHead(encodeEntry({ version: 42, storedAtMs: 1, tags, body })).body.equals(body)).toBe(
      true,
    );
  });

  it('marks a cached "not found" and rejects foreign entries', () => {
    const entry = decodeEntry(encodeEntry({ version: 1, storedAtMs: 0, tags: [], body: NULL_BODY }));
    expect(isNullBody(entry.body)).toBe(true);
    expect(() => decodeEntry(Buffer.from('{"plain":"json"}'))).toThrow(CorruptEntryError);
    expect(() => decodeEntry(Buffer.from('wc2 1 0 "e" 99\n["short"]'))).toThrow(CorruptEntryError);
  });
});

describe('TTL jitter', () => {
  it('shortens a TTL by at most the jitter fraction and never below a second', () => {
    expect(jitteredTtlMs(600, 0)).toBe(600_000);
    expect(jitteredTtlMs(600, 0.999999)).toBeGreaterThanOrEqual(600_000 * (1 - timings.ttlJitter));
    expect(jitteredTtlMs(600, 0.5)).toBeLessThan(600_000);
    expect(jitteredTtlMs(1, 1)).toBe(1000);
  });

  it('spreads keys filled together over the jitter window', () => {
    const ttls = new Set(Array.from({ length: 100 }, (_, i) => jitteredTtlMs(3600, i / 100)));
    expect(ttls.size).toBe(100);
  });
});

describe('circuit breaker', () => {
  it('opens after the threshold, lets one probe through after the cooldown, closes on success', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, now: () => now });
    breaker.failure();
    breaker.failure();
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    now = 1000;
    expect(breaker.allow()).toBe(true); // the probe
    expect(breaker.allow()).toBe(false); // only one at a time
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });

  it('a failed probe reopens it for another cooldown', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1000, now: () => now });
    breaker.failure();
    now = 1500;
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
    now = 2000;
    expect(breaker.allow()).toBe(false);
    now = 2500;
    expect(breaker.allow()).toBe(true);
  });
});

describe('tags', () => {
  it('adds the epoch tag of every table a value depends on', () => {
    expect(
      withEpochTags([rowTag('articles', 1), 'col:comments:article_id:1', rowTag('articles', 1)]),
    ).toEqual(['row:articles:1', 'epoch:articles', 'col:comments:article_id:1', 'epoch:comments']);
    expect(tableOfTag(epochTag('users'))).toBe('users');
    expect(tableOfTag('nonsense')).toBeUndefined();
    expect(tableOfTag('row:lib.loans:509,2025-06-22 05:00:00+00')).toBe('lib.loans');
    expect(tableOfTag('col:comments:article_id:a:b')).toBe('comments');
    expect(tableOfTag('rows:')).toBeUndefined();
    expect(tableOfTag('lease:articles:1')).toBeUndefined();
  });
});

describe('LSNs', () => {
  it('compares positions, however they are padded, and refuses what is not an LSN', () => {
    expect(compareLsn('0/1982E00', '00000000/01982E00')).toBe(0);
    expect(compareLsn('0/FFFFFFFF', '1/0')).toBe(-1);
    expect(compareLsn('16/B374D848', '16/B374D847')).toBe(1);
    expect(compareLsn('A/0', '9/FFFFFFFF')).toBe(1);
    expect(normalizeLsn('00000001/01982E00')).toBe('1/1982E00');
    expect(normalizeLsn('16/b374d848')).toBe('16/B374D848');
    expect(lsnToBigInt(normalizeLsn('FFFFFFFF/FFFFFFFF'))).toBe((1n << 64n) - 1n);
    for (const bad of ['', '0', '/1', '1/', '12zz/0', '0/1/2', '100000000/0'])
      expect(() => compareLsn(bad, '0/0'), bad).toThrow(/not an LSN/);
  });
});

describe('isSourceUnavailable', () => {
  const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it('is true for an unreachable or overloaded database, false for a broken query', () => {
    expect(isSourceUnavailable(withCode('ECONNREFUSED'))).toBe(true);
    expect(
      isSourceUnavailable(withCode('57P01', 'terminating connection due to administrator command')),
    ).toBe(true);
    expect(isSourceUnavailable(withCode('57014', 'canceling statement due to statement timeout'))).toBe(true);
    expect(isSourceUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isSourceUnavailable(new Error('wrapped', { cause: withCode('08006') }))).toBe(true);
    expect(isSourceUnavailable(withCode('42702', 'column reference "created_at" is ambiguous'))).toBe(false);
    expect(isSourceUnavailable(new TypeError('undefined is not a function'))).toBe(false);
  });
});

describe('visibility horizon', () => {
  it('covers a job only while every xid lies below a recent xmin, across the 32-bit wrap', () => {
    const now = 0;
    const horizon = new VisibilityHorizon(1_000, () => now);
    expect(horizon.covers([5])).toBe(false); // nothing learned yet
    horizon.learn(100, now);
    expect(horizon.covers([99, 5])).toBe(true);
    expect(horizon.covers([99, 100])).toBe(false); // the xmin itself was still running
    expect(horizon.covers([])).toBe(false);
    // Near the wrap: 4294967290 is older than 10 (modulo 2^32), 20 is newer.
    const wrapped = new VisibilityHorizon(1_000, () => now);
    wrapped.learn(4294967280, now);
    wrapped.learn(10, now); // newer, past the wrap
    expect(wrapped.covers([4294967290, 3])).toBe(true);
    expect(wrapped.covers([20])).toBe(false);
  });

  it('keeps the newest xmin when answers come out of order, and forgets it once too old', () => {
    let now = 0;
    const horizon = new VisibilityHorizon(1_000, () => now);
    horizon.learn(200, now);
    horizon.learn(150, now); // an older snapshot's answer, arriving late
    expect(horizon.covers([180])).toBe(true);
    now = 1_001;
    expect(horizon.covers([180])).toBe(false);
    // Once expired, any answer is taken, even a lower one (a restored server's xids).
    horizon.learn(50, now);
    expect(horizon.covers([40])).toBe(true);
    expect(horizon.covers([180])).toBe(false);
  });
});
