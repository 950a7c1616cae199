import { isDeepStrictEqual } from 'node:util';
import {
  colTag,
  epochTag,
  rowsTag,
  rowTag,
  type TableMembership,
  type Tag,
  tableTag,
  tableTagName,
  type WatchedColumn,
} from '@walcache/core';
import { z } from 'zod';

/**
 * Turns decoded pgoutput row changes into dependency tags. Pure: unit-testable without a
 * server. Rows are validated (zod) before use: a value we cannot turn into a tag is an
 * error to report, not something to guess about.
 */
export interface RelationInfo {
  /** pg_class oid: survives a rename, so a renamed table is still recognised. */
  relationOid?: number;
  schema: string;
  name: string;
  keyColumns: string[];
  replicaIdentity: string;
  columns?: readonly { name: string; typeOid: number }[];
}

/**
 * A column as the WAL carries it: Postgres' text of it (text-values.ts keeps it so), the
 * spelling a fill's tags use; null for NULL; absent for an unchanged TOASTed value. Anything
 * else here would make a tag that matches none.
 */
const columnText = z.string().nullable().optional();

type RowText = Record<string, unknown>;

/**
 * A decoded row is validated on the columns tagsOf reads (keys, watched, read and membership
 * columns), not on all of them: a wide row's other columns (a long text body, say) would cost a
 * schema check each on the CDC's busiest path, and nothing here looks at them.
 */
interface RowSchema {
  keyColumns: readonly string[];
  schema: z.ZodType<RowText | null>;
}

export type ChangeKind = 'insert' | 'update' | 'delete';

interface SeenRelation {
  name: string;
  schema: string;
  signature: string;
}

export class TagMapper {
  private readonly watched = new Map<string, string[]>();
  private primaryKeys = new Map<string, string[]>();
  /** Relations seen in the stream by oid, kept across reconnects to notice DDL. */
  private readonly seen = new Map<number, SeenRelation>();
  /** oid → the tracked name it had when first seen (a renamed table keeps it). */
  private readonly trackedOids = new Map<number, string>();

  private readonly readColumns: ReadonlyMap<string, readonly string[]>;
  private readonly membership: ReadonlyMap<string, TableMembership>;
  /** Per table, the schema of the columns tagsOf reads, built at the table's first change. */
  private readonly rowSchemas = new Map<string, RowSchema>();

  constructor(
    watched: readonly WatchedColumn[],
    /** Tables whose changes can affect a cached value; other published tables are ignored. */
    private readonly tables: ReadonlySet<string>,
    /**
     * Per table, the columns some resource reads (CompiledConfig.readColumns). An UPDATE
     * whose old row the WAL carries (REPLICA IDENTITY FULL) and that changes none of them
     * makes no tag at all. A table absent here counts every change.
     */
    readColumns: Readonly<Record<string, readonly string[]>> = {},
    /** An UPDATE skipped for that reason (counted: the invalidations precision saves). */
    private readonly onSkipped?: (table: string) => void,
    /**
     * Per table, the columns each set tag (`rows:`, `col:`) depends on (CompiledConfig.membership).
     * An UPDATE whose old row the WAL carries emits a set tag only if it changes one of its
     * columns; a table absent here gets every tag.
     */
    membership: Readonly<Record<string, TableMembership>> = {},
    /** An UPDATE that needed no set tag at all, only its row's (counted like onSkipped). */
    private readonly onRowOnly?: (table: string) => void,
  ) {
    this.readColumns = new Map(Object.entries(readColumns));
    this.membership = new Map(Object.entries(membership));
    for (const w of watched) this.watched.set(w.table, [...(this.watched.get(w.table) ?? []), w.column]);
  }

  /**
   * The primary key of each table, read from the catalog at connect. The relation message's
   * key columns are the *replica identity*: with REPLICA IDENTITY FULL that is every column.
   */
  setPrimaryKeys(keys: ReadonlyMap<string, string[]>): void {
    this.primaryKeys = new Map(keys);
    this.rowSchemas.clear();
  }

  private rowSchemaOf(table: string, keyColumns: readonly string[]): RowSchema['schema'] {
    const known = this.rowSchemas.get(table);
    if (known && (known.keyColumns === keyColumns || sameColumns(known.keyColumns, keyColumns)))
      return known.schema;
    const membership = this.membership.get(table);
    // Keys and watched values become tags: Postgres' text or nothing. Read and membership
    // columns are only compared (old against new), where anything that is not the same
    // string counts as a change.
    const tagged = new Set([...keyColumns, ...(this.watched.get(table) ?? [])]);
    const compared = [
      ...(this.readColumns.get(table) ?? []),
      ...(membership?.rows ?? []),
      ...Object.values(membership?.byColumn ?? {}).flat(),
    ].filter((c) => !tagged.has(c));
    const schema = z
      .object({
        ...Object.fromEntries(compared.map((c) => [c, z.unknown().optional()])),
        ...Object.fromEntries([...tagged].map((c) => [c, columnText])),
      })
      .nullable() as z.ZodType<RowText | null>;
    this.rowSchemas.set(table, { keyColumns, schema });
    return schema;
  }

  /** The oids of the tracked tables, read from the catalog at connect. */
  setRelationOids(oids: ReadonlyMap<string, number>): void {
    for (const [name, oid] of oids) if (this.tables.has(name)) this.trackedOids.set(oid >>> 0, name);
  }

  /** The tracked table name a relation's changes count for, or undefined to ignore it. */
  trackedName(relation: RelationInfo): string | undefined {
    const name = tableTagName(relation.schema, relation.name);
    if (this.tables.has(name)) return name;
    // pgoutput's reader returns the oid as a signed int32; the catalog's is unsigned.
    return relation.relationOid === undefined ? undefined : this.trackedOids.get(relation.relationOid >>> 0);
  }

  isTracked(relation: RelationInfo): boolean {
    return this.trackedName(relation) !== undefined;
  }

  /**
   * Records a Relation message (sent before a relation's first change and again after DDL).
   * Returns the tracked tables a schema change touched: a renamed table, or a tracked table
   * whose columns changed, is invalidated table-wide, because cached values built from the
   * old shape (or under the old name) may no longer be what a fresh load returns.
   */
  observeRelation(relation: RelationInfo): string[] {
    if (relation.relationOid === undefined) return [];
    const oid = relation.relationOid >>> 0;
    const signature = (relation.columns ?? []).map((c) => `${c.name}:${c.typeOid}`).join(',');
    const previous = this.seen.get(oid);
    this.seen.set(oid, { name: relation.name, schema: relation.schema, signature });
    const name = tableTagName(relation.schema, relation.name);
    if (this.tables.has(name) && !this.trackedOids.has(oid)) this.trackedOids.set(oid, name);
    if (!previous) return [];
    const touched = new Set<string>();
    const renamed = previous.name !== relation.name || previous.schema !== relation.schema;
    if (renamed || previous.signature !== signature) {
      const original = this.trackedOids.get(oid);
      if (original) touched.add(original);
      if (this.tables.has(name)) touched.add(name);
      const previousName = tableTagName(previous.schema, previous.name);
      if (this.tables.has(previousName)) touched.add(previousName);
    }
    return [...touched];
  }

  /**
   * Tags for one row change: `table:`, `rows:`, the row tags of the old and new key, and the
   * watched columns' `col:` tags of old and new values. An UPDATE whose old row the WAL
   * carries narrows this: nothing if it changes no column a resource reads; else only the
   * set tags whose columns it changes (with the key unchanged, the row tag covers the rest).
   */
  tagsOf(kind: ChangeKind, relation: RelationInfo, oldRow: unknown, newRow: unknown): Tag[] {
    const ownName = tableTagName(relation.schema, relation.name);
    const table = this.trackedName(relation) ?? ownName;
    if (table !== ownName) {
      // A tracked table under another name (renamed): its row tags would name a table no
      // cached value knows; only a table-wide invalidation under its tracked name is complete.
      return this.tagsOfTable(table);
    }
    const keyColumns =
      this.primaryKeys.get(table) ?? (relation.replicaIdentity === 'full' ? [] : relation.keyColumns);
    const rowSchema = this.rowSchemaOf(table, keyColumns);
    const before = rowSchema.parse(oldRow ?? null);
    const after = rowSchema.parse(newRow ?? null);
    const membership = this.membership.get(table);
    // Whether a set tag over these columns is needed: always, unless the WAL shows an UPDATE
    // that keeps the key (a re-keyed row leaves and enters every set) and changes none of them.
    let needsSet = (_columns: readonly string[]) => true;
    if (kind === 'update' && relation.replicaIdentity === 'full' && before && after) {
      // A column absent from the new tuple is an unchanged TOASTed value.
      // The WAL's values are strings: the deep comparison is for anything else a row holds.
      const changed = (c: string) => {
        const now = after[c];
        const was = before[c];
        return now !== undefined && now !== was && (typeof now !== 'object' || !isDeepStrictEqual(was, now));
      };
      const read = this.readColumns.get(table);
      if (read && !read.some(changed)) {
        this.onSkipped?.(table);
        return [];
      }
      if (membership && keyColumns.length > 0 && !keyColumns.some(changed)) {
        needsSet = (columns) => columns.some(changed);
        if (![membership.rows, ...Object.values(membership.byColumn)].some(needsSet)) this.onRowOnly?.(table);
      }
    }
    const tags: Tag[] = [tableTag(table)];
    if (needsSet(membership?.rows ?? [])) tags.push(rowsTag(table));
    const rows = [before, after].filter((r): r is RowText => r !== null);
    if (rows.length === 0) throw new Error(`${kind} on ${table} carried no row data`);
    const columns = (this.watched.get(table) ?? []).filter((c) => {
      const set = membership?.byColumn[c];
      return set === undefined || needsSet(set);
    });
    for (const row of rows) {
      if (keyColumns.length > 0 && keyColumns.every((c) => row[c] !== undefined)) {
        tags.push(rowTag(table, keyColumns.map((c) => String(row[c] as string | null)).join(',')));
      } else if (keyColumns.length === 0) {
        // A table without a known key: only a table-wide invalidation is sure to be complete.
        tags.push(epochTag(table));
      }
      for (const column of columns) {
        // undefined: not in this tuple (a key-only old row, or an unchanged TOASTed value
        // without REPLICA IDENTITY FULL). The other tuple of the change carries it.
        const value = row[column];
        if (value !== undefined) tags.push(colTag(table, column, value as string | null));
      }
    }
    return tags;
  }

  /** A change of the whole table (TRUNCATE, an unmappable row). */
  tagsOfTruncate(relation: RelationInfo): Tag[] {
    return this.tagsOfTable(this.trackedName(relation) ?? tableTagName(relation.schema, relation.name));
  }

  tagsOfTable(table: string): Tag[] {
    return [tableTag(table), epochTag(table)];
  }
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}
