import { z } from '@hono/zod-openapi';
import type { CustomResourceConfig, WalcacheConfig } from '@walcache/config';
import {
  colTag,
  type Resource,
  rowsTag,
  rowTag,
  type Tag,
  tableTag,
  type WatchedColumn,
} from '@walcache/core';
import type { Kysely } from 'kysely';
import { type Catalog, canonicalTableName, type Queryable, readCatalog } from './catalog.ts';
import {
  ConfigMismatchError,
  type ListPlan,
  type LookupPlan,
  type Membership,
  type NodePlan,
  type ParamPlan,
  planConfig,
  type ResourcePlan,
  tablesOfConfig,
  type WarmPlan,
} from './plan.ts';
import {
  listQuery,
  lookupManyQuery,
  lookupQuery,
  placeholderValues,
  precompiled,
  warmValuesQuery,
} from './sql.ts';
import { answerSchema, paramSchema, tagText } from './types.ts';

/**
 * A config compiled against a database: the resources every app serves, and what the CDC
 * needs. This is the one seam between the domain (a team's config) and walcache's code.
 */

// biome-ignore lint/suspicious/noExplicitAny: compiled resources read tables no TypeScript type describes.
export type Db = Kysely<any>;

export type Params = Record<string, string | number | undefined>;
export type Value = Record<string, unknown>;

export interface RouteParam {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description: string;
  schema: z.ZodType;
}

export interface CompiledResource extends Resource<Db, Params, Value> {
  readonly kind: 'lookup' | 'list' | 'custom';
  /** OpenAPI path, `{param}` style. */
  readonly route: string;
  readonly routeParams: readonly RouteParam[];
  /** The answer's schema (registered as an OpenAPI component under `schemaName`). */
  readonly answer: z.ZodType;
  readonly schemaName: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly openapiTag: string;
  /** The tables this resource reads. */
  readonly reads: readonly string[];
  /** Lookups by one column whose route ends in its parameter: many values per request. */
  readonly batch?: BatchLookup;
  /** What to pre-fill after a start or a namespace flush (the config's `warm`). */
  readonly warm?: WarmSpec;
}

export interface WarmSpec {
  /** What is pre-filled, for the log: `the first page`, `rows where active = true, at most 1000`. */
  readonly what: string;
  /** The params of every value to pre-fill, canonical as a request's (the same cache keys). */
  params(db: Db): Promise<Params[]>;
}

/**
 * `GET <route>?<query>=a,b,c`: the lookup for many values. The route is the lookup's own
 * without its last segment (`/v1/things/{id}` → `/v1/things`), the query parameter the
 * lookup's parameter name plus `s` (`ids`).
 */
export interface BatchLookup {
  readonly route: string;
  /** The lookup's one parameter (each value is validated by its route schema). */
  readonly param: string;
  readonly query: string;
  /** One query for all: the value of each params in order, `null` where no row has it. */
  loadMany(db: Db, params: readonly Params[]): Promise<(Value | null)[]>;
}

export interface CompiledConfig {
  resources: CompiledResource[];
  /** The publication's tables. */
  tables: string[];
  watched: WatchedColumn[];
  /**
   * Per table, the columns some resource reads; a table a custom resource reads is absent
   * (its SQL is not known to walcache: every change of it counts).
   */
  readColumns: Record<string, string[]>;
  /**
   * Per table, which columns each set tag depends on (Plan.membership); absent like
   * readColumns for a table a custom resource reads (every change is a set change).
   */
  membership: Record<string, Membership>;
  needsFullIdentity: string[];
  warnings: string[];
  openapi: { title?: string; description?: string };
  byName(name: string): CompiledResource | undefined;
  /** The resource a cache key (`book:42`) belongs to, by its `name:` prefix. */
  resourceForKey(key: string): CompiledResource | undefined;
}

/** Reads the catalog for the config's tables and compiles it; throws ConfigMismatchError naming each fix. */
export async function compileConfig(config: WalcacheConfig, db: Queryable): Promise<CompiledConfig> {
  const customTables = Object.values(config.custom ?? {}).flatMap((c) => c.reads as string[]);
  const catalog = await readCatalog(db, [...tablesOfConfig(config), ...customTables]);
  return compileWithCatalog(config, catalog);
}

export function compileWithCatalog(config: WalcacheConfig, catalog: Catalog): CompiledConfig {
  const plan = planConfig(config, catalog);
  const custom = Object.entries(config.custom ?? {}).map(([name, spec]) => compileCustom(name, spec, config));
  const missing = custom.flatMap((c) =>
    c.reads
      .filter((t) => !catalog.tables.has(t))
      .map((t) => `custom resource "${c.name}": reads ${t}, which does not exist`),
  );
  if (missing.length > 0) throw new ConfigMismatchError(missing);
  const resources = [...plan.resources.map(compileResource), ...custom];
  const byName = new Map(resources.map((r) => [r.name, r]));
  return {
    resources,
    tables: [...new Set([...plan.tables, ...custom.flatMap((c) => c.reads)])].sort(),
    watched: plan.watched,
    readColumns: withoutCustomTables(plan.readColumns, custom),
    membership: withoutCustomTables(plan.membership, custom),
    needsFullIdentity: plan.needsFullIdentity,
    warnings: plan.warnings,
    openapi: config.openapi ?? {},
    byName: (name) => byName.get(name),
    resourceForKey: (key) => byName.get(key.slice(0, key.indexOf(':'))),
  };
}

/** A custom resource's SQL is not known: for the tables it reads every change counts. */
function withoutCustomTables<T>(
  perTable: Record<string, T>,
  custom: readonly CompiledResource[],
): Record<string, T> {
  return Object.fromEntries(
    Object.entries(perTable).filter(([table]) => !custom.some((c) => c.reads.includes(table))),
  );
}

/**
 * Tags computed by the load's own query, handed to `tags(params, value)` by the value
 * object (core asks for tags right after the load that produced the value).
 */
const loadedTags = new WeakMap<object, Tag[]>();

function flattenTags(raw: unknown, out: Tag[]): Tag[] {
  if (typeof raw === 'string') out.push(raw);
  else if (Array.isArray(raw)) for (const item of raw) flattenTags(item, out);
  return out;
}

const pascal = (name: string) =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');

function tablesRead(node: NodePlan, out = new Set<string>()): Set<string> {
  out.add(node.table.tagName);
  for (const e of node.embeds) {
    if (e.kind === 'one' || e.kind === 'many') tablesRead(e.node, out);
    else if (e.kind === 'through') {
      out.add(e.join.tagName);
      tablesRead(e.node, out);
    } else if (e.kind === 'count') out.add(e.table.tagName);
    else {
      out.add(e.join.tagName);
      out.add(e.target.tagName);
    }
  }
  return out;
}

function nodeSchema(node: NodePlan): z.ZodType {
  if (node.pluck) return answerSchema(node.pluck);
  const shape: Record<string, z.ZodType> = {};
  for (const c of node.columns) shape[c.field] = answerSchema(c.column);
  for (const e of node.embeds) {
    if (e.kind === 'one') {
      const inner = nodeSchema(e.node);
      shape[e.field] = e.via.some((c) => c.nullable) ? inner.nullable() : inner;
    } else if (e.kind === 'many' || e.kind === 'through') shape[e.field] = z.array(nodeSchema(e.node));
    else shape[e.field] = z.number().int().min(0);
  }
  return z.object(shape);
}

const encodeKeyPart = (value: string | number) => encodeURIComponent(String(value));

function paramDoc(p: ParamPlan): string {
  return `${p.column.name} (${p.column.sqlType})`;
}

function compileResource(plan: ResourcePlan): CompiledResource {
  const reads = [
    ...tablesRead(
      plan.node,
      plan.shape.kind === 'list' && plan.shape.parent
        ? new Set([plan.shape.parent.table.tagName])
        : new Set(),
    ),
  ].sort();
  const coarseTags = () => reads.map(tableTag);
  const schemaName = plan.openapi.name ?? pascal(plan.name);
  const common = {
    name: plan.name,
    route: plan.route,
    ttlSeconds: plan.ttlSeconds,
    negativeTtlSeconds: plan.negativeTtlSeconds,
    policy: plan.policy,
    schemaName,
    openapiTag: plan.openapi.tag ?? plan.name,
    reads,
    ...(plan.openapi.description ? { description: plan.openapi.description } : {}),
  };
  const compiled =
    plan.shape.kind === 'lookup'
      ? compileLookup(plan, plan.shape, common, coarseTags)
      : compileList(plan, plan.shape, common, coarseTags);
  return plan.warm ? { ...compiled, warm: warmSpec(plan, plan.warm, compiled) } : compiled;
}

function warmSpec(plan: ResourcePlan, warm: WarmPlan, compiled: CompiledResource): WarmSpec {
  if (warm.kind === 'first-page' || plan.shape.kind !== 'lookup') {
    return { what: 'the first page', params: async () => [compiled.params.parse({})] };
  }
  const query = warmValuesQuery(plan.node.table, plan.shape.by, warm.where, warm.order, warm.limit);
  const conditions = warm.where.map((w) => `${w.column.name} = ${JSON.stringify(w.value)}`).join(' and ');
  return {
    what: `${conditions ? `rows where ${conditions}` : 'rows'}, at most ${warm.limit}`,
    async params(db) {
      const { rows } = await query.execute(db);
      // A row the route would refuse (an id of 0 where ids are positive) has no key to fill.
      return (rows as Params[]).flatMap((row) => {
        const parsed = compiled.params.safeParse(row);
        return parsed.success ? [parsed.data] : [];
      });
    },
  };
}

type Common = Pick<
  CompiledResource,
  | 'name'
  | 'route'
  | 'ttlSeconds'
  | 'negativeTtlSeconds'
  | 'policy'
  | 'schemaName'
  | 'openapiTag'
  | 'reads'
  | 'description'
>;

function compileLookup(
  plan: ResourcePlan,
  shape: LookupPlan,
  common: Common,
  coarseTags: () => Tag[],
): CompiledResource {
  const table = plan.node.table;
  const positive = (p: ParamPlan) =>
    shape.byPrimaryKey && table.primaryKey.length === 1 && p.column.name === table.primaryKey[0];
  const paramSchemas = Object.fromEntries(
    shape.params.map((p) => [p.name, paramSchema(p.column, { positiveIds: positive(p) })]),
  );
  const params = z.object(paramSchemas) as unknown as z.ZodType<Params>;
  const names = shape.params.map((p) => p.name);
  // A lookup is by a unique key: its plan does not depend on the values, so it is prepared once.
  const query = precompiled(
    lookupQuery(plan.node, shape),
    placeholderValues(names.length),
    (values) => values,
    { prepared: true },
  );
  const selfTag = (p: Params): Tag =>
    shape.byPrimaryKey
      ? rowTag(table.tagName, table.primaryKey.map((k) => String(p[k])).join(','))
      : colTag(table.tagName, shape.by[0]!.name, tagText(shape.by[0]!, String(p[shape.by[0]!.name])));
  const keyPattern = new RegExp(`^${escapeRegExp(plan.name)}:${names.map(() => '([^:]*)').join(':')}$`);
  const single = names.length === 1 && plan.route.endsWith(`/{${names[0]}}`) ? names[0]! : undefined;
  let batch: BatchLookup | undefined;
  if (single) {
    // The array of values is one bound parameter: its placeholder is an array of its own.
    const many = precompiled(lookupManyQuery(plan.node, shape), placeholderValues(1), (values) => [values]);
    batch = {
      route: plan.route.slice(0, -`/{${single}}`.length),
      param: single,
      query: `${single}s`,
      async loadMany(db, ps) {
        const { rows } = await many(
          db,
          ps.map((p) => String(p[single])),
        );
        const values: (Value | null)[] = ps.map(() => null);
        for (const row of rows as { v: Value; t: unknown; i: string | number }[]) {
          const at = Number(row.i) - 1;
          loadedTags.set(row.v, [...new Set(flattenTags(row.t, [selfTag(ps[at]!)]))]);
          values[at] = row.v;
        }
        return values;
      },
    };
  }
  return {
    ...common,
    ...(batch && batch.route.length > 1 ? { batch } : {}),
    kind: 'lookup',
    params,
    routeParams: shape.params.map((p) => ({
      name: p.name,
      in: 'path',
      required: true,
      description: paramDoc(p),
      schema: paramSchemas[p.name]!,
    })),
    answer: nodeSchema(plan.node),
    operationId: plan.openapi.operationId ?? `get${pascal(plan.name)}`,
    summary: plan.openapi.summary ?? `One ${plan.name} by ${names.join(', ')}`,
    key: (p) => `${plan.name}:${names.map((n) => encodeKeyPart(p[n]!)).join(':')}`,
    paramsFromKey(key) {
      const m = keyPattern.exec(key);
      if (!m) return undefined;
      return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]));
    },
    async load(db, p) {
      const { rows } = await query(
        db,
        names.map((n) => String(p[n])),
      );
      const row = rows[0] as { v: Value; t: unknown } | undefined;
      if (!row) return null;
      loadedTags.set(row.v, [...new Set(flattenTags(row.t, [selfTag(p)]))]);
      return row.v;
    },
    tags: (p, value) =>
      value === null ? [selfTag(p)] : (loadedTags.get(value) ?? [selfTag(p), ...coarseTags()]),
    watched: [],
  };
}

/**
 * Cursors whose canonical form a list remembers. Validating a cursor decodes it, checks each
 * order value and re-encodes it: ~10 % of a list-page hit's CPU in the bench profile, for the
 * same few cursors again and again (every reader walking the same pages). 4 096 of at most
 * 512 characters bound the memo to ~4 MiB per list resource; the oldest entry goes first.
 */
const CURSOR_MEMO_ENTRIES = 4096;

/** The opaque cursor: the last row's order values, exact text, base64url JSON. */
export function encodeCursor(values: readonly string[]): string {
  return Buffer.from(JSON.stringify(values), 'utf8').toString('base64url');
}

function compileList(
  plan: ResourcePlan,
  shape: ListPlan,
  common: Common,
  coarseTags: () => Tag[],
): CompiledResource {
  const table = plan.node.table;
  const paramNames = shape.params.map((p) => p.name);
  const shapeSchemas: Record<string, z.ZodType> = {};
  for (const p of shape.params) {
    const positive = shape.parent?.param === p && p.column.type.startsWith('int');
    shapeSchemas[p.name] = paramSchema(p.column, { positiveIds: positive });
  }
  const { default: defaultSize, max } = shape.pageSize;
  const limitMessage = `must be an integer between 1 and ${max}`;
  const cursorChecks = shape.order.map((o) => paramSchema(o.column));
  // Canonical form by cursor text: decodeCursor and encodeCursor are pure, so a remembered
  // answer is the one they would give again. Valid cursors only (an invalid one is an error path).
  const canonicalCursors = new Map<string, string>();
  const cursorSchema = z
    .string()
    .min(1, 'is not a valid cursor')
    .max(512, 'is not a valid cursor')
    .regex(/^[A-Za-z0-9_-]+$/, 'is not a valid cursor')
    .transform((value, ctx) => {
      const known = canonicalCursors.get(value);
      if (known !== undefined) return known;
      const values = decodeCursor(value, cursorChecks);
      if (!values) {
        ctx.addIssue({ code: 'custom', message: 'is not a valid cursor' });
        return z.NEVER;
      }
      // Re-encoded from the parsed parts: the cache key is built from this canonical form only.
      const canonical = encodeCursor(values);
      if (canonicalCursors.size >= CURSOR_MEMO_ENTRIES) {
        const oldest = canonicalCursors.keys().next();
        if (!oldest.done) canonicalCursors.delete(oldest.value);
      }
      canonicalCursors.set(value, canonical);
      return canonical;
    });
  if (shape.paginate) {
    shapeSchemas.limit = z
      .union([z.string(), z.number()])
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return defaultSize;
        const text = String(v);
        const n = /^[0-9]{1,4}$/.test(text) ? Number(text) : Number.NaN;
        if (!(n >= 1 && n <= max)) {
          ctx.addIssue({ code: 'custom', message: limitMessage });
          return z.NEVER;
        }
        return n;
      });
    shapeSchemas.cursor = cursorSchema.optional();
  }
  const params = z.object(shapeSchemas) as unknown as z.ZodType<Params>;
  const query = listQuery(plan.node, shape);
  const paramFilter = shape.filters.find((f) => 'param' in f);
  const listTags = (p: Params): Tag[] => {
    const tags: Tag[] = [];
    if (shape.parent) {
      const v = tagText(shape.parent.param.column, String(p[shape.parent.param.name]));
      tags.push(
        colTag(shape.parent.table.tagName, shape.parent.param.column.name, v),
        colTag(table.tagName, shape.parent.via[0]!.name, v),
      );
    } else if (paramFilter && 'param' in paramFilter) {
      tags.push(
        colTag(
          table.tagName,
          paramFilter.column.name,
          tagText(paramFilter.column, String(p[paramFilter.param])),
        ),
      );
    } else {
      tags.push(rowsTag(table.tagName));
    }
    return tags;
  };
  const keyParts = shape.paginate ? [...paramNames, 'limit', 'cursor'] : paramNames;
  const keyPattern = new RegExp(
    `^${escapeRegExp(plan.name)}:${keyParts.length ? keyParts.map(() => '([^:]*)').join(':') : 'all'}$`,
  );
  const itemSchema = nodeSchema(plan.node);
  const answer = shape.paginate
    ? z.object({
        items: z.array(itemSchema.openapi(`${common.schemaName}Item`)),
        nextCursor: z
          .string()
          .nullable()
          .openapi({ description: 'Pass as `cursor` for the next page; `null` on the last page.' }),
      })
    : z.object({ items: z.array(itemSchema.openapi(`${common.schemaName}Item`)) });

  const routeParams: RouteParam[] = shape.params.map((p) => ({
    name: p.name,
    in: p.in,
    required: true,
    description: paramDoc(p),
    schema: shapeSchemas[p.name]!,
  }));
  if (shape.paginate) {
    routeParams.push(
      {
        name: 'limit',
        in: 'query',
        required: false,
        description: `Page size, 1–${max}. Default ${defaultSize}.`,
        schema: shapeSchemas.limit!,
      },
      {
        name: 'cursor',
        in: 'query',
        required: false,
        description:
          'Opaque position returned as `nextCursor` by the previous page. Omit it for the first page. ' +
          'A walk from the first page to `nextCursor: null` sees every item that existed when it started exactly once.',
        schema: shapeSchemas.cursor!,
      },
    );
  }

  return {
    ...common,
    kind: 'list',
    params,
    routeParams,
    answer,
    operationId: plan.openapi.operationId ?? `list${pascal(plan.name)}`,
    summary: plan.openapi.summary ?? `A page of ${plan.name}`,
    key(p) {
      if (keyParts.length === 0) return `${plan.name}:all`;
      return `${plan.name}:${keyParts.map((n) => (p[n] === undefined ? '-' : encodeKeyPart(p[n]!))).join(':')}`;
    },
    paramsFromKey(key) {
      const m = keyPattern.exec(key);
      if (!m) return undefined;
      const out: Params = {};
      keyParts.forEach((n, i) => {
        const raw = decodeURIComponent(m[i + 1]!);
        if (n === 'limit') out.limit = Number(raw);
        else if (!(n === 'cursor' && raw === '-')) out[n] = raw;
      });
      return out;
    },
    async load(db, p) {
      const values = Object.fromEntries(paramNames.map((n) => [n, String(p[n])]));
      const limit = shape.paginate ? Number(p.limit ?? defaultSize) : undefined;
      const after = typeof p.cursor === 'string' ? decodeCursor(p.cursor, cursorChecks) : undefined;
      const { rows } = await query({ params: values, limit, after }).execute(db);
      const typed = rows as { p?: boolean; v: Value | null; t: unknown; k: string[] | null }[];
      if (shape.parent && typed[0]?.p === false) return null;
      const found = typed.filter((r) => r.v !== null);
      const page = limit === undefined ? found : found.slice(0, limit);
      const tags = listTags(p);
      for (const r of page) flattenTags(r.t, tags);
      const value: Value = { items: page.map((r) => r.v) };
      if (shape.paginate) {
        const last = page.at(-1);
        value.nextCursor =
          limit !== undefined && found.length > limit && last?.k ? encodeCursor(last.k) : null;
      }
      loadedTags.set(value, [...new Set(tags)]);
      return value;
    },
    tags: (p, value) =>
      value === null ? listTags(p) : (loadedTags.get(value) ?? [...listTags(p), ...coarseTags()]),
    watched: [],
  };
}

function decodeCursor(value: string, checks: readonly z.ZodType<string>[]): string[] | undefined {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(decoded) || decoded.length !== checks.length) return undefined;
  const out: string[] = [];
  for (let i = 0; i < checks.length; i++) {
    const item = decoded[i];
    if (typeof item !== 'string') return undefined;
    const parsed = checks[i]!.safeParse(item);
    if (!parsed.success) return undefined;
    out.push(parsed.data);
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A resource with its own load (the escape hatch). Its key is built from its parameters in
 * their declared order; without `tags` it depends on every change of every table it reads.
 */
function compileCustom(name: string, spec: CustomResourceConfig, config: WalcacheConfig): CompiledResource {
  const params = (spec.params ?? z.object({})) as z.ZodType<Params>;
  const shape = (params as unknown as { shape?: Record<string, z.ZodType> }).shape ?? {};
  const names = Object.keys(shape);
  const reads = [...new Set((spec.reads as string[]).map(canonicalTableName))].sort();
  const coarse = reads.map(tableTag);
  const userTags = spec.tags as ((p: Params, v: Value | null) => Tag[]) | undefined;
  const load = spec.load as unknown as (db: Db, p: Params) => Promise<Value | null>;
  const keyPattern = new RegExp(
    `^${escapeRegExp(name)}:${names.length ? names.map(() => '([^:]*)').join(':') : 'all'}$`,
  );
  return {
    name,
    kind: 'custom',
    route: spec.route,
    routeParams: names.map((n) => ({
      name: n,
      in: spec.route.includes(`{${n}}`) ? 'path' : 'query',
      required: spec.route.includes(`{${n}}`) || !shape[n]!.safeParse(undefined).success,
      description: `${n} (custom resource parameter)`,
      schema: shape[n]!,
    })),
    answer: z.unknown(),
    schemaName: pascal(name),
    operationId: spec.openapi?.operationId ?? `get${pascal(name)}`,
    summary: spec.openapi?.summary ?? `${name} (custom resource)`,
    openapiTag: spec.openapi?.tag ?? name,
    reads,
    params,
    ttlSeconds: spec.ttl ?? config.defaults.ttl,
    negativeTtlSeconds: spec.negativeTtl ?? config.defaults.negativeTtl,
    policy: spec.policy ?? config.defaults.policy,
    watched: [],
    key: (p) =>
      names.length === 0
        ? `${name}:all`
        : `${name}:${names.map((n) => (p[n] === undefined ? '-' : encodeKeyPart(p[n]!))).join(':')}`,
    paramsFromKey(key) {
      const m = keyPattern.exec(key);
      if (!m) return undefined;
      const out: Params = {};
      names.forEach((n, i) => {
        const raw = decodeURIComponent(m[i + 1]!);
        if (raw !== '-') out[n] = raw;
      });
      return out;
    },
    load: (db, p) => load(db, p),
    tags: (p, value) => (userTags ? userTags(p, value) : coarse),
  };
}
