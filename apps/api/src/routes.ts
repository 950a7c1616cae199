import { createRoute, z } from '@hono/zod-openapi';
import type { CompiledResource } from '@walcache/resources';
import { type BatchRoute, batchAnswerSchema, batchQueryParam, batchRoutes } from './batch.ts';
import { ProblemSchema } from './schemas.ts';

/**
 * The `/v1` routes as OpenAPI route definitions, one per configured resource: path,
 * parameters, every answer with its headers. app.ts binds each to its resource;
 * /openapi.json is generated from these, so the document always matches the config.
 */

const cachingHeaders = {
  ETag: {
    description:
      'Strong validator of the body bytes (weak, `W/`, when the body is gzip-compressed). Send it back in `If-None-Match`.',
    schema: { type: 'string' as const, example: '"Yc3m0o2c8vR4l9yq1Dk0cA"' },
  },
  'X-Cache': {
    description:
      'HIT: answered from Redis. MISS: loaded from Postgres and cached. BYPASS: Redis unavailable, answered from Postgres.',
    schema: { type: 'string' as const, enum: ['HIT', 'MISS', 'BYPASS'] },
  },
  'Server-Timing': {
    description:
      'Where the time went, in ms (W3C Server Timing): `cache`, plus `db` when this request loaded from Postgres.',
    schema: { type: 'string' as const, example: 'cache;dur=0.40, db;dur=2.13' },
  },
  'Cache-Control': {
    description: 'Store, but revalidate before every use.',
    schema: { type: 'string' as const, example: 'public, no-cache' },
  },
  'X-Walcache-Watermark': {
    description:
      'The read-your-writes watermark this answer reflects: every commit ending at or before this WAL position is in it. Send the highest one you saw back as `X-Walcache-After` (or `walcache_after`) to never read an older state.',
    schema: { type: 'string' as const, example: '0/16B3748' },
  },
  'X-Request-Id': {
    description:
      'The request id (yours, if you sent a valid X-Request-Id; else generated); also in the logs.',
    schema: { type: 'string' as const },
  },
};

const batchHeaders = {
  ...cachingHeaders,
  'X-Cache': {
    description:
      'A single lookup or list: HIT, MISS or BYPASS. A batch lookup: HIT (every value from Redis), MISS (none), PARTIAL (some), BYPASS (Redis unavailable).',
    schema: { type: 'string' as const, enum: ['HIT', 'MISS', 'PARTIAL', 'BYPASS'] },
  },
};

const json = <T extends z.ZodType>(schema: T, description: string, headers = cachingHeaders) => ({
  description,
  headers,
  content: { 'application/json': { schema } },
});

const problemAnswer = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

const commonAnswers = {
  304: {
    description: '`If-None-Match` matched the current ETag: use your copy.',
    headers: cachingHeaders,
  },
  400: problemAnswer('A parameter is invalid (`type` …/invalid-parameter; `errors` names each one).'),
  503: problemAnswer(
    'A cache miss could not be answered: the database is down or slow (…/unavailable) or saturated (…/overloaded). Retry after `Retry-After`.',
  ),
} as const;

/**
 * The OpenAPI route of one resource: its parameters from the catalog, its answer schema, its
 * 404. A list that shares its path with a batch lookup also takes the batch parameter (one
 * path has one GET operation): with it, the answer is the batch's.
 */
export function resourceRoute(resource: CompiledResource, batch?: BatchRoute) {
  const pathParams: Record<string, z.ZodType> = {};
  const queryParams: Record<string, z.ZodType> = {};
  for (const p of resource.routeParams) {
    const described = p.schema.openapi({
      param: { name: p.name, in: p.in, required: p.required },
      description: p.description,
      ...(p.name === 'limit' ? { type: 'integer' as const } : {}),
    });
    if (p.in === 'path') pathParams[p.name] = described;
    else queryParams[p.name] = described;
  }
  if (batch) queryParams[batch.batch.query] = batchQueryParam(batch.lookup, batch.batch, false);
  const request = {
    ...(Object.keys(pathParams).length ? { params: z.object(pathParams) } : {}),
    ...(Object.keys(queryParams).length ? { query: z.object(queryParams) } : {}),
  };
  const answers =
    Object.keys(pathParams).length || Object.keys(queryParams).length
      ? commonAnswers
      : { 304: commonAnswers[304], 503: commonAnswers[503] };
  const notFound: Record<number, ReturnType<typeof problemAnswer>> = resource.kind === 'lookup' ||
  Object.keys(pathParams).length
    ? {
        404: problemAnswer(
          `No ${resource.kind === 'lookup' ? resource.name : 'parent row'} has these parameters (…/not-found).`,
        ),
      }
    : {};
  return createRoute({
    method: 'get',
    path: resource.route,
    operationId: resource.operationId,
    tags: [resource.openapiTag],
    summary: resource.summary,
    ...(resource.description ? { description: resource.description } : {}),
    request,
    responses: {
      200: batch
        ? json(
            z
              .union([resource.answer.openapi(resource.schemaName), batchAnswerSchema(batch.lookup)])
              .openapi(`${resource.schemaName}Or${batch.lookup.schemaName}Batch`),
            `${resource.summary}; with \`${batch.batch.query}\`, a batch of ${batch.lookup.name}`,
            batchHeaders,
          )
        : json(resource.answer.openapi(resource.schemaName), resource.summary),
      ...answers,
      ...notFound,
    },
  });
}

/** A batch lookup on a path of its own: the batch parameter is required. */
export function batchRoute({ lookup, batch }: BatchRoute) {
  return createRoute({
    method: 'get',
    path: batch.route,
    operationId: `${lookup.operationId}Batch`,
    tags: [lookup.openapiTag],
    summary: `Many ${lookup.name} by ${batch.param}, in one request`,
    request: { query: z.object({ [batch.query]: batchQueryParam(lookup, batch, true) }) },
    responses: {
      200: json(
        batchAnswerSchema(lookup),
        `The ${lookup.name} values found, and the ones missing`,
        batchHeaders,
      ),
      ...commonAnswers,
    },
  });
}

/** What a `/v1` route answers: a batch on a path of its own, or a resource (a list may share its path with a batch). */
export type V1Answer =
  | { kind: 'batch'; batch: BatchRoute }
  | { kind: 'resource'; resource: CompiledResource; batch?: BatchRoute };

export interface V1Route {
  /** The route's OpenAPI definition (its parameter schemas are the ones checked). */
  definition: ReturnType<typeof resourceRoute> | ReturnType<typeof batchRoute>;
  /** Hono's spelling of its path, also the metrics' route label: `/v1/things/:id`. */
  path: string;
  answer: V1Answer;
}

/**
 * Every `/v1` route of a config, in the order the router must try them (the first that
 * matches a path answers it): a batch on a path of its own first, so `/v1/a/by-name` is never
 * read as `/v1/a/{id}`; then lists before lookups and longer paths first, so `/v1/a/{id}/b`
 * is never read as `/v1/a/{id}`. The Hono app and the hit lane both route by this table.
 */
export function v1Routes(resources: readonly CompiledResource[]): V1Route[] {
  const routes: V1Route[] = [];
  const listRoutes = new Set(resources.filter((r) => r.kind === 'list').map((r) => r.route));
  const sharedBatch = new Map<string, BatchRoute>();
  for (const b of batchRoutes(resources)) {
    if (listRoutes.has(b.batch.route)) {
      sharedBatch.set(b.batch.route, b);
      continue;
    }
    const definition = batchRoute(b);
    routes.push({ definition, path: honoPath(definition.path), answer: { kind: 'batch', batch: b } });
  }
  const ordered = [...resources].sort((a, b) => b.route.split('/').length - a.route.split('/').length);
  for (const resource of ordered) {
    const batch = resource.kind === 'list' ? sharedBatch.get(resource.route) : undefined;
    const definition = resourceRoute(resource, batch);
    routes.push({
      definition,
      path: honoPath(definition.path),
      answer: { kind: 'resource', resource, ...(batch ? { batch } : {}) },
    });
  }
  return routes;
}

/** `/v1/things/{id}` → `/v1/things/:id`, as @hono/zod-openapi registers a route. */
export function honoPath(openapiPath: string): string {
  return openapiPath.replaceAll(/\/{(.+?)}/g, '/:$1');
}
