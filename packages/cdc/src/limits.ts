import { z } from 'zod';
import { DEFAULT_MAX_TAGS_PER_TABLE } from './batcher.ts';

export interface TagLimits {
  default: number;
  perTable: ReadonlyMap<string, number>;
  /** The limit for one table (its own, else the default). */
  of(table: string): number;
}

const count = z.coerce.number().int().min(1).max(1_000_000);
const tableName = z.string().regex(/^[a-z_][a-z0-9_$]{0,62}$/, 'a lower-case table name');

/**
 * Parses the per-table threshold for over-large transactions, e.g. `CDC_MAX_TAGS_PER_TABLE`:
 * `10000` (every table) or `default=10000,events=50000` (per table, default for the rest).
 * Throws a zod error naming the bad entry.
 */
export const tagLimitsSchema = z
  .string()
  .trim()
  .transform((text, ctx): TagLimits => {
    let fallback = DEFAULT_MAX_TAGS_PER_TABLE;
    const perTable = new Map<string, number>();
    for (const raw of text.split(',')) {
      const entry = raw.trim();
      if (!entry) continue;
      const eq = entry.indexOf('=');
      const name = eq < 0 ? 'default' : entry.slice(0, eq).trim();
      const parsedCount = count.safeParse(eq < 0 ? entry : entry.slice(eq + 1).trim());
      if (!parsedCount.success) {
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}": the limit must be an integer from 1 to 1000000`,
        });
        continue;
      }
      if (name === 'default') {
        fallback = parsedCount.data;
        continue;
      }
      if (!tableName.safeParse(name).success) {
        ctx.addIssue({ code: 'custom', message: `"${entry}": "${name}" is not a table name` });
        continue;
      }
      perTable.set(name, parsedCount.data);
    }
    return { default: fallback, perTable, of: (table) => perTable.get(table) ?? fallback };
  });

export function parseTagLimits(text: string | undefined): TagLimits {
  return tagLimitsSchema.parse(text ?? '');
}
