import type { MiddlewareHandler } from 'hono';

/**
 * The request id of every answer (`X-Request-Id`, also in the logs): the client's own when it
 * is 1–255 characters of letters, digits, `_`, `-` and `=` (hono/request-id's rule), else a
 * random UUID. Unlike hono/request-id it sets no header before the handler runs: a header set
 * then makes Hono build a WHATWG Headers object for every answer, which a cache hit (whose
 * headers go straight to Node's writeHead, see app.ts `send`) otherwise never needs.
 */
export type RequestIdVariables = {
  requestId: string;
  /** Set by a handler whose answer already carries the X-Request-Id header. */
  requestIdSent?: true;
};

const VALID = /^[\w\-=]{1,255}$/;

export function requestId(): MiddlewareHandler<{ Variables: RequestIdVariables }> {
  return async (c, next) => {
    const given = c.req.header('x-request-id');
    const id = given !== undefined && VALID.test(given) ? given : crypto.randomUUID();
    c.set('requestId', id);
    await next();
    if (!c.get('requestIdSent')) c.header('X-Request-Id', id);
  };
}
