/**
 * Dependency tags, the shared language of the CDC (which emits them from row changes) and
 * the resources (which declare them for each cached value). See docs/architecture.md.
 */
export type Tag = string;

/** A table's name in tags, the config and the CDC: `orders` in schema public, else `lib.books`. */
export const tableTagName = (schema: string, table: string): string =>
  schema === 'public' ? table : `${schema}.${table}`;

export const rowTag = (table: string, pk: string | number | bigint): Tag => `row:${table}:${pk}`;
export const colTag = (
  table: string,
  column: string,
  value: string | number | bigint | boolean | null,
): Tag => `col:${table}:${column}:${value === null ? '\\N' : String(value)}`;
/** Any change of the table: what a value whose rows walcache cannot name depends on (custom SQL). */
export const tableTag = (table: string): Tag => `table:${table}`;
/**
 * The table's set of rows: emitted when a row may enter, leave or move within a set defined
 * on the whole table (an INSERT, a DELETE, an UPDATE of a membership column). A global list
 * depends on it; the rows it shows carry their own `row:` tags for every other edit.
 */
export const rowsTag = (table: string): Tag => `rows:${table}`;
export const epochTag = (table: string): Tag => `epoch:${table}`;

/** The table a tag names, or undefined for a malformed tag. */
export function tableOfTag(tag: Tag): string | undefined {
  // indexOf, not split: the CDC asks this of every tag of every row change it decodes.
  const kindEnd = tag.indexOf(':');
  if (kindEnd < 0) return undefined;
  const kind = tag.slice(0, kindEnd);
  if (kind !== 'row' && kind !== 'col' && kind !== 'table' && kind !== 'rows' && kind !== 'epoch')
    return undefined;
  const tableEnd = tag.indexOf(':', kindEnd + 1);
  const table = tableEnd < 0 ? tag.slice(kindEnd + 1) : tag.slice(kindEnd + 1, tableEnd);
  return table === '' ? undefined : table;
}

/**
 * The tags a value is registered under: its declared tags plus the epoch tag of each table
 * they name, so a TRUNCATE or an over-large transaction reaches it without row tags.
 */
export function withEpochTags(tags: Iterable<Tag>): Tag[] {
  const all = new Set<Tag>();
  for (const tag of tags) {
    all.add(tag);
    const table = tableOfTag(tag);
    if (table) all.add(epochTag(table));
  }
  return [...all];
}

/**
 * A table's set tags and the columns whose change can alter each set: what the resources
 * derive (packages/resources, `membership`) and the CDC narrows UPDATEs by. Every value holds
 * the `row:` tag of each row it shows, so an edit of a shown column reaches exactly the
 * values showing that row; a set tag stands for "which rows, how many, in what order" and is
 * needed only when an UPDATE changes one of its columns (or a key: then every tag is, as for
 * an INSERT or a DELETE).
 */
export interface TableMembership {
  /** Columns deciding the table-wide sets (`rows:<table>`: a global list, a filtered join target). */
  rows: string[];
  /** Per watched column `c`, the columns deciding the sets `col:<table>:<c>:<value>` (c included). */
  byColumn: Record<string, string[]>;
}

export interface WatchedColumn {
  table: string;
  column: string;
}
