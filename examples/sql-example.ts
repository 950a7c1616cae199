import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';

/**
 * An example whose schema and data are plain SQL files next to its config: `schema.sql`
 * (run once, when `marker` does not exist yet) and `seed.sql` (deterministic, run only while
 * `marker` is empty). Each file runs as one simple-protocol batch, so it may hold many
 * statements, and inside a transaction, so a failure leaves nothing half-made.
 */
export function sqlExample(name: string, dir: URL, marker: string) {
  const file = (f: string) => fileURLToPath(new URL(f, dir));
  return {
    name,
    configPath: file('walcache.config.ts'),
    /** Creates the schema (if missing) and seeds an empty database; returns what it did. */
    async setup<DB>(database: Kysely<DB>, size?: false): Promise<{ applied: string[]; seeded: boolean }> {
      const db = database as unknown as Kysely<unknown>;
      const applied: string[] = [];
      let seeded = false;
      await db.transaction().execute(async (tx) => {
        const { rows } = await sql<{
          found: string | null;
        }>`select to_regclass(${marker})::text as found`.execute(tx);
        if (rows[0]?.found == null) {
          await sql.raw(readFileSync(file('schema.sql'), 'utf8')).execute(tx);
          applied.push(`${name}/schema.sql`);
        }
        if (size === false) return;
        const empty = await sql<{
          empty: boolean;
        }>`select not exists (select 1 from ${sql.table(marker)}) as empty`.execute(tx);
        if (empty.rows[0]?.empty) {
          await sql.raw(readFileSync(file('seed.sql'), 'utf8')).execute(tx);
          seeded = true;
        }
      });
      return { applied, seeded };
    },
  };
}
