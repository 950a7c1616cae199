import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packagedBinaries, postgresUser, runnableBinaries } from '@walcache/testkit';
import { afterAll, expect, it } from 'vitest';

// Only as root does the server run as another user (`postgres`); as anyone else it runs as
// the caller, who can always execute what it installed.
const asRoot = process.getuid?.() === 0;
if (!asRoot)
  console.warn('untraversable-checkout test skipped: it needs root (the server then runs as postgres)');

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

it.skipIf(!asRoot)(
  'Postgres binaries inside a checkout the postgres user cannot enter run from a traversable copy',
  async () => {
    const ids = postgresUser();
    if (!ids) throw new Error('no postgres user');
    // A checkout in a `mktemp -d` (0700): its node_modules holds the platform package.
    const hidden = await mkdtemp(join(tmpdir(), 'walcache-hidden-'));
    const cacheRoot = await mkdtemp(join(tmpdir(), 'walcache-bincache-'));
    made.push(hidden, cacheRoot);
    await chmod(cacheRoot, 0o755);
    const packaged = dirname(dirname(dirname((await packagedBinaries()).postgres)));
    await cp(packaged, join(hidden, 'pkg'), { recursive: true, verbatimSymlinks: true });
    const found = {
      postgres: join(hidden, 'pkg', 'native', 'bin', 'postgres'),
      initdb: join(hidden, 'pkg', 'native', 'bin', 'initdb'),
    };
    const asPostgres = (bin: string) => spawnSync(bin, ['--version'], { ...ids, encoding: 'utf8' });
    // What failed 29 test files: the server's user cannot execute the binary there.
    expect(asPostgres(found.postgres).status).not.toBe(0);

    const runnable = await runnableBinaries(found, cacheRoot);
    expect(runnable.postgres.startsWith(cacheRoot)).toBe(true);
    expect(asPostgres(runnable.postgres).stdout).toMatch(/^postgres \(PostgreSQL\) \d+/);
    expect(asPostgres(runnable.initdb).stdout).toMatch(/^initdb \(PostgreSQL\) \d+/);
    // The copy is made once: a second process finds it complete.
    expect(await runnableBinaries(found, cacheRoot)).toEqual(runnable);
  },
);
