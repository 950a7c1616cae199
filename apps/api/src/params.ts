import { z } from '@hono/zod-openapi';
import type { Params } from '@walcache/resources';
import type { Context } from 'hono';
import type { ParameterError } from './problem.ts';

/**
 * A `/v1` route's parameters, validated once, in its handler: the query, then the path (the
 * order @hono/zod-openapi's validators ran in), each with the route's own zod schema, the one
 * its OpenAPI document is generated from. Not as validator middlewares: those are two more
 * links in the middleware chain per request, each an async `safeParseAsync` and a read of
 * `Content-Type` that makes the Node adapter build the request's WHATWG Headers — about a
 * tenth of a cache hit's CPU in the profile (docs/benchmarks.md).
 */
export interface RouteRequest {
  query?: z.ZodType;
  params?: z.ZodType;
}

export type Outcome = { params: Params } | { errors: ParameterError[] };
export type ParamsCheck = (c: Context) => Outcome | Promise<Outcome>;

export function paramsCheck(request: RouteRequest): ParamsCheck {
  const { query, params: path } = request;
  return (c) => {
    let merged: Params = {};
    if (query) {
      const parsed = parse(query, queryOf(c));
      if (parsed === ASYNC) return checkAsync(c, request);
      if (!parsed.success) return { errors: parameterErrors(parsed.error, 'query') };
      merged = parsed.data as Params;
    }
    if (path) {
      const parsed = parse(path, c.req.param());
      if (parsed === ASYNC) return checkAsync(c, request);
      if (!parsed.success) return { errors: parameterErrors(parsed.error, 'path') };
      merged = query ? { ...merged, ...(parsed.data as Params) } : (parsed.data as Params);
    }
    return { params: merged };
  };
}

/** A schema with an async refinement (a custom resource may declare one): parsed the slow way. */
async function checkAsync(c: Context, { query, params: path }: RouteRequest): Promise<Outcome> {
  let merged: Params = {};
  for (const [schema, value, place] of [
    [query, query && queryOf(c), 'query'],
    [path, path && c.req.param(), 'path'],
  ] as const) {
    if (!schema) continue;
    const parsed = await schema.safeParseAsync(value);
    if (!parsed.success) return { errors: parameterErrors(parsed.error, place) };
    merged = { ...merged, ...(parsed.data as Params) };
  }
  return { params: merged };
}

const ASYNC = Symbol('async schema');

function parse(schema: z.ZodType, value: unknown): z.ZodSafeParseResult<unknown> | typeof ASYNC {
  try {
    return schema.safeParse(value);
  } catch (error) {
    if (error instanceof z.core.$ZodAsyncError) return ASYNC;
    throw error;
  }
}

/** Repeated query parameters as arrays, single ones as strings: what Hono's query validator passed. */
function queryOf(c: Context): Record<string, string | string[]> {
  const all = c.req.queries();
  const value: Record<string, string | string[]> = {};
  for (const name in all) {
    const values = all[name]!;
    value[name] = values.length === 1 ? values[0]! : values;
  }
  return value;
}

/** One entry per parameter (its first problem): "id must not be empty", not three lines about one id. */
function parameterErrors(error: z.ZodError, place: 'path' | 'query'): ParameterError[] {
  const seen = new Map<string, ParameterError>();
  for (const issue of error.issues) {
    const parameter = String(issue.path[0] ?? (place === 'path' ? 'id' : 'query'));
    if (!seen.has(parameter)) seen.set(parameter, { parameter, in: place, message: issue.message });
  }
  return [...seen.values()];
}
