import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** Stable problem `type` URIs: clients may switch on them; never rename one. */
export const problemTypes = {
  invalidParameter: 'https://walcache.dev/problems/invalid-parameter',
  notFound: 'https://walcache.dev/problems/not-found',
  methodNotAllowed: 'https://walcache.dev/problems/method-not-allowed',
  unauthorized: 'https://walcache.dev/problems/unauthorized',
  unavailable: 'https://walcache.dev/problems/unavailable',
  internal: 'https://walcache.dev/problems/internal',
} as const;

export interface Problem {
  type: string;
  title: string;
  status: ContentfulStatusCode;
  detail?: string;
  instance?: string;
  /** For 400s: one entry per bad parameter. */
  errors?: { parameter: string; message: string }[];
}

export function problem(c: Context, p: Problem, headers: Record<string, string> = {}) {
  return c.body(JSON.stringify({ ...p, instance: p.instance ?? c.req.path }), p.status, {
    'content-type': 'application/problem+json',
    ...headers,
  });
}
