import { z } from '@hono/zod-openapi';
import { type RawBuilder, sql } from 'kysely';
import type { ColumnInfo } from './catalog.ts';

/**
 * Postgres types → their JSON form (in SQL), their answer schema (OpenAPI) and, for
 * columns that can be looked up or filtered by, their parameter check. One table of
 * knowledge: a new type is supported by adding it here.
 */

/** Served as JSON strings so no client rounds them (JavaScript numbers stop at 2^53). */
const EXACT_NUMBERS = new Set(['int8', 'numeric', 'money']);
/** json_build_object already gives these their natural JSON form. */
const NATURAL = new Set([
  'int2',
  'int4',
  'float4',
  'float8',
  'bool',
  'text',
  'varchar',
  'bpchar',
  'name',
  'citext',
  'uuid',
  'json',
  'jsonb',
]);
/** No JSON form, but a well-known text form that clients parse (no warning). */
const TEXT_FORM = new Set([
  'date',
  'time',
  'timetz',
  'interval',
  'inet',
  'cidr',
  'macaddr',
  'macaddr8',
  'oid',
]);

function baseType(column: ColumnInfo): string {
  return column.elementType ?? column.type;
}

/** True when the type has no JSON form and is served as its Postgres text: named in a startup warning. */
export function servedAsText(column: ColumnInfo): boolean {
  const t = baseType(column);
  if (column.kind === 'e') return false;
  return !(
    EXACT_NUMBERS.has(t) ||
    NATURAL.has(t) ||
    TEXT_FORM.has(t) ||
    t === 'timestamptz' ||
    t === 'timestamp'
  );
}

/** The SQL expression of a column's JSON form. */
export function jsonExpr(ref: RawBuilder<unknown>, column: ColumnInfo): RawBuilder<unknown> {
  const t = baseType(column);
  const array = column.elementType !== undefined;
  if (column.kind === 'e') return ref;
  if (t === 'timestamptz') {
    const one = (r: RawBuilder<unknown>) =>
      sql`to_char(${r} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    return array
      ? sql`(select array_agg(${one(sql`x`)} order by o) from unnest(${ref}) with ordinality u(x, o))`
      : one(ref);
  }
  if (t === 'timestamp') {
    const one = (r: RawBuilder<unknown>) => sql`to_char(${r}, 'YYYY-MM-DD"T"HH24:MI:SS.MS')`;
    return array
      ? sql`(select array_agg(${one(sql`x`)} order by o) from unnest(${ref}) with ordinality u(x, o))`
      : one(ref);
  }
  if (NATURAL.has(t)) return ref;
  return array ? sql`(${ref})::text[]` : sql`(${ref})::text`;
}

/** The answer schema of a column (nullability included). */
export function answerSchema(column: ColumnInfo): z.ZodType {
  const one = elementSchema(column);
  const schema = column.elementType !== undefined ? z.array(one.nullable()) : one;
  return column.nullable ? schema.nullable() : schema;
}

function elementSchema(column: ColumnInfo): z.ZodType {
  const t = baseType(column);
  if (column.kind === 'e' && column.enumValues?.length)
    return z.enum(column.enumValues as [string, ...string[]]);
  switch (t) {
    case 'int2':
    case 'int4':
      return z.number().int();
    case 'float4':
    case 'float8':
      return z.number();
    case 'bool':
      return z.boolean();
    case 'int8':
      return z
        .string()
        .regex(/^-?[0-9]+$/)
        .openapi({ description: 'bigint as a decimal string', example: '42' });
    case 'numeric':
    case 'money':
      return z.string().openapi({ description: 'exact decimal as a string', example: '12.50' });
    case 'timestamptz':
      return z.iso.datetime().openapi({ example: '2025-02-01T00:42:00.000Z' });
    case 'timestamp':
      return z.iso.datetime({ local: true }).openapi({ example: '2025-02-01T00:42:00.000' });
    case 'date':
      return z.iso.date();
    case 'uuid':
      return z.uuid();
    case 'json':
    case 'jsonb':
      return z.unknown().openapi({ description: 'any JSON value' });
    default:
      return z.string();
  }
}

const MAX_BIGINT = 9223372036854775807n;
const RANGES: Record<string, [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-MAX_BIGINT - 1n, MAX_BIGINT],
};

/** Types a lookup, a filter or a cursor can take from a URL. */
export function isParamType(column: ColumnInfo): boolean {
  if (column.elementType !== undefined) return false;
  const t = column.type;
  return (
    column.kind === 'e' ||
    t in RANGES ||
    [
      'text',
      'varchar',
      'bpchar',
      'citext',
      'name',
      'uuid',
      'bool',
      'numeric',
      'date',
      'timestamptz',
      'timestamp',
    ].includes(t)
  );
}

/**
 * A parameter's canonical value as Postgres prints the column's value (`::text`), for the
 * tags it is part of: the CDC reads values in that form from the WAL and a fill's SQL builds
 * its tags with `::text`, so a tag built from a parameter must spell it the same way. Only a
 * bool differs (`true` in a URL, `t` from Postgres). A timestamp parameter keeps its spelling
 * (any form Postgres accepts): a tag from one matches only if it is written as Postgres prints it.
 */
export function tagText(column: ColumnInfo, value: string): string {
  if (column.type === 'bool') return value === 'true' ? 't' : value === 'false' ? 'f' : value;
  return value;
}

/**
 * A URL parameter for a column: validated without any parser that could throw, then
 * canonicalised ("007" → "7", upper-case uuid → lower) — the cache key is built from the
 * canonical text only, so two spellings of one row share one entry.
 */
export function paramSchema(column: ColumnInfo, options: { positiveIds?: boolean } = {}): z.ZodType<string> {
  const t = column.type;
  const range = RANGES[t];
  if (range) {
    const [min0, max] = range;
    const min = options.positiveIds ? 1n : min0;
    const message = `must be an integer between ${min} and ${max}`;
    const shape = options.positiveIds ? /^[0-9]{1,19}$/ : /^-?[0-9]{1,19}$/;
    return z
      .string()
      .min(1, 'must not be empty')
      .regex(shape, message)
      .refine((v) => !shape.test(v) || (BigInt(v) >= min && BigInt(v) <= max), message)
      .transform((v) => BigInt(v).toString());
  }
  if (column.kind === 'e' && column.enumValues?.length) {
    return z.enum(column.enumValues as [string, ...string[]], {
      error: `must be one of ${column.enumValues.join(', ')}`,
    });
  }
  switch (t) {
    case 'uuid':
      return z
        .string()
        .regex(
          /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/,
          'must be a UUID',
        )
        .transform((v) => {
          const h = v.replaceAll('-', '').toLowerCase();
          return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
        });
    case 'bool':
      return z.enum(['true', 'false'], { error: 'must be true or false' });
    case 'numeric':
      return z
        .string()
        .regex(/^-?[0-9]{1,100}(\.[0-9]{1,100})?$/, 'must be a decimal number')
        .transform((v) => v.replace(/^(-?)0+(?=\d)/, '$1'));
    case 'date':
      return z
        .string()
        .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD')
        .refine(isRealDate, 'must be a real date');
    case 'timestamptz':
    case 'timestamp':
      return z
        .string()
        .max(40, 'must be a timestamp')
        .regex(
          /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:?\d{2})?)?$/,
          'must be a timestamp',
        )
        .refine(
          (v) => isRealDate(v.slice(0, 10)) && isRealTime(v.slice(11, 19)) && isRealOffset(v.slice(19)),
          'must be a real timestamp',
        );
    default:
      return z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 characters');
  }
}

/** Postgres rejects impossible dates that Date.parse rolls over (Feb 30): only a round trip proves one. */
function isRealDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (year < 1) return false;
  const date = new Date(Date.UTC(2000, month - 1, day));
  // setUTCFullYear, because Date.UTC maps years 0–99 to 1900–1999.
  date.setUTCFullYear(year);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function isRealTime(text: string): boolean {
  const m = /^(\d{2}):(\d{2}):(\d{2})$/.exec(text);
  return !!m && Number(m[1]) < 24 && Number(m[2]) < 60 && Number(m[3]) < 60;
}

/** Postgres takes UTC offsets up to ±15:59 and answers an error beyond (a 500, were it let through). */
function isRealOffset(rest: string): boolean {
  const m = /([+-])(\d{2}):?(\d{2})?$/.exec(rest);
  return !m || (Number(m[2]) <= 15 && Number(m[3] ?? 0) < 60);
}

/** The text form of a column value in a cursor: exact (microseconds kept), comparable after a cast. */
export function cursorTextExpr(ref: RawBuilder<unknown>, column: ColumnInfo): RawBuilder<unknown> {
  if (column.type === 'timestamptz') {
    return sql`to_char(${ref} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`;
  }
  if (column.type === 'timestamp') return sql`to_char(${ref}, 'YYYY-MM-DD HH24:MI:SS.US')`;
  return sql`(${ref})::text`;
}
