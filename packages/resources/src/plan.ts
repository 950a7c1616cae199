import type { EmbedConfig, ResourceConfig, WalcacheConfig } from '@walcache/config';
import { byWatchedColumn, type TableMembership, type WatchedColumn } from '@walcache/core';
import { type Catalog, type ColumnInfo, canonicalTableName, type TableInfo } from './catalog.ts';
import { isParamType, servedAsText } from './types.ts';

/**
 * A config checked against the catalog: every name resolved to a column, every embed to
 * the foreign key that links it. Problems are collected, not thrown one at a time, so one
 * start names everything to fix, each with the resource, the field and the fix.
 */

export interface OrderPlan {
  column: ColumnInfo;
  desc: boolean;
}

export type Literal = string | number | boolean | null;

export interface WherePlan {
  column: ColumnInfo;
  value: Literal;
}

export interface NodePlan {
  table: TableInfo;
  columns: { field: string; column: ColumnInfo }[];
  embeds: EmbedPlan[];
  /** Serve this one column of each row instead of an object. */
  pluck?: ColumnInfo;
}

export type EmbedPlan =
  | { kind: 'one'; field: string; via: ColumnInfo[]; targetKey: string[]; node: NodePlan }
  | {
      kind: 'many';
      field: string;
      via: ColumnInfo[];
      parentKey: string[];
      node: NodePlan;
      where: WherePlan[];
      order: OrderPlan[];
      limit?: number;
    }
  | {
      kind: 'through';
      field: string;
      join: TableInfo;
      joinParent: ColumnInfo[];
      parentKey: string[];
      joinTarget: ColumnInfo[];
      targetKey: string[];
      node: NodePlan;
      where: WherePlan[];
      order: OrderPlan[];
      limit?: number;
    }
  | {
      kind: 'count';
      field: string;
      table: TableInfo;
      via: ColumnInfo[];
      parentKey: string[];
      where: WherePlan[];
    }
  | {
      kind: 'countThrough';
      field: string;
      join: TableInfo;
      joinParent: ColumnInfo[];
      parentKey: string[];
      joinTarget: ColumnInfo[];
      target: TableInfo;
      targetKey: string[];
      where: WherePlan[];
    };

export interface ParamPlan {
  name: string;
  column: ColumnInfo;
  in: 'path' | 'query';
}

export interface LookupPlan {
  kind: 'lookup';
  by: ColumnInfo[];
  /** True when `by` is the primary key: the value's own tag is `row:`, else `col:` of the first column. */
  byPrimaryKey: boolean;
  params: ParamPlan[];
}

export interface ListPlan {
  kind: 'list';
  params: ParamPlan[];
  /** Equality filters on the root: fixed, or a parameter's value. */
  filters: ({ column: ColumnInfo; value: Literal } | { column: ColumnInfo; param: string })[];
  parent?: { table: TableInfo; via: ColumnInfo[]; param: ParamPlan };
  order: OrderPlan[];
  paginate: boolean;
  pageSize: { default: number; max: number };
}

/** What to pre-fill: a list's first page, or the lookup values of the rows a query finds. */
export type WarmPlan =
  | { kind: 'first-page' }
  | { kind: 'rows'; where: WherePlan[]; order: OrderPlan[]; limit: number };

export interface ResourcePlan {
  name: string;
  route: string;
  node: NodePlan;
  shape: LookupPlan | ListPlan;
  warm?: WarmPlan;
  ttlSeconds: number;
  negativeTtlSeconds: number;
  policy: 'delete' | 'refresh';
  openapi: NonNullable<ResourceConfig['openapi']>;
}

export interface Plan {
  resources: ResourcePlan[];
  /** Every table a resource reads: the publication's tables. */
  tables: string[];
  watched: WatchedColumn[];
  /** Tables whose watched columns are not all in the primary key: their old values need REPLICA IDENTITY FULL. */
  needsFullIdentity: string[];
  /**
   * Per table, every column any resource reads (selected, filtered, ordered, joined on, its
   * keys): an UPDATE that changes none of them changes no cached value (the CDC skips it).
   */
  readColumns: Record<string, string[]>;
  /** Per table with a primary key, which columns each of its set tags depends on (`Membership`). */
  membership: Record<string, Membership>;
  warnings: string[];
}

/** Per table, its set tags' columns (the CDC's TableMembership). */
export type Membership = TableMembership;

export class ConfigMismatchError extends Error {
  readonly code = 'WALCACHE_CONFIG_MISMATCH';
  constructor(readonly problems: string[]) {
    super(
      `the config does not match the database:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        'Fix the config (docs/config.md) or the schema, then start again.',
    );
  }
}

/** Every table a config names, so the catalog can be read for exactly those. */
export function tablesOfConfig(config: WalcacheConfig): string[] {
  const out = new Set<string>();
  const walk = (embed: EmbedConfig) => {
    for (const t of [embed.one, embed.many, embed.count, embed.through])
      if (t) out.add(canonicalTableName(t));
    for (const e of Object.values(embed.embed ?? {})) walk(e);
  };
  for (const r of Object.values(config.resources)) {
    out.add(canonicalTableName(r.table));
    if (r.list?.parent) out.add(canonicalTableName(r.list.parent.table));
    for (const e of Object.values(r.embed ?? {})) walk(e);
  }
  return [...out];
}

export function planConfig(config: WalcacheConfig, catalog: Catalog): Plan {
  const problems: string[] = [];
  const warnings = new Set<string>();
  const watched = new Map<string, WatchedColumn>();
  const tables = new Set<string>();

  const watch = (table: TableInfo, column: ColumnInfo) => {
    watched.set(`${table.tagName}.${column.name}`, { table: table.tagName, column: column.name });
  };

  const table = (where: string, name: string): TableInfo | undefined => {
    const canonical = canonicalTableName(name);
    const info = catalog.tables.get(canonical);
    if (!info) {
      problems.push(
        `${where}: table ${canonical} does not exist${suggest(canonical, catalog.allTableNames)}`,
      );
      return undefined;
    }
    tables.add(info.tagName);
    return info;
  };

  const read = new Map<string, Set<string>>();
  const column = (where: string, t: TableInfo, name: string): ColumnInfo | undefined => {
    const info = t.columns.get(name);
    if (info) read.set(t.tagName, (read.get(t.tagName) ?? new Set()).add(name));
    if (!info)
      problems.push(`${where}: table ${t.tagName} has no column "${name}"${suggest(name, t.columnOrder)}`);
    return info;
  };

  const keyOf = (where: string, t: TableInfo): string[] | undefined => {
    if (t.primaryKey.length === 0) {
      problems.push(`${where}: table ${t.tagName} has no primary key; walcache needs one to name its rows`);
      return undefined;
    }
    return t.primaryKey;
  };

  const wherePlan = (where: string, t: TableInfo, raw: Record<string, Literal> | undefined): WherePlan[] =>
    Object.entries(raw ?? {}).flatMap(([name, value]) => {
      const c = column(`${where} where`, t, name);
      return c ? [{ column: c, value }] : [];
    });

  const orderPlan = (where: string, t: TableInfo, raw: EmbedConfig['order']): OrderPlan[] =>
    (raw ?? []).flatMap((item) => {
      const [name, desc] =
        typeof item === 'string'
          ? [item.replace(/^-/, ''), item.startsWith('-')]
          : [item[0], item[1] === 'desc'];
      const c = column(`${where} order`, t, name);
      return c ? [{ column: c, desc }] : [];
    });

  /** The foreign key from `from` to `to`: the one named by `via`, or the only one. */
  const foreignKey = (
    where: string,
    from: TableInfo,
    to: TableInfo,
    via: string | undefined,
  ): { columns: ColumnInfo[]; referenced: string[] } | undefined => {
    const candidates = from.foreignKeys.filter(
      (fk) =>
        fk.references === to.tagName &&
        (via === undefined || (fk.columns.length === 1 && fk.columns[0] === via)),
    );
    if (candidates.length === 1) {
      const fk = candidates[0]!;
      return { columns: fk.columns.map((c) => from.columns.get(c)!), referenced: fk.referencedColumns };
    }
    if (via !== undefined) {
      // No constraint, but a named column: joined to the primary key, as the team says.
      const c = column(`${where} via`, from, via);
      const key = keyOf(where, to);
      if (!c || !key) return undefined;
      if (key.length !== 1) {
        problems.push(`${where}: ${to.tagName} has a composite primary key; declare a foreign key to it`);
        return undefined;
      }
      return { columns: [c], referenced: key };
    }
    if (candidates.length === 0) {
      problems.push(
        `${where}: no foreign key from ${from.tagName} to ${to.tagName}; name the column with "via"`,
      );
    } else {
      problems.push(
        `${where}: ${candidates.length} foreign keys from ${from.tagName} to ${to.tagName} (${candidates
          .map((fk) => fk.columns.join(','))
          .join('; ')}); pick one with "via"`,
      );
    }
    return undefined;
  };

  const node = (
    where: string,
    t: TableInfo,
    spec: Pick<EmbedConfig, 'columns' | 'embed' | 'pluck'> & { exclude?: string[] },
  ): NodePlan => {
    const out: NodePlan = { table: t, columns: [], embeds: [] };
    if (spec.pluck) {
      const c = column(`${where} pluck`, t, spec.pluck);
      if (c) out.pluck = c;
      return out;
    }
    const entries: [string, string][] = Array.isArray(spec.columns)
      ? spec.columns.map((c) => [c, c])
      : spec.columns
        ? Object.entries(spec.columns)
        : t.columnOrder.filter((c) => !spec.exclude?.includes(c)).map((c) => [c, c]);
    for (const [field, name] of entries) {
      const c = column(`${where} columns`, t, name);
      if (!c) continue;
      if (servedAsText(c)) {
        warnings.add(
          `${t.tagName}.${c.name} (${c.sqlType}) has no JSON form: served as its Postgres text; leave it out with "columns" or "exclude"`,
        );
      }
      out.columns.push({ field, column: c });
    }
    for (const [field, embed] of Object.entries(spec.embed ?? {})) {
      const planned = embedPlan(`${where} embed "${field}"`, t, field, embed);
      if (planned) out.embeds.push(planned);
    }
    const fields = [...out.columns.map((c) => c.field), ...out.embeds.map((e) => e.field)];
    const dup = fields.find((f, i) => fields.indexOf(f) !== i);
    if (dup) problems.push(`${where}: field "${dup}" is declared twice (a column and an embed?)`);
    return out;
  };

  const embedPlan = (
    where: string,
    parent: TableInfo,
    field: string,
    e: EmbedConfig,
  ): EmbedPlan | undefined => {
    const parentKey = keyOf(where, parent);
    if (e.one) {
      const target = table(where, e.one);
      if (!target) return undefined;
      const fk = foreignKey(where, parent, target, e.via);
      if (!fk) return undefined;
      return {
        kind: 'one',
        field,
        via: fk.columns,
        targetKey: fk.referenced,
        node: node(where, target, e),
      };
    }
    const name = (e.many ?? e.count)!;
    const target = table(where, name);
    if (!target || !parentKey) return undefined;
    if (e.through) {
      const join = table(where, e.through);
      if (!join) return undefined;
      const toParent = foreignKey(`${where} (through ${join.tagName})`, join, parent, undefined);
      const toTarget = foreignKey(`${where} (through ${join.tagName})`, join, target, e.via);
      if (!toParent || !toTarget) return undefined;
      watch(join, toParent.columns[0]!);
      if (e.count) {
        return {
          kind: 'countThrough',
          field,
          join,
          joinParent: toParent.columns,
          parentKey: toParent.referenced,
          joinTarget: toTarget.columns,
          target,
          targetKey: toTarget.referenced,
          where: wherePlan(where, target, e.where),
        };
      }
      return {
        kind: 'through',
        field,
        join,
        joinParent: toParent.columns,
        parentKey: toParent.referenced,
        joinTarget: toTarget.columns,
        targetKey: toTarget.referenced,
        node: node(where, target, e),
        where: wherePlan(where, target, e.where),
        order: orderPlan(where, target, e.order),
        ...(e.limit ? { limit: e.limit } : {}),
      };
    }
    const fk = foreignKey(where, target, parent, e.via);
    if (!fk) return undefined;
    watch(target, fk.columns[0]!);
    if (e.count) {
      return {
        kind: 'count',
        field,
        table: target,
        via: fk.columns,
        parentKey: fk.referenced,
        where: wherePlan(where, target, e.where),
      };
    }
    return {
      kind: 'many',
      field,
      via: fk.columns,
      parentKey: fk.referenced,
      node: node(where, target, e),
      where: wherePlan(where, target, e.where),
      order: orderPlan(where, target, e.order),
      ...(e.limit ? { limit: e.limit } : {}),
    };
  };

  const paramOf = (
    where: string,
    name: string,
    c: ColumnInfo,
    route: string,
    defaultIn: 'path' | 'query',
  ): ParamPlan => {
    if (!isParamType(c)) {
      problems.push(
        `${where}: column ${c.name} (${c.sqlType}) cannot be taken from a URL; pick a text, number, uuid, enum, boolean, date or timestamp column`,
      );
    }
    const inPath = route.includes(`{${name}}`);
    return { name, column: c, in: inPath ? 'path' : defaultIn };
  };

  const resources: ResourcePlan[] = [];
  for (const [name, r] of Object.entries(config.resources)) {
    const where = `resource "${name}"`;
    const root = table(where, r.table);
    if (!root) continue;
    const key = keyOf(where, root);
    let shape: LookupPlan | ListPlan | undefined;
    let route = r.route;
    if (r.by !== undefined) {
      const byNames = Array.isArray(r.by) ? r.by : [r.by];
      const by = byNames.map((b) => column(`${where} by`, root, b)).filter((c): c is ColumnInfo => !!c);
      if (by.length !== byNames.length) continue;
      const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));
      if (!root.uniques.some((u) => sameSet(u, byNames))) {
        problems.push(
          `${where}: lookup "by: ${byNames.join(', ')}" on ${root.tagName}: no unique index on (${byNames.join(', ')}); ` +
            `CREATE UNIQUE INDEX ON ${root.tagName} (${byNames.join(', ')}); or look up by the primary key`,
        );
        continue;
      }
      route ??= `/v1/${name}/${byNames.map((b) => `{${b}}`).join('/')}`;
      const byPrimaryKey = !!key && sameSet(key, byNames);
      if (!byPrimaryKey) watch(root, by[0]!);
      shape = {
        kind: 'lookup',
        by,
        byPrimaryKey,
        params: by.map((c) => paramOf(where, c.name, c, route!, 'path')),
      };
      for (const p of shape.params) {
        if (p.in !== 'path')
          problems.push(`${where}: route ${route} has no {${p.name}} for the lookup column ${p.name}`);
      }
    } else if (r.list) {
      const list = r.list;
      route ??= list.parent ? `/v1/${name}/{${list.parent.param}}` : `/v1/${name}`;
      const params: ParamPlan[] = [];
      const filters: ListPlan['filters'] = [];
      for (const [col, value] of Object.entries(list.filter ?? {})) {
        const c = column(`${where} list.filter`, root, col);
        if (!c) continue;
        if (value !== null && typeof value === 'object') {
          params.push(paramOf(`${where} list.filter.${col}`, value.param, c, route, 'query'));
          filters.push({ column: c, param: value.param });
          watch(root, c);
        } else {
          filters.push({ column: c, value });
        }
      }
      let parent: ListPlan['parent'];
      if (list.parent) {
        const p = table(`${where} list.parent`, list.parent.table);
        const fk = p ? foreignKey(`${where} list.parent`, root, p, list.parent.via) : undefined;
        const pkey = p ? keyOf(`${where} list.parent`, p) : undefined;
        if (p && fk && pkey) {
          if (pkey.length !== 1) {
            problems.push(
              `${where} list.parent: ${p.tagName} has a composite primary key; scope the list with "filter" instead`,
            );
          } else {
            const param = paramOf(
              `${where} list.parent`,
              list.parent.param,
              p.columns.get(pkey[0]!)!,
              route,
              'path',
            );
            if (param.in !== 'path')
              problems.push(`${where}: route ${route} has no {${list.parent.param}} for list.parent.param`);
            params.unshift(param);
            parent = { table: p, via: fk.columns, param };
            watch(root, fk.columns[0]!);
            // The list's "does the parent exist" tag: `col:` of its key changes only when that
            // row is inserted, deleted or re-keyed, where its `row:` tag changes on every edit.
            watch(p, param.column);
          }
        }
      }
      const order = orderPlan(`${where} list`, root, list.order);
      // The primary key ends every order: a keyset cursor needs a total order.
      for (const k of key ?? []) {
        if (!order.some((o) => o.column.name === k)) {
          order.push({ column: root.columns.get(k)!, desc: order.at(-1)?.desc ?? false });
        }
      }
      if (list.paginate) {
        for (const o of order) {
          if (o.column.nullable) {
            problems.push(
              `${where} list.order: column ${o.column.name} is nullable; a keyset cursor needs NOT NULL order columns (or "paginate": false)`,
            );
          } else if (!isParamType(o.column)) {
            problems.push(
              `${where} list.order: column ${o.column.name} (${o.column.sqlType}) cannot be part of a cursor`,
            );
          }
        }
      }
      for (const p of params) {
        if (p.name === 'limit' || p.name === 'cursor')
          problems.push(`${where}: parameter name "${p.name}" is reserved for paging`);
      }
      shape = {
        kind: 'list',
        params,
        filters,
        ...(parent ? { parent } : {}),
        order,
        paginate: list.paginate,
        pageSize: list.pageSize ?? { default: 20, max: 100 },
      };
    }
    if (!shape || route === undefined) continue;
    let warm: WarmPlan | undefined;
    if (r.warm !== undefined) {
      const spec = r.warm === true ? { limit: 1000 } : r.warm;
      if (shape.kind === 'list') {
        if (r.warm !== true)
          problems.push(
            `${where} warm: a list warms its first page: "warm": true (where/order/limit are for lookups)`,
          );
        else if (shape.params.length > 0)
          problems.push(
            `${where} warm: a list with parameters (${shape.params.map((p) => p.name).join(', ')}) has no one first page to fill; drop "warm"`,
          );
        else warm = { kind: 'first-page' };
      } else {
        const order = orderPlan(`${where} warm`, root, 'order' in spec ? spec.order : undefined);
        for (const k of key ?? []) {
          if (!order.some((o) => o.column.name === k))
            order.push({ column: root.columns.get(k)!, desc: false });
        }
        warm = {
          kind: 'rows',
          where: wherePlan(`${where} warm`, root, 'where' in spec ? spec.where : undefined),
          order,
          limit: spec.limit,
        };
      }
    }
    const routeParams = [...route.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    for (const p of routeParams) {
      if (!shape.params.some((q) => q.name === p && q.in === 'path')) {
        problems.push(
          `${where} route ${route}: {${p}} is not a lookup column, list.parent.param or list.filter param`,
        );
      }
    }
    resources.push({
      name,
      route,
      node: node(where, root, r),
      shape,
      ttlSeconds: r.ttl ?? config.defaults.ttl,
      negativeTtlSeconds: r.negativeTtl ?? config.defaults.negativeTtl,
      policy: r.policy ?? config.defaults.policy,
      openapi: r.openapi ?? {},
      ...(warm ? { warm } : {}),
    });
  }
  const routes = resources.map((r) => r.route.replace(/\{[^}]+\}/g, '{}'));
  routes.forEach((route, i) => {
    if (routes.indexOf(route) !== i)
      problems.push(
        `resource "${resources[i]!.name}": route ${resources[i]!.route} is taken by another resource; set "route"`,
      );
  });
  if (problems.length > 0) throw new ConfigMismatchError(problems);

  const needsFullIdentity = [...tables].filter((t) => {
    const info = catalog.tables.get(t)!;
    return [...watched.values()].some((w) => w.table === t && !info.primaryKey.includes(w.column));
  });
  // Beyond the columns named: every key and every foreign key of a table read, and the
  // columns other tables' foreign keys point at (joins, row tags, counts, list membership).
  // More than is read is safe (an UPDATE of it only invalidates); less would not be.
  const readColumns: Record<string, string[]> = {};
  for (const t of tables) {
    const info = catalog.tables.get(t)!;
    const columns = new Set(read.get(t) ?? []);
    for (const c of info.primaryKey) columns.add(c);
    for (const fk of info.foreignKeys) for (const c of fk.columns) columns.add(c);
    for (const other of tables)
      for (const fk of catalog.tables.get(other)!.foreignKeys)
        if (fk.references === t) for (const c of fk.referencedColumns) columns.add(c);
    for (const w of watched.values()) if (w.table === t) columns.add(w.column);
    readColumns[t] = [...columns].sort();
  }
  return {
    resources,
    tables: [...tables].sort(),
    readColumns,
    membership: membershipOf(resources, tables, catalog, [...watched.values()]),
    watched: [...watched.values()].sort(byWatchedColumn),
    needsFullIdentity: needsFullIdentity.sort(),
    warnings: [...warnings],
  };
}

/**
 * For each set tag a value can depend on, the columns whose change can move a row into, out
 * of or within that set (see `Membership`). Collected from the plans: list filters and order
 * (`rows:` of a global list, `col:` of a list's parameter or parent), embed `via`/`where`/
 * `order`, join-table links, lookup columns. Tables without a primary key are absent.
 */
function membershipOf(
  resources: readonly ResourcePlan[],
  tables: ReadonlySet<string>,
  catalog: Catalog,
  watched: readonly WatchedColumn[],
): Record<string, Membership> {
  const out: Record<string, Membership> = {};
  const entry = (t: TableInfo): Membership => {
    out[t.tagName] ??= { rows: [], byColumn: {} };
    return out[t.tagName]!;
  };
  const names = (columns: readonly (ColumnInfo | string)[]) =>
    columns.map((c) => (typeof c === 'string' ? c : c.name));
  const addRows = (t: TableInfo, columns: readonly (ColumnInfo | string)[]) => {
    const m = entry(t);
    m.rows = [...new Set([...m.rows, ...names(columns)])].sort();
  };
  const addColumn = (t: TableInfo, column: ColumnInfo, columns: readonly (ColumnInfo | string)[]) => {
    const m = entry(t);
    m.byColumn[column.name] = [
      ...new Set([...(m.byColumn[column.name] ?? []), column.name, ...names(columns)]),
    ].sort();
  };
  const ofWhere = (where: readonly WherePlan[]) => where.map((w) => w.column);
  const ofOrder = (order: readonly OrderPlan[]) => order.map((o) => o.column);
  const walk = (node: NodePlan) => {
    for (const e of node.embeds) {
      switch (e.kind) {
        case 'one':
          walk(e.node);
          break;
        case 'many':
          addColumn(e.node.table, e.via[0]!, [...ofWhere(e.where), ...ofOrder(e.order)]);
          walk(e.node);
          break;
        case 'through':
          addColumn(e.join, e.joinParent[0]!, e.joinTarget);
          if (e.where.length) addRows(e.node.table, [...ofWhere(e.where), ...ofOrder(e.order)]);
          walk(e.node);
          break;
        case 'count':
          addColumn(e.table, e.via[0]!, ofWhere(e.where));
          break;
        case 'countThrough':
          addColumn(e.join, e.joinParent[0]!, e.joinTarget);
          if (e.where.length) addRows(e.target, ofWhere(e.where));
          break;
      }
    }
  };
  for (const r of resources) {
    walk(r.node);
    const root = r.node.table;
    if (r.shape.kind === 'lookup') {
      if (!r.shape.byPrimaryKey) addColumn(root, r.shape.by[0]!, r.shape.by);
      continue;
    }
    const holds = [...r.shape.filters.map((f) => f.column), ...ofOrder(r.shape.order)];
    const param = r.shape.filters.find((f) => 'param' in f);
    if (r.shape.parent) {
      addColumn(root, r.shape.parent.via[0]!, holds);
      addColumn(r.shape.parent.table, r.shape.parent.param.column, []);
    } else if (param) addColumn(root, param.column, holds);
    else addRows(root, holds);
  }
  // Every watched column is some set's column; a table read only through `row:` tags still
  // gets an entry, so its UPDATEs emit no set tag at all.
  for (const w of watched) {
    const info = catalog.tables.get(w.table)!;
    const m = entry(info);
    m.byColumn[w.column] ??= [w.column];
  }
  for (const t of tables) {
    const info = catalog.tables.get(t)!;
    if (info.primaryKey.length === 0) delete out[t];
    else entry(info);
  }
  return out;
}

/** `; did you mean "title"?` for a near miss (edit distance ≤ 2, or a case difference). */
export function suggest(name: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = c.toLowerCase() === name.toLowerCase() ? 0 : distance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : `; did you mean "${best}"?`;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
