import { gzipSync } from 'node:zlib';
import { limits } from './limits.ts';

/**
 * Conditional requests and content coding for `/v1` answers. Everything here works on the
 * cached bytes and the ETag stored with them: a hit is never parsed or re-serialised.
 */

/** Clients and shared caches may store an answer but must revalidate it (a cheap 304) before each use. */
export const CACHE_CONTROL = 'public, no-cache';

/**
 * `If-None-Match` (RFC 9110 §13.1.2): a list of entity tags or `*`, compared weakly, so
 * `W/"x"` (what a client got with a gzip answer) matches the strong `"x"`.
 */
export function ifNoneMatchMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const trimmed = header.trim();
  if (trimmed === '*') return true;
  const opaque = stripWeak(etag);
  // Entity tags cannot contain commas or quotes inside, so a split on commas is exact.
  for (const candidate of trimmed.split(',')) {
    if (stripWeak(candidate.trim()) === opaque) return true;
  }
  return false;
}

function stripWeak(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** True when `Accept-Encoding` allows gzip (q > 0), explicitly or through `*`. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let wildcard: number | undefined;
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    const weight = Number.isFinite(q) ? q : 0;
    if (name === 'gzip' || name === 'x-gzip') return weight > 0;
    if (name === '*') wildcard = weight;
  }
  return wildcard !== undefined && wildcard > 0;
}

/**
 * Whether to gzip a body: when it is at least `limits.compressMinBytes` and the client
 * accepts gzip. Smaller bodies fit in one TCP segment anyway, so compressing them only costs
 * CPU (docs/api.md, "Compression", has the measurement).
 */
export function shouldCompress(size: number, acceptEncoding: string | undefined): boolean {
  return size >= limits.compressMinBytes && acceptsGzip(acceptEncoding);
}

/** Whether answers for a body of this size depend on Accept-Encoding (send `Vary`, 304s included). */
export function variesByEncoding(size: number): boolean {
  return size >= limits.compressMinBytes;
}

/** The ETag of the gzip representation: weak, as gzip bytes may differ between zlib builds. */
export function weakEtag(etag: string): string {
  return etag.startsWith('W/') ? etag : `W/${etag}`;
}

export function gzip(body: Buffer): Buffer {
  // Sync on purpose: the largest body (100 list items, ~15 KB) takes ~0.1-0.25 ms, about
  // what a round trip through the libuv thread pool would add anyway.
  return gzipSync(body, { level: limits.gzipLevel });
}

/**
 * Gzip output by ETag, so a hot page is compressed once per process rather than on every
 * hit. The ETag is a hash of the exact body bytes, so an entry can never be served for other
 * bytes. Bounded by the compressed bytes it holds; the least recently used go first.
 */
export class GzipMemo {
  private readonly entries = new Map<string, Buffer>();
  private held = 0;

  constructor(private readonly maxBytes: number = limits.gzipMemoBytes) {}

  gzip(etag: string, body: Buffer): Buffer {
    const found = this.entries.get(etag);
    if (found) {
      // Map order is insertion order: re-inserting marks the entry most recently used.
      this.entries.delete(etag);
      this.entries.set(etag, found);
      return found;
    }
    const compressed = gzip(body);
    if (compressed.length > this.maxBytes) return compressed;
    this.entries.set(etag, compressed);
    this.held += compressed.length;
    for (const [key, value] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(key);
      this.held -= value.length;
    }
    return compressed;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.held;
  }
}
