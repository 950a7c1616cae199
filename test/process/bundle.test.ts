/**
 * The production build: each app runs from its bundle (dist/<app>.mjs) with plain node, no
 * TypeScript loader for its own code, and behaves as from the sources: it loads the example's
 * .ts config, serves (the ops routes too, a chunk loaded on demand), and stops cleanly on SIGTERM. The migrator bundle still finds an
 * example's SQL files next to its sources.
 */
import { execFile } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createPool } from '@walcache/db';
import { startPostgres } from '@walcache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, bundlePath, ensureBuilt, isStale } from '../../scripts/build.ts';
import { type AppName, type AppProcess, spawnApp } from '../support/app-process.ts';
import { type Servers, startServers } from '../support/stack.ts';

/** Why 240 s: a build, private servers, and three app starts on a loaded 2-core machine. */
const TIMEOUT_MS = 240_000;

const OPS_TOKEN = 'bundle-test-ops-token';
let servers: Servers;
const started: AppProcess[] = [];

beforeAll(async () => {
  await build();
  servers = await startServers();
}, TIMEOUT_MS);

afterAll(async () => {
  for (const app of started) app.kill();
  await servers?.stop();
});

describe('the bundles', () => {
  it('are fresh right after a build, stale once one of their sources is newer, and rebuilt then', async () => {
    for (const app of ['api', 'cdc', 'invalidator', 'walcache', 'migrate'] as const)
      expect(isStale(app), app).toBe(false);
    // One source edited after the build (its mtime moved to now, not its content): the
    // bundles, built in one pass, are stale, and what npm start asks for is rebuilt.
    const now = new Date();
    utimesSync(join(import.meta.dirname, '../../apps/cdc/src/main.ts'), now, now);
    expect(isStale('cdc')).toBe(true);
    expect(await ensureBuilt(['api', 'cdc', 'invalidator'])).toEqual(['api', 'cdc', 'invalidator']);
    expect(isStale('cdc')).toBe(false);
    expect(await ensureBuilt(['api', 'cdc', 'invalidator'])).toEqual([]);
  });

  it(
    'the api, the cdc and the invalidator run from dist/, serve, and stop cleanly on SIGTERM',
    async () => {
      const apps = await Promise.all(
        (['api', 'cdc', 'invalidator'] as AppName[]).map((name) =>
          spawnApp(name, servers, name === 'api' ? { OPS_TOKEN } : {}, 'bundle'),
        ),
      );
      started.push(...apps);
      await Promise.all(apps.map((app) => app.ready()));
      const [api] = apps;
      const first = await fetch(api!.url('/v1/articles/1'));
      expect(first.status, api!.output()).toBe(200);
      expect(String(((await first.json()) as { id?: unknown }).id)).toBe('1');
      const second = await fetch(api!.url('/v1/articles/1'));
      await second.arrayBuffer();
      expect(second.headers.get('x-cache')).toBe('HIT');
      // The ops routes are a chunk of their own, loaded only with a token: it loads.
      const status = await fetch(api!.url('/ops/status'), {
        headers: { authorization: `Bearer ${OPS_TOKEN}` },
      });
      expect(status.status, api!.output()).toBe(200);
      await status.arrayBuffer();
      for (const app of apps) process.kill(app.pid, 'SIGTERM');
      for (const app of apps) {
        expect(await app.exited, app.output()).toBe(0);
        expect(app.output()).toMatch(/"msg":"stopped"/);
      }
    },
    TIMEOUT_MS,
  );

  it(
    'the migrator sets up an example whose schema is SQL files beside its config',
    async () => {
      const pg = await startPostgres();
      try {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [bundlePath('migrate'), '--example', 'messaging'],
          { env: { PATH: process.env.PATH, DATABASE_URL: pg.url } },
        );
        expect(stdout).toMatch(/applied messaging\/schema\.sql; seeded the sample data/);
        const pool = createPool({ connectionString: pg.url });
        const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from conversations');
        await pool.end();
        expect(rows[0]!.n).toBeGreaterThan(0);
      } finally {
        await pg.stop();
      }
    },
    TIMEOUT_MS,
  );
});
