import { z } from 'zod';

const MAX_BIGINT = 9223372036854775807n;

/** A Postgres bigint id as it appears in a URL: digits only, 1 … 2^63-1, kept as a string. */
export const idParam = z
  .string()
  .regex(/^[0-9]{1,19}$/, 'must be a positive integer')
  // zod 4 runs refinements even after the regex failed: guard BigInt() from non-digits.
  .refine((v) => {
    if (!/^[0-9]{1,19}$/.test(v)) return true;
    const n = BigInt(v);
    return n >= 1n && n <= MAX_BIGINT;
  }, 'must be between 1 and 9223372036854775807')
  .transform((v) => BigInt(v).toString());

export const limitParam = z.coerce
  .number({ error: 'must be an integer between 1 and 100' })
  .int('must be an integer between 1 and 100')
  .min(1, 'must be an integer between 1 and 100')
  .max(100, 'must be an integer between 1 and 100')
  .default(20);

/** Keyset position (timestamp text with microseconds, id): opaque to clients. */
export interface Cursor {
  at: string;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.at}|${cursor.id}`, 'utf8').toString('base64url');
}

const cursorText = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?\+00)\|([0-9]{1,19})$/;

export const cursorParam = z
  .string()
  .max(128, 'is not a valid cursor')
  .regex(/^[A-Za-z0-9_-]+$/, 'is not a valid cursor')
  .transform((value, ctx) => {
    const match = cursorText.exec(Buffer.from(value, 'base64url').toString('utf8'));
    if (!match || BigInt(match[2]!) > MAX_BIGINT || !isRealTimestamp(match[1]!)) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid cursor' });
      return z.NEVER;
    }
    // Re-encode from the parsed parts: the cache key is built from this canonical form only.
    return encodeCursor({ at: match[1]!, id: match[2]! });
  });

/**
 * Date.parse accepts impossible dates (Feb 30 rolls over, year 0000 parses) that Postgres
 * rejects with an error: only a timestamp whose parts survive a round trip is a cursor.
 * setUTCFullYear, because Date.UTC maps years 0–99 to 1900–1999.
 */
function isRealTimestamp(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})/.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < 1) return false;
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year);
  return (
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second
  );
}

export function decodeCursor(canonical: string): Cursor {
  const [at, id] = Buffer.from(canonical, 'base64url').toString('utf8').split('|');
  return { at: at!, id: id! };
}
