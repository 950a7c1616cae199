import { z } from 'zod';

/**
 * The walcache config file: what to serve, declared as plain data. The API's routes, the
 * SQL, the dependency tags, the OpenAPI document and the CDC's tables are all derived from
 * it (packages/resources compiles it against the database catalog). Every field is
 * documented in docs/config.md; `walcache.config.schema.json` is generated from this file.
 */

const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'an SQL identifier (letters, digits, _; at most 63 characters)');

/** `table` or `schema.table`; unqualified names are in `public`. */
export const tableName = z
  .string()
  .regex(
    /^(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$/,
    'a table name, "table" or "schema.table"',
  )
  .describe('A table, `name` (schema public) or `schema.name`.');

const fieldName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a JSON field name (letters, digits, _)')
  .describe('A field name in the JSON answer.');

const literal = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: 'a string, a number, true, false or null',
});

/** Fixed equality conditions: `{ hidden: false }`. */
const where = z
  .record(identifier, literal)
  .describe('Fixed equality conditions on the embedded or counted rows, e.g. `{ "hidden": false }`.');

const columns = z
  .union(
    [
      z.array(identifier).min(1),
      z
        .record(fieldName, identifier)
        .refine((r) => Object.keys(r).length > 0, 'must name at least one column'),
    ],
    { error: 'a list of column names, or { "field": "column" } to rename' },
  )
  .describe(
    'The columns to serve: a list of column names, or `{ "field": "column" }` to rename. Default: every column whose type has a JSON form.',
  );

const direction = z.enum(['asc', 'desc']);
/** `"created_at"` (ascending), `"-created_at"` (descending) or `["created_at", "desc"]`. */
const orderItem = z.union(
  [
    z.string().regex(/^-?[A-Za-z_][A-Za-z0-9_$]*$/, 'a column, or "-column" for descending'),
    z.tuple([identifier, direction]),
  ],
  { error: '"column" (ascending), "-column" (descending) or ["column", "asc" | "desc"]' },
);
const order = z
  .array(orderItem)
  .min(1)
  .describe('Sort order: `"column"` ascending, `"-column"` descending. Lists append the primary key.');

export interface EmbedConfig {
  /** To-one: the row of this table that the parent's foreign key points to. */
  one?: string;
  /** To-many: rows of this table whose foreign key points to the parent (or through `through`). */
  many?: string;
  /** Count of rows of this table that point to the parent (or through `through`). */
  count?: string;
  /** The foreign key column (on the parent for `one`, on the child for `many`/`count`); optional when unambiguous. */
  via?: string;
  /** A join table for many-to-many. */
  through?: string;
  columns?: string[] | Record<string, string>;
  /** Serve one column of each row as a plain list instead of objects. */
  pluck?: string;
  where?: Record<string, string | number | boolean | null>;
  order?: (string | [string, 'asc' | 'desc'])[];
  limit?: number;
  embed?: Record<string, EmbedConfig>;
}

export const embedSchema: z.ZodType<EmbedConfig> = z.lazy(() =>
  z
    .strictObject({
      one: tableName.optional().describe("To-one: the table the parent's foreign key points to."),
      many: tableName
        .optional()
        .describe(
          'To-many: the child table whose foreign key points to the parent (or to-many through `through`).',
        ),
      count: tableName.optional().describe('The number of rows of this table that point to the parent.'),
      via: identifier
        .optional()
        .describe(
          'The foreign key column: on the parent for `one`, on the child for `many` and `count`. Optional when exactly one foreign key links the two tables.',
        ),
      through: tableName
        .optional()
        .describe('A join table with a foreign key to the parent and one to the `many`/`count` table.'),
      columns: columns.optional(),
      pluck: identifier.optional().describe('Serve this one column of each row as a plain list of values.'),
      where: where.optional(),
      order: order.optional(),
      limit: z.number().int().min(1).max(1000).optional().describe('At most this many rows (to-many only).'),
      embed: z.record(fieldName, embedSchema).optional().describe('Nested embeds of each embedded row.'),
    })
    .superRefine((e, ctx) => {
      const kinds = [e.one, e.many, e.count].filter((k) => k !== undefined).length;
      if (kinds !== 1) {
        ctx.addIssue({ code: 'custom', message: 'an embed names exactly one of "one", "many" or "count"' });
      }
      if (e.one !== undefined && (e.through || e.order || e.limit || e.where)) {
        ctx.addIssue({
          code: 'custom',
          message: '"one" embeds take no "through", "where", "order" or "limit"',
        });
      }
      if (e.count !== undefined && (e.columns || e.pluck || e.embed || e.order || e.limit)) {
        ctx.addIssue({ code: 'custom', message: '"count" embeds take only "via", "through" and "where"' });
      }
      if (e.pluck && (e.columns || e.embed)) {
        ctx.addIssue({ code: 'custom', message: '"pluck" serves one column: drop "columns" and "embed"' });
      }
    }),
);

const filterValue = z.union(
  [
    literal,
    z.strictObject({
      param: fieldName.describe('Name of the path or query parameter that gives the value.'),
    }),
  ],
  { error: 'a fixed value (string, number, boolean, null) or { "param": "name" }' },
);

const listSchema = z
  .strictObject({
    filter: z
      .record(identifier, filterValue)
      .optional()
      .describe(
        'Equality filters on the root table: a fixed value, or `{ "param": "name" }` taken from the path (when the route has `{name}`) or the query.',
      ),
    parent: z
      .strictObject({
        table: tableName.describe('The parent table: a list for a missing parent answers 404.'),
        param: fieldName.describe('The path parameter holding the parent primary key.'),
        via: identifier
          .optional()
          .describe('The foreign key column of the root table (optional when unambiguous).'),
      })
      .optional()
      .describe('Scope the list to one parent row (e.g. the lines of one order).'),
    order: order.optional(),
    pageSize: z
      .strictObject({
        default: z.number().int().min(1).max(1000).default(20),
        max: z.number().int().min(1).max(1000).default(100),
      })
      .refine((p) => p.default <= p.max, 'default must not exceed max')
      .optional()
      .describe('Page sizes for `limit`: default 20, at most 100.'),
    paginate: z
      .boolean()
      .default(true)
      .describe('false: answer `{items}` with every row, no `limit`/`cursor` (small tables only).'),
  })
  .describe('Serve a list of rows with a keyset cursor.');

export const ttlSchema = z
  .number()
  .int()
  .min(1)
  .max(30 * 24 * 3600);

export const resourceSchema = z
  .strictObject({
    table: tableName.describe('The root table.'),
    by: z
      .union([identifier, z.array(identifier).min(1)], {
        error: 'a column name, or a list of column names for a composite key',
      })
      .optional()
      .describe('Lookup: the primary key, a composite key, or a column with a unique index.'),
    list: listSchema.optional(),
    columns: columns.optional(),
    embed: z.record(fieldName, embedSchema).optional().describe('Related rows embedded in each answer.'),
    route: z
      .string()
      .regex(/^\/[A-Za-z0-9_\-/{}.]*$/, 'a path such as /v1/orders/{id}')
      .optional()
      .describe('The route; default `/v1/<resource>/{by}` for lookups, `/v1/<resource>` for lists.'),
    ttl: ttlSchema.optional().describe('Seconds a value stays cached (default: defaults.ttl).'),
    negativeTtl: ttlSchema.optional().describe('Seconds a 404 stays cached (default: defaults.negativeTtl).'),
    policy: z
      .enum(['delete', 'refresh'])
      .optional()
      .describe('On a change: delete the value (the next read reloads it) or refresh it in place.'),
    warm: z
      .union(
        [
          z.literal(true),
          z.strictObject({
            where: where.optional(),
            order: order.optional(),
            limit: z
              .number()
              .int()
              .min(1)
              .max(100_000)
              .default(1000)
              .describe('At most this many values (default 1000).'),
          }),
        ],
        { error: 'true, or (lookups) { "where": {...}, "order": [...], "limit": n }' },
      )
      .optional()
      .describe(
        'Pre-fill after a start or a namespace flush. A list: `true` fills its first page (lists without parameters only). A lookup: `true` fills the first 1000 rows by primary key; `{ where, order, limit }` the rows matching fixed equality conditions, in that order, at most `limit`.',
      ),
    exclude: z
      .array(identifier)
      .optional()
      .describe('Columns never to serve (with the default column list).'),
    openapi: z
      .strictObject({
        name: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9]*$/)
          .optional()
          .describe('The component schema name.'),
        operationId: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9]*$/)
          .optional(),
        summary: z.string().optional(),
        description: z.string().optional(),
        tag: z.string().optional(),
      })
      .optional()
      .describe('Names in the OpenAPI document.'),
  })
  .superRefine((r, ctx) => {
    if ((r.by === undefined) === (r.list === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a resource has exactly one of "by" (a lookup) or "list"' });
    }
  });

const fn = <T extends (...args: never[]) => unknown>(what: string) =>
  z.custom<T>(
    (v) => typeof v === 'function',
    `${what} must be a function (custom resources need a .ts/.mjs config)`,
  );

/**
 * The escape hatch (a TS or JS config only): a resource with its own `load`. It declares the
 * tables it reads; without `tags` it depends on every change of every one of them (correct by
 * default, coarse), never on nothing.
 */
export const customResourceSchema = z.strictObject({
  route: z
    .string()
    .regex(/^\/[A-Za-z0-9_\-/{}.]*$/, 'a path such as /v1/top-authors')
    .describe('The route; `{name}` segments are path parameters.'),
  reads: z.array(tableName).min(1).describe('Every table the load reads.'),
  params: z
    .custom<z.ZodType<Record<string, unknown>>>(
      (v) =>
        typeof v === 'object' && v !== null && typeof (v as { safeParse?: unknown }).safeParse === 'function',
      'params must be a zod object schema of the parameters',
    )
    .optional()
    .describe('A zod object: the parameters (strings from the path or query), validated and canonical.'),
  load: fn<(db: never, params: never) => Promise<unknown>>('load').describe(
    'load(db, params): the value, or null for a 404. db is a Kysely instance.',
  ),
  tags: fn<(params: never, value: never) => string[]>('tags')
    .optional()
    .describe('tags(params, value): the dependency tags; default every table of `reads`.'),
  ttl: ttlSchema.optional(),
  negativeTtl: ttlSchema.optional(),
  policy: z.enum(['delete', 'refresh']).optional(),
  openapi: z
    .strictObject({
      operationId: z
        .string()
        .regex(/^[A-Za-z][A-Za-z0-9]*$/)
        .optional(),
      summary: z.string().optional(),
      tag: z.string().optional(),
    })
    .optional(),
});

const resourceName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, _ and - (it is the cache key prefix)');

export const walcacheConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    custom: z
      .record(resourceName, customResourceSchema)
      .optional()
      .describe('Resources with their own load (TS/JS configs only).'),
    resources: z
      .record(resourceName, resourceSchema)
      .default({})
      .describe('What to serve, by resource name (the name prefixes its cache keys).'),
    defaults: z
      .strictObject({
        ttl: ttlSchema.default(3600),
        negativeTtl: ttlSchema.default(30),
        policy: z.enum(['delete', 'refresh']).default('delete'),
      })
      .prefault({})
      .describe('Defaults for every resource.'),
    openapi: z.strictObject({ title: z.string().optional(), description: z.string().optional() }).optional(),
  })
  .superRefine((c, ctx) => {
    const custom = Object.keys(c.custom ?? {});
    if (Object.keys(c.resources).length + custom.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['resources'], message: 'declare at least one resource' });
    }
    for (const name of custom) {
      if (name in c.resources) {
        ctx.addIssue({
          code: 'custom',
          path: ['custom', name],
          message: `"${name}" is also a declared resource: names are unique`,
        });
      }
    }
  })
  .describe('A walcache config: https://github.com/walcache/walcache/blob/main/docs/config.md');

export type WalcacheConfigInput = z.input<typeof walcacheConfigSchema>;
export type WalcacheConfig = z.output<typeof walcacheConfigSchema>;
export type ResourceConfig = z.output<typeof resourceSchema>;
export type ListConfig = z.output<typeof listSchema>;
export type CustomResourceConfig = z.output<typeof customResourceSchema>;
export type WarmConfig = NonNullable<ResourceConfig['warm']>;

/** Identity at run time; types for a `walcache.config.ts`. */
export function defineConfig(config: WalcacheConfigInput): WalcacheConfigInput {
  return config;
}

/** The JSON Schema of the format, for editors and for teams that do not write TypeScript. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(walcacheConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
}
