import { preparedStatement } from '@walcache/db';
import { CompiledQuery, type QueryExecutorProvider, type QueryResult, type RawBuilder, sql } from 'kysely';
import type { ColumnInfo, TableInfo } from './catalog.ts';
import type { EmbedPlan, ListPlan, LookupPlan, NodePlan, OrderPlan, WherePlan } from './plan.ts';
import { cursorTextExpr, jsonExpr } from './types.ts';

/**
 * One SQL query per load, built with kysely's `sql` fragments (identifiers quoted by
 * kysely, values always bound). Each row yields `v`, the answer as JSON built by Postgres
 * (so bigints, numerics and timestamps keep their exact text), and `t`, the dependency tags
 * of everything the answer embeds, as nested JSON arrays: the tags come from the same
 * snapshot as the value, so a tag can never name a row the value does not show.
 */

type Sql = RawBuilder<unknown>;

class Aliases {
  private n = 0;
  next(prefix: string): string {
    this.n += 1;
    return `${prefix}${this.n}`;
  }
}

const ref = (alias: string, column: string): Sql => sql.ref(`${alias}.${column}`);
export const tableRef = (t: TableInfo): Sql => sql.table(`${t.schema}.${t.name}`);

/** The text Postgres and the CDC both give a key value: `42`, or `1,2` for a composite key. */
const keyText = (alias: string, columns: readonly string[]): Sql =>
  sql.join(
    columns.map((c) => sql`(${ref(alias, c)})::text`),
    sql` || ',' || `,
  );

const tagText = (prefix: string, value: Sql): Sql => sql`${sql.lit(prefix)} || ${value}`;

const rowTagOf = (t: TableInfo, alias: string): Sql =>
  tagText(`row:${t.tagName}:`, keyText(alias, t.primaryKey));
const colTagOf = (t: TableInfo, column: string, value: Sql): Sql =>
  tagText(`col:${t.tagName}:${column}:`, value);

const literalValue = (w: WherePlan): Sql =>
  w.value === null ? sql`null` : sql`cast(${String(w.value)} as ${sql.raw(w.column.sqlType)})`;

function whereSql(alias: string, where: WherePlan[]): Sql[] {
  return where.map((w) =>
    w.value === null
      ? sql`${ref(alias, w.column.name)} is null`
      : sql`${ref(alias, w.column.name)} = ${literalValue(w)}`,
  );
}

const orderSql = (alias: string, order: OrderPlan[]): Sql =>
  sql.join(order.map((o) => sql`${ref(alias, o.column.name)} ${sql.raw(o.desc ? 'desc' : 'asc')}`));

const joinOn = (
  left: string,
  leftCols: readonly string[],
  right: string,
  rightCols: readonly string[],
): Sql =>
  sql.join(
    leftCols.map((c, i) => sql`${ref(left, c)} = ${ref(right, rightCols[i]!)}`),
    sql` and `,
  );

const and = (parts: Sql[]): Sql => (parts.length === 0 ? sql`true` : sql.join(parts, sql` and `));

interface NodeSql {
  value: Sql;
  tags: Sql;
  joins: Sql[];
}

/** The JSON value, the tags and the lateral joins of one node whose row is `alias`. */
function nodeSql(node: NodePlan, alias: string, aliases: Aliases): NodeSql {
  const joins: Sql[] = [];
  // Every row shown carries its own tag: an edit of it reaches exactly the values showing it,
  // so the set tags (`rows:`, `col:`) only matter when a row may enter or leave a set.
  const tags: Sql[] = node.table.primaryKey.length > 0 ? [rowTagOf(node.table, alias)] : [];
  if (node.pluck)
    return { value: jsonExpr(ref(alias, node.pluck.name), node.pluck), tags: jsonArray(tags), joins };
  const fields: Sql[] = node.columns.map(
    (c) => sql`${sql.lit(c.field)}::text, ${jsonExpr(ref(alias, c.column.name), c.column)}`,
  );
  for (const embed of node.embeds) {
    const e = aliases.next('e');
    const { join, tags: embedTags } = embedSql(embed, alias, e, aliases);
    joins.push(join);
    fields.push(sql`${sql.lit(embed.field)}::text, ${sql.ref(`${e}.v`)}`);
    tags.push(...embedTags);
  }
  return { value: jsonObject(fields), tags: jsonArray(tags), joins };
}

/** json_build_object takes at most 100 arguments: larger objects are merged from chunks. */
function jsonObject(fields: Sql[]): Sql {
  if (fields.length === 0) return sql`'{}'::json`;
  const chunks: Sql[] = [];
  for (let i = 0; i < fields.length; i += 50)
    chunks.push(sql`jsonb_build_object(${sql.join(fields.slice(i, i + 50))})`);
  return chunks.length === 1
    ? sql`json_build_object(${sql.join(fields)})`
    : sql`(${sql.join(chunks, sql` || `)})::json`;
}

function jsonArray(items: Sql[]): Sql {
  return items.length === 0 ? sql`'[]'::json` : sql`json_build_array(${sql.join(items)})`;
}

function embedSql(embed: EmbedPlan, parent: string, e: string, aliases: Aliases): { join: Sql; tags: Sql[] } {
  switch (embed.kind) {
    case 'one': {
      const a = aliases.next('r');
      const inner = nodeSql(embed.node, a, aliases);
      const on = joinOn(
        a,
        embed.targetKey,
        parent,
        embed.via.map((c) => c.name),
      );
      return {
        join: sql`left join lateral (select ${inner.value} as v, ${inner.tags} as t from ${tableRef(embed.node.table)} as ${sql.id(a)} ${sql.join(inner.joins, sql` `)} where ${on}) as ${sql.id(e)} on true`,
        tags: [sql.ref(`${e}.t`)],
      };
    }
    case 'many': {
      const a = aliases.next('r');
      const inner = nodeSql(embed.node, a, aliases);
      const on = joinOn(
        a,
        embed.via.map((c) => c.name),
        parent,
        embed.parentKey,
      );
      const order = embed.order.length ? embed.order : pkOrder(embed.node.table);
      const rows = sql`select ${inner.value} as v, ${inner.tags} as t, row_number() over (order by ${orderSql(a, order)}) as n
        from ${tableRef(embed.node.table)} as ${sql.id(a)} ${sql.join(inner.joins, sql` `)}
        where ${and([on, ...whereSql(a, embed.where)])} order by ${orderSql(a, order)} ${limitSql(embed.limit)}`;
      return {
        join: aggregate(rows, e, aliases),
        tags: [
          colTagOf(embed.node.table, embed.via[0]!.name, sql`(${ref(parent, embed.parentKey[0]!)})::text`),
          sql.ref(`${e}.t`),
        ],
      };
    }
    case 'through': {
      const j = aliases.next('j');
      const a = aliases.next('r');
      const inner = nodeSql(embed.node, a, aliases);
      const order = embed.order.length ? embed.order : pkOrder(embed.node.table);
      const rows = sql`select ${inner.value} as v, ${inner.tags} as t, row_number() over (order by ${orderSql(a, order)}) as n
        from ${tableRef(embed.join)} as ${sql.id(j)}
        join ${tableRef(embed.node.table)} as ${sql.id(a)} on ${joinOn(
          a,
          embed.targetKey,
          j,
          embed.joinTarget.map((c) => c.name),
        )}
        ${sql.join(inner.joins, sql` `)}
        where ${and([
          joinOn(
            j,
            embed.joinParent.map((c) => c.name),
            parent,
            embed.parentKey,
          ),
          ...whereSql(a, embed.where),
        ])}
        order by ${orderSql(a, order)} ${limitSql(embed.limit)}`;
      const tags = [
        colTagOf(embed.join, embed.joinParent[0]!.name, sql`(${ref(parent, embed.parentKey[0]!)})::text`),
        sql.ref(`${e}.t`),
      ];
      // A linked row filtered out by `where` can turn into one that matches: its row tag was
      // never registered, so only the table's set tag is sure to see that change.
      if (embed.where.length) tags.push(sql.lit(`rows:${embed.node.table.tagName}`));
      return { join: aggregate(rows, e, aliases), tags };
    }
    case 'count': {
      const a = aliases.next('r');
      const on = joinOn(
        a,
        embed.via.map((c) => c.name),
        parent,
        embed.parentKey,
      );
      return {
        join: sql`cross join lateral (select count(*)::int as v from ${tableRef(embed.table)} as ${sql.id(a)} where ${and([on, ...whereSql(a, embed.where)])}) as ${sql.id(e)}`,
        tags: [colTagOf(embed.table, embed.via[0]!.name, sql`(${ref(parent, embed.parentKey[0]!)})::text`)],
      };
    }
    case 'countThrough': {
      const j = aliases.next('j');
      const a = aliases.next('r');
      const joinParent = joinOn(
        j,
        embed.joinParent.map((c) => c.name),
        parent,
        embed.parentKey,
      );
      const body = embed.where.length
        ? sql`from ${tableRef(embed.join)} as ${sql.id(j)} join ${tableRef(embed.target)} as ${sql.id(a)} on ${joinOn(
            a,
            embed.targetKey,
            j,
            embed.joinTarget.map((c) => c.name),
          )} where ${and([joinParent, ...whereSql(a, embed.where)])}`
        : sql`from ${tableRef(embed.join)} as ${sql.id(j)} where ${joinParent}`;
      const tags = [
        colTagOf(embed.join, embed.joinParent[0]!.name, sql`(${ref(parent, embed.parentKey[0]!)})::text`),
      ];
      if (embed.where.length) tags.push(sql.lit(`rows:${embed.target.tagName}`));
      return { join: sql`cross join lateral (select count(*)::int as v ${body}) as ${sql.id(e)}`, tags };
    }
  }
}

function aggregate(rows: Sql, e: string, aliases: Aliases): Sql {
  const s = aliases.next('s');
  return sql`left join lateral (select coalesce(json_agg(${sql.ref(`${s}.v`)} order by ${sql.ref(`${s}.n`)}), '[]'::json) as v,
    coalesce(json_agg(${sql.ref(`${s}.t`)}), '[]'::json) as t from (${rows}) as ${sql.id(s)}) as ${sql.id(e)} on true`;
}

const limitSql = (limit: number | undefined): Sql => (limit ? sql`limit ${sql.lit(limit)}` : sql``);

const pkOrder = (t: TableInfo): OrderPlan[] =>
  t.primaryKey.map((c) => ({ column: t.columns.get(c)!, desc: false }));

const cast = (value: string, column: ColumnInfo): Sql => sql`cast(${value} as ${sql.raw(column.sqlType)})`;

/** The lookup: at most one row, `v` and `t`. */
export function lookupQuery(node: NodePlan, shape: LookupPlan): (values: string[]) => Sql {
  const aliases = new Aliases();
  const root = 't0';
  const n = nodeSql(node, root, aliases);
  const from = sql`from ${tableRef(node.table)} as ${sql.id(root)} ${sql.join(n.joins, sql` `)}`;
  return (values) =>
    sql`select ${n.value} as v, ${n.tags} as t ${from} where ${and(
      shape.by.map((c, i) => sql`${ref(root, c.name)} = ${cast(values[i]!, c)}`),
    )}`;
}

/**
 * A single-column lookup for many values at once (batch lookups): one row per value found,
 * `v` and `t` as in `lookupQuery`, and `i`, the 1-based position of its value in the array,
 * so each row goes back to the value asked for whatever text Postgres gives the column.
 */
export function lookupManyQuery(node: NodePlan, shape: LookupPlan): (values: string[]) => Sql {
  const aliases = new Aliases();
  const root = 't0';
  const n = nodeSql(node, root, aliases);
  const by = shape.by[0]!;
  return (values) =>
    sql`select ${n.value} as v, ${n.tags} as t, w.i as i
      from unnest(cast(${values} as ${sql.raw(by.sqlType)}[])) with ordinality as w(val, i)
      join ${tableRef(node.table)} as ${sql.id(root)} on ${ref(root, by.name)} = w.val
      ${sql.join(n.joins, sql` `)}`;
}

/**
 * The lookup values to pre-fill (`warm`): the `by` columns of the rows matching fixed
 * conditions, as text, in order, at most `limit`.
 */
export function warmValuesQuery(
  table: TableInfo,
  by: readonly ColumnInfo[],
  where: WherePlan[],
  order: OrderPlan[],
  limit: number,
): Sql {
  const root = 't0';
  const columns = sql.join(by.map((c) => sql`(${ref(root, c.name)})::text as ${sql.id(c.name)}`));
  return sql`select ${columns} from ${tableRef(table)} as ${sql.id(root)}
    where ${and(whereSql(root, where))} order by ${orderSql(root, order)} limit ${sql.lit(limit)}`;
}

export interface ListQueryInput {
  /** By parameter name. */
  params: Record<string, string>;
  limit: number | undefined;
  /** Decoded cursor values, in order columns' order. */
  after: string[] | undefined;
}

/**
 * A list page: rows `v`, `t`, `k` (the order columns as exact text, for the next cursor),
 * one more than the page to know whether a next page exists. With a parent, the first row
 * says whether the parent exists (`p`), so a missing parent is a 404 in the same query.
 */
export function listQuery(node: NodePlan, shape: ListPlan): (input: ListQueryInput) => Sql {
  const aliases = new Aliases();
  const root = 't0';
  const n = nodeSql(node, root, aliases);
  const keyTexts = sql`json_build_array(${sql.join(shape.order.map((o) => cursorTextExpr(ref(root, o.column.name), o.column)))})`;
  const from = sql`from ${tableRef(node.table)} as ${sql.id(root)} ${sql.join(n.joins, sql` `)}`;
  return ({ params, limit, after }) => {
    const conditions: Sql[] = [];
    for (const f of shape.filters) {
      if ('param' in f)
        conditions.push(sql`${ref(root, f.column.name)} = ${cast(params[f.param]!, f.column)}`);
      else conditions.push(...whereSql(root, [{ column: f.column, value: f.value }]));
    }
    if (shape.parent) {
      conditions.push(
        sql`${ref(root, shape.parent.via[0]!.name)} = ${cast(params[shape.parent.param.name]!, shape.parent.param.column)}`,
      );
    }
    if (after) conditions.push(keysetAfter(root, shape.order, after));
    const page = sql`select ${n.value} as v, ${n.tags} as t, ${keyTexts} as k ${from} where ${and(conditions)}
      order by ${orderSql(root, shape.order)} ${limit === undefined ? sql`` : sql`limit ${sql.lit(limit + 1)}`}`;
    if (!shape.parent) return page;
    const p = shape.parent;
    const pkey = p.table.primaryKey[0]!;
    const s = aliases.next('s');
    return sql`select exists(select 1 from ${tableRef(p.table)} as pp where ${ref('pp', pkey)} = ${cast(params[p.param.name]!, p.param.column)}) as p, ${sql.ref(`${s}.v`)} as v, ${sql.ref(`${s}.t`)} as t, ${sql.ref(`${s}.k`)} as k
      from (select 1) as one left join lateral (select *, row_number() over () as n from (${page}) as pg) as ${sql.id(s)} on true order by ${sql.ref(`${s}.n`)}`;
  };
}

/** Rows strictly after the cursor in the list's order (mixed directions expand to an OR chain). */
function keysetAfter(alias: string, order: OrderPlan[], after: string[]): Sql {
  if (order.every((o) => o.desc === order[0]!.desc)) {
    const left = sql.join(order.map((o) => ref(alias, o.column.name)));
    const right = sql.join(order.map((o, i) => cast(after[i]!, o.column)));
    return order[0]!.desc ? sql`(${left}) < (${right})` : sql`(${left}) > (${right})`;
  }
  const branches = order.map((o, i) => {
    const equal = order
      .slice(0, i)
      .map((p, j) => sql`${ref(alias, p.column.name)} = ${cast(after[j]!, p.column)}`);
    const beyond = sql`${ref(alias, o.column.name)} ${sql.raw(o.desc ? '<' : '>')} ${cast(after[i]!, o.column)}`;
    return sql`(${and([...equal, beyond])})`;
  });
  return sql`(${sql.join(branches, sql` or `)})`;
}

/**
 * A query whose text depends only on its shape, compiled once per database handle and then
 * bound to each call's input. Why: kysely compiles a `sql` fragment tree on every execute,
 * walking the whole embed tree; for a lookup with a few embeds that was ~70 µs of the API's
 * ~850 µs of CPU per miss in the bench (docs/benchmarks.md, "What a miss costs"). The input is marked by unique
 * placeholders; a shape that does not bind each placeholder exactly once (inlined, repeated)
 * is compiled on every call as before.
 */
export function precompiled<I>(
  build: (input: I) => Sql,
  placeholders: I,
  /** The input's bound values, in the order their placeholders were given. */
  valuesOf: (input: I) => readonly unknown[],
  /**
   * Run as a named prepared statement (@walcache/db's preparedStatement): only for a shape
   * whose plan does not depend on the values, such as a lookup by key.
   */
  options: { prepared?: boolean } = {},
): (db: QueryExecutorProvider, input: I) => Promise<QueryResult<unknown>> {
  const marks = valuesOf(placeholders);
  const compiledFor = new WeakMap<
    QueryExecutorProvider,
    { sql: string; slots: readonly (number | undefined)[]; parameters: readonly unknown[] } | null
  >();
  return (db, input) => {
    let compiled = compiledFor.get(db);
    if (compiled === undefined) {
      const { sql: text, parameters } = build(placeholders).compile(db);
      const slots = parameters.map((p) => {
        const at = marks.indexOf(p);
        return at < 0 ? undefined : at;
      });
      const once = marks.every((_, i) => slots.filter((s) => s === i).length === 1);
      compiled = once ? { sql: options.prepared ? preparedStatement(text) : text, slots, parameters } : null;
      compiledFor.set(db, compiled);
    }
    if (compiled === null) return build(input).execute(db);
    const values = valuesOf(input);
    const { slots, parameters } = compiled;
    return db.getExecutor().executeQuery(
      CompiledQuery.raw(
        compiled.sql,
        parameters.map((p, i) => (slots[i] === undefined ? p : values[slots[i]!])),
      ),
    );
  };
}

/** Placeholder values no caller sends (NUL cannot occur in a Postgres text value). */
export const placeholderValues = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `\u0000walcache-placeholder-${i}\u0000`);
