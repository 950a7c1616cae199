import { z } from 'zod';

const MAX_BIGINT = 9223372036854775807n;

/** A Postgres bigint id as it appears in a URL: digits only, 1 … 2^63-1, kept as a string. */
export const idParam = z
  .string()
  .regex(/^[0-9]{1,19}$/, 'must be a positive integer')
  .refine((v) => {
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
    if (
      !match ||
      BigInt(match[2]!) > MAX_BIGINT ||
      Number.isNaN(Date.parse(match[1]!.replace(' ', 'T').replace('+00', 'Z')))
    ) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid cursor' });
      return z.NEVER;
    }
    // Re-encode from the parsed parts: the cache key is built from this canonical form only.
    return encodeCursor({ at: match[1]!, id: match[2]! });
  });

export function decodeCursor(canonical: string): Cursor {
  const [at, id] = Buffer.from(canonical, 'base64url').toString('utf8').split('|');
  return { at: at!, id: id! };
}
