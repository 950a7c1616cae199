import { STARTING_PROBLEM_TYPE } from '@walcache/observability/starting';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * Stable problem `type` URIs (RFC 9457): clients may switch on them; never rename one.
 * docs/api.md lists each with its status and meaning.
 */
export const problemTypes = {
  /** 400: a path or query parameter is malformed or out of range; `errors` names each one. */
  invalidParameter: 'https://walcache.dev/problems/invalid-parameter',
  /** 404: the route exists, the row it names does not. */
  notFound: 'https://walcache.dev/problems/not-found',
  /** 404: no route has this path. */
  routeNotFound: 'https://walcache.dev/problems/route-not-found',
  /** 405: the path exists, the method does not (see `Allow`). */
  methodNotAllowed: 'https://walcache.dev/problems/method-not-allowed',
  /** 413: the request carried a body larger than the API accepts. */
  payloadTooLarge: 'https://walcache.dev/problems/payload-too-large',
  /** 401: an /ops route without a valid OPS_TOKEN. */
  unauthorized: 'https://walcache.dev/problems/unauthorized',
  /** 403: a queue-dashboard action that would drop or rewrite pending invalidations. */
  forbidden: 'https://walcache.dev/problems/forbidden',
  /** 503: the database could not answer a cache miss (down, or a query timed out). */
  unavailable: 'https://walcache.dev/problems/unavailable',
  /** 503: too many cache misses already wait for a database connection: retry shortly. */
  overloaded: 'https://walcache.dev/problems/overloaded',
  /** 503: the process is still starting (answered by the entry's listenWhileStarting, not the app). */
  starting: STARTING_PROBLEM_TYPE,
  internal: 'https://walcache.dev/problems/internal',
} as const;

export type ProblemType = (typeof problemTypes)[keyof typeof problemTypes];

export interface ParameterError {
  parameter: string;
  in: 'path' | 'query' | 'header';
  message: string;
}

export interface Problem {
  type: ProblemType;
  title: string;
  status: ContentfulStatusCode;
  detail?: string;
  instance?: string;
  /** For 400s: one entry per bad parameter. */
  errors?: ParameterError[];
}

export function problem(c: Context, p: Problem, headers: Record<string, string> = {}): Response {
  return c.body(JSON.stringify({ ...p, instance: p.instance ?? c.req.path }), p.status, {
    'content-type': 'application/problem+json',
    // A problem is about this request, never a representation worth storing.
    'cache-control': 'no-store',
    ...headers,
  });
}

/** 400 naming every bad parameter. */
export function invalidParameters(
  c: Context,
  errors: ParameterError[],
  headers: Record<string, string> = {},
): Response {
  return problem(
    c,
    {
      type: problemTypes.invalidParameter,
      title: 'Invalid parameter',
      status: 400,
      detail: errors.map((e) => `${e.parameter} ${e.message}`).join('; '),
      errors,
    },
    headers,
  );
}
