import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentsExample } from '../../examples/agents/index.ts';
import { type ExampleSystem, startExample } from './support.ts';
import { databaseOf, verify } from './verify-support.ts';

/**
 * The agents example with one custom resource whose hand-written tags forget a table it reads
 * (test/fixtures/verify): verify must fail, naming that resource and the write that left it
 * stale, and pass every other resource.
 */
const config = join(
  import.meta.dirname,
  '..',
  'fixtures',
  'verify',
  'agents-forgets-a-table.walcache.config.ts',
);
let sys: ExampleSystem;

beforeAll(async () => {
  sys = await startExample({ ...agentsExample, configPath: config });
});
afterAll(async () => {
  await sys?.stop();
});

describe('walcache verify on a custom resource that forgets a table', () => {
  it('exits non-zero and names the resource and the write (seed 11, 40 writes)', async () => {
    const name = databaseOf(sys.stack.env.DATABASE_URL);
    const result = await verify(sys, ['--confirm-database', name, '--seed', '11', '--mutations', '40']);
    console.log(`${result.stderr}\n${result.stdout}`);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^channel-census +\d+ +\d+ +[1-9]\d* +STALE$/m);
    expect(result.stdout).toMatch(
      /channel-census:all stale after: (insert into|delete from|update) "public"."channels"/,
    );
    expect(result.stdout).toContain('verdict: STALE, channel-census kept values a write had changed');
    expect(result.stdout).toContain('a custom resource depends on more than its "tags"');
    // The declared resources of the same config are right.
    const others = result.stdout
      .split('\n')
      .filter((l) => / (ok|not exercised|STALE)$/.test(l) && !l.startsWith('channel-census'));
    expect(others.length).toBeGreaterThan(5);
    expect(others.filter((l) => !l.endsWith(' ok'))).toEqual([]);
  }, 60_000);
});
