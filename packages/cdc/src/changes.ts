import { colTag, epochTag, rowTag, type Tag, tableTag, type WatchedColumn } from '@walcache/core';
import { z } from 'zod';

/**
 * Turns decoded pgoutput row changes into dependency tags. Pure: unit-testable without a
 * server. Rows are validated (zod) before use: a value we cannot turn into a tag is an
 * error to report, not something to guess about.
 */
export interface RelationInfo {
  schema: string;
  name: string;
  keyColumns: string[];
  replicaIdentity: string;
}

const tagValue = z.union([
  z.string(),
  z.number(),
  z.bigint(),
  z.boolean(),
  z.null(),
  z.date().transform((d) => d.toISOString()),
]);
const rowSchema = z.record(z.string(), z.unknown()).nullable();

export type ChangeKind = 'insert' | 'update' | 'delete';

export class TagMapper {
  private readonly watched = new Map<string, string[]>();
  private primaryKeys = new Map<string, string[]>();

  constructor(
    watched: readonly WatchedColumn[],
    /** Tables outside the publication's resources are ignored (defence in depth). */
    private readonly tables: ReadonlySet<string>,
  ) {
    for (const w of watched) this.watched.set(w.table, [...(this.watched.get(w.table) ?? []), w.column]);
  }

  /**
   * The primary key of each table, read from the catalog at connect. The relation message's
   * key columns are the *replica identity*: with REPLICA IDENTITY FULL that is every column.
   */
  setPrimaryKeys(keys: ReadonlyMap<string, string[]>): void {
    this.primaryKeys = new Map(keys);
  }

  isTracked(relation: RelationInfo): boolean {
    return relation.schema === 'public' && this.tables.has(relation.name);
  }

  /** Tags for one row change: row tags of the old and new key, watched columns old and new, the table. */
  tagsOf(kind: ChangeKind, relation: RelationInfo, oldRow: unknown, newRow: unknown): Tag[] {
    const table = relation.name;
    const tags: Tag[] = [tableTag(table)];
    const rows = [rowSchema.parse(oldRow ?? null), rowSchema.parse(newRow ?? null)].filter(
      (r): r is Record<string, unknown> => r !== null,
    );
    if (rows.length === 0) throw new Error(`${kind} on ${table} carried no row data`);
    const columns = this.watched.get(table) ?? [];
    const keyColumns =
      this.primaryKeys.get(table) ?? (relation.replicaIdentity === 'full' ? [] : relation.keyColumns);
    for (const row of rows) {
      if (keyColumns.length > 0 && keyColumns.every((c) => c in row)) {
        tags.push(rowTag(table, keyColumns.map((c) => String(tagValue.parse(row[c]))).join(',')));
      } else if (keyColumns.length === 0) {
        // A table without a known key: only a table-wide invalidation is sure to be complete.
        tags.push(epochTag(table));
      }
      for (const column of columns) {
        if (column in row) tags.push(colTag(table, column, tagValue.parse(row[column])));
      }
    }
    return tags;
  }

  tagsOfTruncate(relation: RelationInfo): Tag[] {
    return [tableTag(relation.name), epochTag(relation.name)];
  }
}
