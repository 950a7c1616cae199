import { createHash } from 'node:crypto';

/**
 * A cached entry is one Redis string: a short text header line, the value's tags as a JSON
 * array, then the JSON body exactly as the API sends it. The hit path reads the header line,
 * skips the tag block by its byte length and slices the body out of the buffer: no
 * JSON.parse, no re-serialisation, no hashing (the ETag is computed once, at fill).
 * JSON rather than a binary codec: the body *is* the HTTP answer, so any other encoding would
 * have to be turned back into JSON on every hit (measured in docs/cache.md).
 *
 * Layout: `wc2 <version> <storedAtMs> <etag> <tagBytes>\n<tags as a JSON array><body>`
 * The tags are stored for operators (inspect) and are never read on a request.
 */
export const ENTRY_MAGIC = 'wc2';
const NEWLINE = 10;

export interface Entry {
  /** `walcache:seq` when the fill started: orders fills and refreshes. */
  version: number;
  storedAtMs: number;
  etag: string;
  tags: string[];
  /** The JSON body, `null` for a cached "not found". */
  body: Buffer;
}

/** What a read needs from an entry: everything but the tags. */
export type EntryHead = Omit<Entry, 'tags'>;

/**
 * The body a loaded value is cached as: its JSON, or NULL_BODY for "not found". One encoding
 * for fills, refreshes and every comparison with a fresh load (auditor, `walcache verify`).
 */
export function bodyOf(value: unknown): Buffer {
  return value === null ? NULL_BODY : Buffer.from(JSON.stringify(value));
}

export function etagOf(body: Buffer | string): string {
  return `"${createHash('sha1').update(body).digest('base64url').slice(0, 22)}"`;
}

export function encodeEntry(entry: Omit<Entry, 'etag'> & { etag?: string }): Buffer {
  const etag = entry.etag ?? etagOf(entry.body);
  const tags = Buffer.from(JSON.stringify(entry.tags), 'utf8');
  const header = `${ENTRY_MAGIC} ${entry.version} ${entry.storedAtMs} ${etag} ${tags.length}\n`;
  return Buffer.concat([Buffer.from(header, 'latin1'), tags, entry.body]);
}

export class CorruptEntryError extends Error {
  readonly code = 'WALCACHE_CORRUPT_ENTRY';
}

interface Parsed extends EntryHead {
  tagsStart: number;
  tagsEnd: number;
}

function parse(raw: Buffer): Parsed {
  // The header is at most ~100 bytes; a missing newline early means it is not our entry.
  const newline = raw.indexOf(NEWLINE);
  if (newline < 0 || newline > 256) throw new CorruptEntryError('cache entry has no header');
  const [magic, version, storedAt, etag, tagBytes] = raw.subarray(0, newline).toString('latin1').split(' ');
  if (magic !== ENTRY_MAGIC || !etag || tagBytes === undefined)
    throw new CorruptEntryError(`unknown cache entry header ${magic}`);
  const tagsStart = newline + 1;
  const tagsEnd = tagsStart + Number(tagBytes);
  if (!Number.isInteger(tagsEnd) || tagsEnd > raw.length) throw new CorruptEntryError('truncated tag list');
  return {
    version: Number(version),
    storedAtMs: Number(storedAt),
    etag,
    body: raw.subarray(tagsEnd),
    tagsStart,
    tagsEnd,
  };
}

/** The hit path: header and body, the tags skipped unread. */
export function decodeEntryHead(raw: Buffer): EntryHead {
  const { version, storedAtMs, etag, body } = parse(raw);
  return { version, storedAtMs, etag, body };
}

/** The whole entry, tags included (inspect, tests). */
export function decodeEntry(raw: Buffer): Entry {
  const { tagsStart, tagsEnd, ...head } = parse(raw);
  let tags: unknown;
  try {
    tags = JSON.parse(raw.subarray(tagsStart, tagsEnd).toString('utf8'));
  } catch (error) {
    throw new CorruptEntryError('unreadable tag list', { cause: error });
  }
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))
    throw new CorruptEntryError('tag list is not an array of strings');
  return { ...head, tags };
}

export const NULL_BODY = Buffer.from('null');
export const isNullBody = (body: Buffer) => body.length === 4 && body.equals(NULL_BODY);
