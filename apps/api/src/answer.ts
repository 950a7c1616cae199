import {
  CACHE_CONTROL,
  GzipMemo,
  ifNoneMatchMatches,
  shouldCompress,
  variesByEncoding,
  weakEtag,
} from './http-cache.ts';
import { WATERMARK_HEADER } from './read-your-writes.ts';

/** What a cached answer depends on in its request, read by whichever lane serves it. */
export interface AnswerRequest {
  acceptEncoding: string | undefined;
  ifNoneMatch: string | undefined;
  requestId: string;
  /** The X-Walcache-Watermark value (read-your-writes.ts `watermarkText`). */
  watermark: string;
}

export interface CachedAnswer {
  status: 200 | 304;
  /** A fresh record per answer: Node's writeHead takes it as it is, and a caller may add to it. */
  headers: Record<string, string>;
  body: Buffer | null;
}

/**
 * A 200 (or 304) of cached bytes: validators, content coding, the cache's outcome, timing and
 * the request's id and watermark. The one place a `/v1` answer's headers are decided: the Hono
 * app (app.ts `send`) and the hit lane (hit-lane.ts) both build their answers here.
 */
export class CachedAnswers {
  constructor(private readonly memo: GzipMemo = new GzipMemo()) {}

  build(request: AnswerRequest, cache: string, bytes: Buffer, etag: string, timing: string): CachedAnswer {
    const size = bytes.length;
    const compress = shouldCompress(size, request.acceptEncoding);
    const headers: Record<string, string> = {
      'x-cache': cache,
      'server-timing': timing,
      'cache-control': CACHE_CONTROL,
      // The ETag a 200 in the client's encoding carries; a 304 names the same one.
      etag: compress ? weakEtag(etag) : etag,
      'x-request-id': request.requestId,
      [WATERMARK_HEADER]: request.watermark,
      // On a 304 too: a client's cache updates the stored answer's headers from it, and Node's
      // adapter gives an answer without one `text/plain`.
      'content-type': 'application/json',
    };
    if (variesByEncoding(size)) headers.vary = 'Accept-Encoding';
    if (ifNoneMatchMatches(request.ifNoneMatch, etag)) return { status: 304, headers, body: null };
    if (compress) headers['content-encoding'] = 'gzip';
    // The body is the cached bytes (or their gzip): never parsed, never re-serialised.
    return { status: 200, headers, body: compress ? this.memo.gzip(etag, bytes) : bytes };
  }
}
