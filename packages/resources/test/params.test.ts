/** URL parameters are parsed, never thrown on: bad input must become a 400, not a 500. */
import { describe, expect, it } from 'vitest';
import { cursorParam, encodeCursor, idParam, limitParam } from '../src/index.ts';

describe('idParam', () => {
  it.each(['abc', '1.5', '１２', '', '-1', '0', '9223372036854775808', '99999999999999999999'])(
    'rejects %j without throwing',
    (v) => {
      expect(idParam.safeParse(v).success).toBe(false);
    },
  );
  it('canonicalises leading zeros so one row has one cache key', () => {
    expect(idParam.parse('007')).toBe('7');
    expect(idParam.parse('9223372036854775807')).toBe('9223372036854775807');
  });
});

describe('cursorParam', () => {
  it.each([
    '2025-02-30 00:00:00+00',
    '0000-01-01 00:00:00+00',
    '2025-02-28 24:00:00+00',
    '2025-13-01 00:00:00+00',
  ])('rejects an impossible timestamp %j that Postgres would refuse', (at) => {
    expect(cursorParam.safeParse(encodeCursor({ at, id: '5' })).success).toBe(false);
  });
  it('accepts a real timestamp in years 1–99 (which Date.UTC would map to the 1900s)', () => {
    const cursor = encodeCursor({ at: '0050-03-01 12:00:00+00', id: '5' });
    expect(cursorParam.parse(cursor)).toBe(cursor);
  });
  it('accepts a real one with microseconds', () => {
    const cursor = encodeCursor({ at: '2025-02-28 23:59:59.123456+00', id: '5' });
    expect(cursorParam.parse(cursor)).toBe(cursor);
  });
  it.each(['', '!!', 'a'.repeat(200), Buffer.from('x|y').toString('base64url')])(
    'rejects garbage %j',
    (v) => {
      expect(cursorParam.safeParse(v).success).toBe(false);
    },
  );
});

describe('limitParam', () => {
  it('defaults to 20 and bounds 1..100', () => {
    expect(limitParam.parse(undefined)).toBe(20);
    expect(limitParam.safeParse('0').success).toBe(false);
    expect(limitParam.safeParse('101').success).toBe(false);
    expect(limitParam.parse('100')).toBe(100);
  });
});
