import { z } from '@hono/zod-openapi';
import type { CacheResult } from '@walcache/core';
import type { BatchLookup, CompiledResource, Params } from '@walcache/resources';
import { limits } from './limits.ts';

/**
 * Batch lookups, `GET <route>?ids=1,2,3`: many values of one lookup in one request. The
 * answer is `{"items": [...], "missing": [...]}`: the values found, in the order asked
 * (each value once), and the values no row has. Built from the cached bytes of each value
 * as they are, never parsed.
 */

/** X-Cache of a batch: every value a hit, none, some (PARTIAL), or Redis not used (BYPASS). */
export type BatchStatus = 'HIT' | 'MISS' | 'PARTIAL' | 'BYPASS';

/** The lookup a batch route serves, and the list (if any) that shares its path. */
export interface BatchRoute {
  lookup: CompiledResource;
  batch: BatchLookup;
}

/**
 * The batch lookups of a config: one per single-column lookup whose batch path is free, or
 * is a list's that takes no required query parameter (with the batch parameter the answer is
 * the batch's). A path another route could match (`/v1/things/by-name` against
 * `/v1/things/{id}`) is left to that route: a batch must never shadow a value.
 */
export function batchRoutes(resources: readonly CompiledResource[]): BatchRoute[] {
  const out: BatchRoute[] = [];
  for (const lookup of resources) {
    const batch = lookup.batch;
    if (!batch) continue;
    const shared = resources.find((r) => r.route === batch.route);
    if (shared && (shared.kind !== 'list' || shared.routeParams.some((p) => p.in === 'query' && p.required)))
      continue;
    if (resources.some((r) => r !== shared && routePattern(r.route).test(batch.route))) continue;
    out.push({ lookup, batch });
  }
  return out;
}

function routePattern(route: string): RegExp {
  const parts = route.split(/\{[^}]+\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[^/]+')}$`);
}

/**
 * The batch parameter: one comma-separated list, 1 to `limits.batchMaxIds` values, each
 * valid for the lookup's own parameter; canonical (as the single lookup's key) and
 * deduplicated, first occurrence kept. Values cannot contain a comma.
 */
export function batchValuesSchema(lookup: CompiledResource, batch: BatchLookup): z.ZodType<string[]> {
  const item = lookup.routeParams.find((p) => p.name === batch.param)?.schema ?? z.string();
  const max = limits.batchMaxIds;
  return z.unknown().transform((raw, ctx) => {
    if (typeof raw !== 'string') {
      ctx.addIssue({
        code: 'custom',
        message: Array.isArray(raw)
          ? 'must be given once, as one comma-separated list'
          : `is required: 1 to ${max} values separated by commas`,
      });
      return z.NEVER;
    }
    const parts = raw.split(',');
    if (parts.length > max) {
      ctx.addIssue({ code: 'custom', message: `lists at most ${max} values (got ${parts.length})` });
      return z.NEVER;
    }
    const values = new Set<string>();
    for (const [i, part] of parts.entries()) {
      const parsed = item.safeParse(part);
      if (!parsed.success || typeof parsed.data !== 'string') {
        const why = part === '' ? 'must not be empty' : (parsed.error?.issues[0]?.message ?? 'is not valid');
        ctx.addIssue({
          code: 'custom',
          message: `value ${i + 1} (${JSON.stringify(part.slice(0, 40))}) ${why}`,
        });
        return z.NEVER;
      }
      values.add(parsed.data);
    }
    return [...values];
  });
}

/** The batch's params, one per value, shaped as the single lookup's. */
export function batchParams(batch: BatchLookup, values: readonly string[]): Params[] {
  return values.map((v) => ({ [batch.param]: v }));
}

const ITEMS_OPEN = Buffer.from('{"items":[');
const COMMA = Buffer.from(',');
const MISSING_OPEN = Buffer.from('],"missing":');
const CLOSE = Buffer.from('}');

/** The answer's bytes: found bodies as cached, in order; the missing values as JSON strings. */
export function batchBody(values: readonly string[], results: readonly CacheResult[]): Buffer {
  const parts: Buffer[] = [ITEMS_OPEN];
  const missing: string[] = [];
  results.forEach((r, i) => {
    if (!r.found) {
      missing.push(values[i]!);
      return;
    }
    if (parts.length > 1) parts.push(COMMA);
    parts.push(r.body);
  });
  parts.push(MISSING_OPEN, Buffer.from(JSON.stringify(missing)), CLOSE);
  return Buffer.concat(parts);
}

export function batchStatus(results: readonly CacheResult[]): BatchStatus {
  let hits = 0;
  for (const r of results) {
    if (r.status === 'BYPASS') return 'BYPASS';
    if (r.status === 'HIT') hits += 1;
  }
  return hits === results.length ? 'HIT' : hits === 0 ? 'MISS' : 'PARTIAL';
}

/** The answer's schema: the lookup's own answer for each item. */
export function batchAnswerSchema(lookup: CompiledResource): z.ZodType {
  return z
    .object({
      items: z.array(lookup.answer.openapi(lookup.schemaName)).openapi({
        description: 'The values found, in the order asked, each value once.',
      }),
      missing: z.array(z.string()).openapi({
        description: 'The values asked for that no row has (canonical form), in the order asked.',
      }),
    })
    .openapi(`${lookup.schemaName}Batch`);
}

/** The batch parameter as the OpenAPI document shows it. */
export function batchQueryParam(
  lookup: CompiledResource,
  batch: BatchLookup,
  required: boolean,
): z.ZodType<string[] | undefined> {
  const schema = batchValuesSchema(lookup, batch);
  return (required ? schema : schema.optional()).openapi({
    param: { name: batch.query, in: 'query', required },
    type: 'string',
    example: '1,2,3',
    description:
      `Batch lookup: up to ${limits.batchMaxIds} ${batch.param} values separated by commas. ` +
      `The answer is \`{items, missing}\` (${lookup.schemaName}Batch): the ${lookup.name} values found in the order asked, ` +
      'and the values no row has. X-Cache: HIT (every value from Redis), MISS (none), PARTIAL (some), BYPASS.',
  }) as z.ZodType<string[] | undefined>;
}
