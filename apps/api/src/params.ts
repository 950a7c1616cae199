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
/** Repeated query parameters as arrays, single ones as strings: what Hono's query validator passed. */
export type QueryValues = Record<string, string | string[]>;
export type ValuesCheck = (query: QueryValues, path: Record<string, string>) => Outcome | Promise<Outcome>;

/** The check of a route's parameters as the Hono app reads them. */
export function paramsCheck(request: RouteRequest): ParamsCheck {
  const check = valuesCheck(request);
  return (c) => check(request.query ? queryOf(c) : {}, c.req.param());
}

/** The same check over parameters already read (the hit lane reads them from Node's request). */
export function valuesCheck(request: RouteRequest): ValuesCheck {
  const { query, params: path } = request;
  return (queryValues, pathValues) => {
    let merged: Params = {};
    if (query) {
      const parsed = parse(query, queryValues);
      if (parsed === ASYNC) return checkAsync(request, queryValues, pathValues);
      if (!parsed.success) return { errors: parameterErrors(parsed.error, 'query') };
      merged = parsed.data as Params;
    }
    if (path) {
      const parsed = parse(path, pathValues);
      if (parsed === ASYNC) return checkAsync(request, queryValues, pathValues);
      if (!parsed.success) return { errors: parameterErrors(parsed.error, 'path') };
      merged = query ? { ...merged, ...(parsed.data as Params) } : (parsed.data as Params);
    }
    return { params: merged };
  };
}

/** A schema with an async refinement (a custom resource may declare one): parsed the slow way. */
async function checkAsync(
  { query, params: path }: RouteRequest,
  queryValues: QueryValues,
  pathValues: Record<string, string>,
): Promise<Outcome> {
  let merged: Params = {};
  for (const [schema, value, place] of [
    [query, queryValues, 'query'],
    [path, pathValues, 'path'],
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

function queryOf(c: Context): QueryValues {
  const all = c.req.queries();
  const value: QueryValues = {};
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
