import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { migrateBlog } from './migrate.ts';
import { defaultSeedSize, type SeedSize, seedBlog } from './seed.ts';

/**
 * The sample blog: its schema and deterministic data, which go only into a database that
 * is handed to the example (the embedded one of `npm start`, a test's private server).
 */
export const blogExample = {
  name: 'blog',
  configPath: fileURLToPath(new URL('./walcache.config.ts', import.meta.url)),
  /** Creates the schema (if missing) and seeds an empty database; returns what it did. */
  async setup<DB>(
    db: Kysely<DB>,
    size: SeedSize | false = defaultSeedSize,
  ): Promise<{ applied: string[]; seeded: boolean }> {
    const applied = await migrateBlog(db);
    const seeded = size ? await seedBlog(db as never, size) : false;
    return { applied, seeded };
  },
};

export { defaultSeedSize, type SeedSize } from './seed.ts';
