import { PgoutputPlugin } from 'pg-logical-replication';

/**
 * pgoutput sends every value as its type's text output — exactly what `::text` gives in SQL,
 * which is how a fill builds the `row:`/`col:` tags it registers a value under
 * (packages/resources/src/sql.ts). pg-logical-replication then parses that text with
 * node-postgres' type parsers: a timestamptz becomes a Date (printed back as ISO 8601, its
 * microseconds lost), a bool `true`. A tag built from such a value is not the registered one:
 * the library example's loans (primary key `(id, loaned_at)`) were registered under
 * `row:lib.loans:509,2025-06-22 05:00:00+00` and invalidated under
 * `row:lib.loans:509,2025-06-22T05:00:00.000Z`, and a fill racing that commit stayed cached
 * stale. So every column keeps the text Postgres sent.
 *
 * The library has no option for it and keeps its column parsers private: the relation
 * message's columns get an identity parser as the message is read. Checked at start, so a
 * version of the library that reads relations otherwise fails here, loudly, not with tags
 * that quietly stop matching (test/e2e/text-values.test.ts).
 */
export function pgoutputWithTextValues(
  options: ConstructorParameters<typeof PgoutputPlugin>[0],
): PgoutputPlugin {
  const plugin = new PgoutputPlugin(options);
  const parser = (plugin as unknown as { parser?: Record<string, unknown> }).parser;
  const readColumn = parser?.readRelationColumn;
  if (!parser || typeof readColumn !== 'function')
    throw new Error(
      'pg-logical-replication no longer reads relation columns as walcache expects (PgoutputParser.readRelationColumn): pin the version walcache was tested with',
    );
  parser.readRelationColumn = (reader: unknown) => ({
    ...(readColumn.call(parser, reader) as Record<string, unknown>),
    parser: asText,
  });
  return plugin;
}

const asText = (text: string): string => text;
