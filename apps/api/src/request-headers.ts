import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/**
 * One request header, read from Node's own parsed headers when @hono/node-server serves the
 * request (it passes the IncomingMessage as `c.env.incoming`). `c.req.header()` reads the
 * WHATWG `Headers` of the request, which the adapter builds from every raw header on first
 * use: 2–4 % of a cache hit's CPU (docs/benchmarks.md) for the three or four headers a hit
 * reads. Node joins repeated headers with ", " as `Headers.get` does. Under `app.request()`
 * (tests) there is no IncomingMessage and the WHATWG headers are read.
 */
export function requestHeader(c: Context, name: Lowercase<string>): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming === undefined) return c.req.header(name);
  return nodeHeader(incoming, name);
}

/** One header of Node's request, as `Headers.get` would give it. */
export function nodeHeader(incoming: IncomingMessage, name: Lowercase<string>): string | undefined {
  const value = incoming.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
