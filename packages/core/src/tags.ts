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
export const tableTag = (table: string): Tag => `table:${table}`;
export const epochTag = (table: string): Tag => `epoch:${table}`;

/** The table a tag names, or undefined for a malformed tag. */
export function tableOfTag(tag: Tag): string | undefined {
  const [kind, table] = tag.split(':', 3);
  if (!table) return undefined;
  return kind === 'row' || kind === 'col' || kind === 'table' || kind === 'epoch' ? table : undefined;
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

export interface WatchedColumn {
  table: string;
  column: string;
}
