import { tableTagName } from '@walcache/core';
/**
 * What walcache knows of a database: read once at start from pg_catalog for the tables a
 * config names. The compiler derives SQL, tags, parameter checks and OpenAPI types from it,
 * and a config that does not match it stops the process with a message naming the fix.
 */

export interface Queryable {
  query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export interface ColumnInfo {
  name: string;
  /** The base type's name (domains resolved), e.g. int8, text, timestamptz, jsonb, my_enum. */
  type: string;
  /** For arrays: the element type's name; `type` is then e.g. `_int8`. */
  elementType?: string;
  nullable: boolean;
  /** Labels of an enum type (of the element, for an enum array). */
  enumValues?: string[];
  /** pg_type.typtype of the base (element) type: b base, e enum, c composite, r range, m multirange. */
  kind: string;
  /** The declared type as SQL (`bigint`, `lib.loan_status`): what a parameter is cast to. */
  sqlType: string;
  /** Has a default (identity and serial columns included): an INSERT may leave it out. */
  hasDefault: boolean;
  /** GENERATED ALWAYS (identity or computed): no INSERT or UPDATE may set it. */
  generatedAlways: boolean;
  /** A CHECK constraint or a domain's checks apply: only values already stored are known to pass. */
  checked: boolean;
}

export interface ForeignKey {
  columns: string[];
  /** The referenced table, as a tag name (see tagTableName). */
  references: string;
  referencedColumns: string[];
}

export interface TableInfo {
  schema: string;
  name: string;
  /** The table's name in tags and in the CDC: `name` for public, else `schema.name`. */
  tagName: string;
  oid: number;
  columns: Map<string, ColumnInfo>;
  /** Column order as in the table, for "every column". */
  columnOrder: string[];
  primaryKey: string[];
  /** Column sets of unique indexes and constraints (the primary key included). */
  uniques: string[][];
  foreignKeys: ForeignKey[];
  /** d default, f full, i index, n nothing. */
  replicaIdentity: string;
  partitioned: boolean;
}

export interface Catalog {
  tables: Map<string, TableInfo>;
  /** Every table of the schemas read, for "did you mean" suggestions. */
  allTableNames: string[];
}

/** `orders` → public.orders; `lib.books` → lib.books. */
export function splitTableName(name: string): { schema: string; table: string } {
  const dot = name.indexOf('.');
  return dot < 0
    ? { schema: 'public', table: name }
    : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

export const tagTableName = tableTagName;

/** Normalises `public.orders` to `orders`, so one table has one name everywhere. */
export function canonicalTableName(name: string): string {
  const { schema, table } = splitTableName(name);
  return tagTableName(schema, table);
}

/**
 * Reads the catalog for these tables (and lists every table of their schemas), or for every
 * table of the given schemas (`walcache init`, which starts from no config).
 */
export async function readCatalog(
  db: Queryable,
  tableNames: Iterable<string> | { schemas: string[] },
): Promise<Catalog> {
  const every = 'schemas' in tableNames ? tableNames.schemas : undefined;
  const wanted = every ? [] : [...new Set([...(tableNames as Iterable<string>)].map(canonicalTableName))];
  const schemas = every ?? [...new Set(wanted.map((t) => splitTableName(t).schema))];
  const { rows: rels } = await db.query<{
    oid: string;
    nspname: string;
    relname: string;
    relkind: string;
    relreplident: string;
  }>(
    `select c.oid::int8::text as oid, n.nspname, c.relname, c.relkind, c.relreplident
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition`,
    [schemas],
  );
  const allTableNames = rels.map((r) => tagTableName(r.nspname, r.relname));
  const tables = new Map<string, TableInfo>();
  const found = every ? rels : rels.filter((r) => wanted.includes(tagTableName(r.nspname, r.relname)));
  if (found.length === 0) return { tables, allTableNames };
  const oids = found.map((r) => r.oid);

  const { rows: cols } = await db.query<{
    relid: string;
    attname: string;
    notnull: boolean;
    typname: string;
    typtype: string;
    elemname: string | null;
    elemtype: string | null;
    enumvalues: string[] | null;
    sqltype: string;
    hasdefault: boolean;
    generatedalways: boolean;
    checked: boolean;
  }>(
    `select a.attrelid::int8::text as relid, a.attname, a.attnotnull as notnull,
            bt.typname, coalesce(et.typtype, bt.typtype)::text as typtype, et.typname as elemname,
            et.typtype::text as elemtype, format_type(a.atttypid, null) as sqltype,
            a.atthasdef or a.attidentity <> '' as hasdefault,
            a.attidentity = 'a' or a.attgenerated <> '' as generatedalways,
            t.typtype = 'd' or exists (select 1 from pg_constraint k where k.conrelid = a.attrelid
              and k.contype = 'c' and a.attnum = any(k.conkey)) as checked,
            (select array_agg(e.enumlabel::text order by e.enumsortorder) from pg_enum e
              where e.enumtypid = coalesce(et.oid, bt.oid)) as enumvalues
       from pg_attribute a
       join pg_type t on t.oid = a.atttypid
       join pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
       left join pg_type et on et.oid = bt.typelem and bt.typcategory = 'A'
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
      order by a.attrelid, a.attnum`,
    [oids],
  );
  const { rows: idx } = await db.query<{ relid: string; primary: boolean; columns: string[] }>(
    `select i.indrelid::int8::text as relid, i.indisprimary as primary,
            array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
                   join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord) as columns
       from pg_index i
      where i.indrelid = any($1::oid[]) and i.indisunique and i.indpred is null and i.indexprs is null`,
    [oids],
  );
  const { rows: fks } = await db.query<{
    relid: string;
    columns: string[];
    refschema: string;
    reftable: string;
    refcolumns: string[];
  }>(
    `select c.conrelid::int8::text as relid,
            array(select a.attname::text from unnest(c.conkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o) as columns,
            rn.nspname as refschema, r.relname as reftable,
            array(select a.attname::text from unnest(c.confkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o) as refcolumns
       from pg_constraint c
       join pg_class r on r.oid = c.confrelid
       join pg_namespace rn on rn.oid = r.relnamespace
      where c.contype = 'f' and c.conrelid = any($1::oid[]) and c.conparentid = 0`,
    [oids],
  );

  for (const rel of found) {
    const columns = new Map<string, ColumnInfo>();
    const columnOrder: string[] = [];
    for (const c of cols.filter((c) => c.relid === rel.oid)) {
      columns.set(c.attname, {
        name: c.attname,
        type: c.typname,
        ...(c.elemname ? { elementType: c.elemname } : {}),
        nullable: !c.notnull,
        ...(c.enumvalues ? { enumValues: c.enumvalues } : {}),
        kind: c.elemtype ?? c.typtype,
        sqlType: c.sqltype,
        hasDefault: c.hasdefault,
        generatedAlways: c.generatedalways,
        checked: c.checked,
      });
      columnOrder.push(c.attname);
    }
    const ownIdx = idx.filter((i) => i.relid === rel.oid);
    tables.set(tagTableName(rel.nspname, rel.relname), {
      schema: rel.nspname,
      name: rel.relname,
      tagName: tagTableName(rel.nspname, rel.relname),
      oid: Number(rel.oid),
      columns,
      columnOrder,
      primaryKey: ownIdx.find((i) => i.primary)?.columns ?? [],
      uniques: ownIdx.map((i) => i.columns),
      foreignKeys: fks
        .filter((f) => f.relid === rel.oid)
        .map((f) => ({
          columns: f.columns,
          references: tagTableName(f.refschema, f.reftable),
          referencedColumns: f.refcolumns,
        })),
      replicaIdentity: rel.relreplident,
      partitioned: rel.relkind === 'p',
    });
  }
  return { tables, allTableNames };
}
