import type { Context } from 'hono';
import { requestHeader } from './request-headers.ts';

/**
 * The request id of every answer (`X-Request-Id`, also in the logs): the client's own when it
 * is 1–255 characters of letters, digits, `_`, `-` and `=` (hono/request-id's rule), else a
 * random UUID. Unlike hono/request-id it sets no header before the handler runs: a header set
 * then makes Hono build a WHATWG Headers object for every answer, which a cache hit (whose
 * headers go straight to Node's writeHead, see app.ts `send`) otherwise never needs. Two
 * functions rather than a middleware: app.ts calls them from its one request middleware.
 */
export type RequestIdVariables = {
  requestId: string;
  /** Set by a handler whose answer already carries the X-Request-Id header. */
  requestIdSent?: true;
};

const VALID = /^[\w\-=]{1,255}$/;

type WithRequestId = Context<{ Variables: RequestIdVariables }>;

/** Before the handler: the request's id, for the handler's answer and the logs. */
export function assignRequestId(c: WithRequestId): string {
  const id = requestIdFor(requestHeader(c, 'x-request-id'));
  c.set('requestId', id);
  return id;
}

/** The id of a request that sent this `X-Request-Id` (or none). */
export function requestIdFor(given: string | undefined): string {
  return given !== undefined && VALID.test(given) ? given : crypto.randomUUID();
}

/** After the handler: the header, unless the answer already carries it. */
export function sendRequestId(c: WithRequestId, id: string): void {
  if (!c.get('requestIdSent')) c.header('X-Request-Id', id);
}
