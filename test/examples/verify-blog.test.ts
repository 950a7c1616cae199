import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Kysely, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { blogExample } from '../../examples/blog/index.ts';
import type { Example } from '../../examples/index.ts';
import { type ExampleSystem, startExample } from './support.ts';
import { databaseOf, verify } from './verify-support.ts';

/**
 * `walcache verify` on the blog (through and count embeds, a filtered list, custom-free) and
 * on the library fixture (a schema with a partitioned table, a composite key, a domain with a
 * CHECK, arrays, numeric and tsvector): the writes stay inside those constraints and nothing
 * is stale. Seeds fixed so a failure replays.
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'library');
const library: Example = {
  name: 'library',
  configPath: join(fixture, 'walcache.config.yaml'),
  async setup<DB>(db: Kysely<DB>) {
    const { rows } = await sql<{
      found: string | null;
    }>`select to_regclass('lib.books')::text as found`.execute(db);
    if (rows[0]?.found) return { applied: [], seeded: false };
    await sql.raw(readFileSync(join(fixture, 'schema.sql'), 'utf8')).execute(db);
    return { applied: ['library/schema.sql'], seeded: true };
  },
};

const systems: ExampleSystem[] = [];
afterAll(async () => {
  await Promise.allSettled(systems.map((s) => s.stop()));
});

describe('walcache verify', () => {
  for (const example of [blogExample, library]) {
    it(`passes on ${example.name} (seed 3, 30 writes)`, async () => {
      const sys = await startExample(example);
      systems.push(sys);
      const name = databaseOf(sys.stack.env.DATABASE_URL);
      const result = await verify(sys, ['--confirm-database', name, '--seed', '3', '--mutations', '30']);
      console.log(`${example.name}:\n${result.stderr}\n${result.stdout}`);
      expect(result.code).toBe(0);
      const rows = result.stdout.split('\n').filter((l) => / (ok|not exercised|STALE)( \(.*\))?$/.test(l));
      expect(rows.filter((l) => !l.endsWith(' ok'))).toEqual([]);
    }, 90_000);
  }
});
