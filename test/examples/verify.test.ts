import { afterAll, describe, expect, it } from 'vitest';
import { messagingExample } from '../../examples/messaging/index.ts';
import { personalitiesExample } from '../../examples/personalities/index.ts';
import { type ExampleSystem, startExample } from './support.ts';
import { databaseOf, verify } from './verify-support.ts';

/**
 * `walcache verify` against two examples, each served by its own config: every resource is
 * filled, random writes reach every table, and no value stays stale (exit code 0). Seeds are
 * fixed so a failure replays.
 */
const systems: ExampleSystem[] = [];
afterAll(async () => {
  await Promise.allSettled(systems.map((s) => s.stop()));
});

describe('walcache verify', () => {
  it('refuses a database it was not told the name of, and says how to confirm it (exit 3)', async () => {
    const sys = await startExample(personalitiesExample);
    systems.push(sys);
    const name = databaseOf(sys.stack.env.DATABASE_URL);
    const missing = await verify(sys, []);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(`--confirm-database ${name}`);
    const wrong = await verify(sys, ['--confirm-database', 'production']);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain(`is database "${name}", not "production"`);
  }, 60_000);

  it('--json: the same report as one document (resources, writes, stale values, seed)', async () => {
    const sys = systems[0]!;
    const name = databaseOf(sys.stack.env.DATABASE_URL);
    const result = await verify(sys, [
      '--confirm-database',
      name,
      '--seed',
      '5',
      '--mutations',
      '3',
      '--json',
    ]);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout) as {
      database: string;
      seed: number;
      mutations: number;
      resources: { resource: string; keys: number; mutations: number; stale: unknown[] }[];
    };
    expect(doc).toMatchObject({ database: name, seed: 5, mutations: 3 });
    expect(doc.resources.map((r) => r.resource).sort()).toEqual([
      'personalities',
      'personality',
      'personality-by-id',
    ]);
    for (const r of doc.resources) expect(r).toMatchObject({ mutations: 3, stale: [] });
  }, 60_000);

  for (const [example, mutations] of [
    [personalitiesExample, 40],
    [messagingExample, 40],
  ] as const) {
    it(`passes on the ${example.name} example (seed 7, ${mutations} writes)`, async () => {
      let sys = systems.find((s) => s.stack.env.WALCACHE_CONFIG === example.configPath);
      if (!sys) {
        sys = await startExample(example);
        systems.push(sys);
      }
      const name = databaseOf(sys.stack.env.DATABASE_URL);
      const result = await verify(sys, [
        '--confirm-database',
        name,
        '--seed',
        '7',
        '--mutations',
        String(mutations),
      ]);
      console.log(`${example.name}:\n${result.stdout}`);
      expect(result.stdout).toContain('verdict: ok');
      expect(result.code).toBe(0);
      // Every resource was filled and written to: a check of nothing proves nothing.
      const rows = result.stdout.split('\n').filter((l) => / (ok|not exercised|STALE)$/.test(l));
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.filter((l) => !l.endsWith(' ok'))).toEqual([]);
      expect(result.stderr).toMatch(/… \d+\/\d+ writes/);
      // Every column the config's tables have that a write may set was written at least once.
      expect(result.stdout).toMatch(/^columns written: (\d+) of \1$/m);
    }, 60_000);
  }
});
