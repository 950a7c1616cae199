import { createHash } from 'node:crypto';

/**
 * A cached entry is one Redis string: a short text header line, then the JSON body exactly
 * as the API sends it. The hit path slices the body out of the buffer and writes it to the
 * socket: no JSON.parse, no re-serialisation, no hashing (the ETag is computed once, at fill).
 * JSON rather than a binary codec: the body *is* the HTTP answer, so any other encoding would
 * have to be turned back into JSON on every hit.
 *
 * Header: `wc1 <version> <storedAtMs> <etag> <tags-count>\n<tags joined by \n>\n<body>`
 */
const MAGIC = 'wc1';

export interface Entry {
  /** `walcache:seq` when the fill started: orders fills and refreshes. */
  version: number;
  storedAtMs: number;
  etag: string;
  tags: string[];
  /** The JSON body, `null` for a cached "not found". */
  body: Buffer;
}

export function etagOf(body: Buffer | string): string {
  return `"${createHash('sha1').update(body).digest('base64url').slice(0, 22)}"`;
}

export function encodeEntry(entry: Omit<Entry, 'etag'> & { etag?: string }): Buffer {
  const etag = entry.etag ?? etagOf(entry.body);
  const header = `${MAGIC} ${entry.version} ${entry.storedAtMs} ${etag} ${entry.tags.length}\n${entry.tags.map((t) => `${t}\n`).join('')}`;
  return Buffer.concat([Buffer.from(header, 'utf8'), entry.body]);
}

export class CorruptEntryError extends Error {
  readonly code = 'WALCACHE_CORRUPT_ENTRY';
}

export function decodeEntry(raw: Buffer): Entry {
  let offset = raw.indexOf(10);
  if (offset < 0) throw new CorruptEntryError('cache entry has no header');
  const [magic, version, storedAt, etag, count] = raw.subarray(0, offset).toString('utf8').split(' ');
  if (magic !== MAGIC || !etag || count === undefined)
    throw new CorruptEntryError(`unknown cache entry header ${magic}`);
  const tags: string[] = [];
  for (let i = 0; i < Number(count); i++) {
    const next = raw.indexOf(10, offset + 1);
    if (next < 0) throw new CorruptEntryError('truncated tag list');
    tags.push(raw.subarray(offset + 1, next).toString('utf8'));
    offset = next;
  }
  return {
    version: Number(version),
    storedAtMs: Number(storedAt),
    etag,
    tags,
    body: raw.subarray(offset + 1),
  };
}

export const NULL_BODY = Buffer.from('null');
export const isNullBody = (body: Buffer) => body.length === 4 && body.equals(NULL_BODY);
