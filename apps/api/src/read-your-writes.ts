import { parseLsnToken, type WatermarkReader, watermarkLsn } from '@walcache/core';
import type { Db } from '@walcache/resources';
import type { Context, MiddlewareHandler } from 'hono';
import { sql } from 'kysely';
import type { ApiEnv } from './app.ts';
import type { ApiMetrics } from './metrics.ts';
import { invalidParameters } from './problem.ts';
import { requestHeader } from './request-headers.ts';
import { CACHE_SKIPPED } from './server-timing.ts';

/** The request header and query parameter that carry a read-your-writes token. */
export const AFTER_HEADER = 'x-walcache-after';
export const AFTER_QUERY = 'walcache_after';
export const WATERMARK_HEADER = 'x-walcache-watermark';

const TOKEN_MESSAGE = 'must be an LSN as pg_current_wal_lsn() prints it, e.g. 0/16B3748';

export interface ReadYourWritesDeps {
  watermark: WatermarkReader;
  waitMs: number;
  metrics: ApiMetrics;
}

/**
 * Read-your-writes on `/v1` (docs/api.md): a token (`X-Walcache-After`, or `walcache_after`)
 * at or below the watermark W is answered as usual; one ahead of it waits for W up to
 * `waitMs`, then is answered from Postgres without the cache (`BYPASS`). Every answer
 * carries `X-Walcache-Watermark`: the W read before the answer's cache read (so the answer
 * reflects every commit up to it), or for a Postgres answer the WAL position read after
 * its load. A client that sends back the highest value it saw never reads an older state.
 */
export function readYourWrites(deps: ReadYourWritesDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = requestHeader(c, AFTER_HEADER);
    const query = c.req.query(AFTER_QUERY);
    let token: bigint | undefined;
    for (const [text, parameter, place] of [
      [header, 'X-Walcache-After', 'header'],
      [query, AFTER_QUERY, 'query'],
    ] as const) {
      if (text === undefined) continue;
      const parsed = parseLsnToken(text.trim());
      if (parsed === undefined)
        return invalidParameters(c, [{ parameter, in: place, message: TOKEN_MESSAGE }], {
          'server-timing': CACHE_SKIPPED,
        });
      if (token === undefined || parsed > token) token = parsed;
    }
    let watermark = deps.watermark.known();
    if (token !== undefined && (watermark === undefined || watermark < token)) {
      deps.metrics.rywWaits.inc();
      const started = performance.now();
      const reached = await deps.watermark.reach(token, deps.waitMs);
      deps.metrics.rywWaitSeconds.observe((performance.now() - started) / 1000);
      if (reached === undefined) {
        deps.metrics.rywBypassed.inc();
        c.set('rywBypass', true);
      } else watermark = reached;
    }
    c.set('watermark', watermark);
    await next();
    // A cache answer carries it in its own header record (send): touching `c.res.headers`
    // would build a Headers object for every hit. Everything else (problems) gets it here.
    if (!c.get('watermarkSent')) c.res.headers.set(WATERMARK_HEADER, watermarkHeader(c));
  };
}

let lastShown: { value: bigint; text: string } = { value: 0n, text: watermarkLsn(0n) };

/**
 * The `X-Walcache-Watermark` value of this answer: the watermark read before its cache read,
 * or, for a Postgres answer, the WAL position read after its load. Formatted once per new
 * watermark, not once per request.
 */
export function watermarkHeader(c: Context<ApiEnv>): string {
  c.set('watermarkSent', true);
  return watermarkText(c.get('bypassWatermark') ?? c.get('watermark'));
}

/** The header's text for a watermark (none known yet: 0/0). */
export function watermarkText(value: bigint | undefined = 0n): string {
  if (value !== lastShown.value) lastShown = { value, text: watermarkLsn(value) };
  return lastShown.text;
}

/** The WAL position after a Postgres answer's load: its snapshot saw no commit beyond it. */
export async function walPositionAfterLoad(c: Context<ApiEnv>, db: Db): Promise<void> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(db);
  const lsn = rows[0]?.lsn;
  if (lsn) c.set('bypassWatermark', parseLsnToken(lsn));
}
