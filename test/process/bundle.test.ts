/**
 * The production build: each app runs from its bundle (dist/<app>.mjs) with plain node, no
 * TypeScript loader for its own code, and behaves as from the sources: it loads the example's
 * .ts config, serves (the ops routes too, a chunk loaded on demand), and stops cleanly on
 * SIGTERM. While it starts, its port already answers: 503 `starting` with Retry-After, until
 * it is started. The migrator bundle still finds an example's SQL files next to its sources.
 */
import { execFile } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
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
/** onShutdown's documented bound (docs/architecture.md, Processes). */
const STOP_BOUND_MS = 15_000;
const APPS: AppName[] = ['api', 'cdc', 'invalidator'];

/**
 * A TCP proxy in front of the test's Postgres that holds every connection until `release()`:
 * an app whose DATABASE_URL points here cannot finish its start (each app reads the catalog
 * while it starts), however fast the machine. `arrived` resolves at the first connection:
 * the app has loaded its code and waits for Postgres, i.e. it is mid-start.
 */
async function heldPostgres(target: URL) {
  let released = false;
  const held: Socket[] = [];
  const open = new Set<Socket>();
  let arrive = () => {};
  const arrived = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  const pipe = (client: Socket) => {
    const upstream = connect(Number(target.port), target.hostname);
    open.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  };
  const server = createServer((client) => {
    open.add(client);
    client.on('error', () => {});
    arrive();
    if (released) pipe(client);
    else {
      client.pause();
      held.push(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const url = new URL(target);
  url.port = String(typeof address === 'object' && address ? address.port : 0);
  return {
    url: url.toString(),
    arrived,
    release() {
      released = true;
      for (const client of held.splice(0)) if (!client.destroyed) pipe(client);
    },
    close() {
      for (const socket of open) socket.destroy();
      server.close();
    },
  };
}

/** The app's /healthz while it starts: the start-up answer, checked the way a prober sees it. */
async function expectStarting(app: AppProcess, path = '/healthz'): Promise<void> {
  const res = await fetch(app.url(path));
  const body = (await res.json()) as { type?: unknown; status?: unknown };
  expect(res.status, app.output()).toBe(503);
  expect(res.headers.get('retry-after')).toBe('1');
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(body).toMatchObject({ type: 'https://walcache.dev/problems/starting', status: 503 });
}

/** Resolves when `app` is waiting for Postgres; fails at once if it exited instead. */
async function midStart(app: AppProcess, proxy: { arrived: Promise<void> }): Promise<void> {
  const exited = app.exited.then((code) => {
    throw new Error(`the ${app.app} exited (${code}) before it reached Postgres:\n${app.output()}`);
  });
  await Promise.race([proxy.arrived, exited]);
}
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
        APPS.map((name) => spawnApp(name, servers, name === 'api' ? { OPS_TOKEN } : {}, 'bundle')),
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

  /** A bundle spawned against a Postgres that holds its connections: it stays mid-start, answering 503. */
  const heldMidStart = async (name: AppName) => {
    const proxy = await heldPostgres(new URL(servers.pg.url));
    try {
      const app = await spawnApp(name, servers, { DATABASE_URL: proxy.url }, 'bundle');
      started.push(app);
      await midStart(app, proxy);
      await expectStarting(app);
      return { app, proxy };
    } catch (error) {
      proxy.close();
      throw error;
    }
  };

  it.each(APPS)(
    '%s: its port answers 503 starting with Retry-After while it starts, then the app answers',
    async (name) => {
      const { app, proxy } = await heldMidStart(name);
      try {
        if (name === 'api') await expectStarting(app, '/v1/articles/1');
        else await expectStarting(app, '/metrics');
        proxy.release();
        await app.ready();
        const health = await fetch(app.url('/healthz'));
        expect(health.status, app.output()).toBe(200);
        await health.arrayBuffer();
        if (name === 'api') {
          const article = await fetch(app.url('/v1/articles/1'));
          expect(article.status, app.output()).toBe(200);
          await article.arrayBuffer();
        }
        process.kill(app.pid, 'SIGTERM');
        expect(await app.exited, app.output()).toBe(0);
      } finally {
        proxy.close();
      }
    },
    TIMEOUT_MS,
  );

  it.each(APPS)(
    '%s: SIGTERM while it starts stops it within the bound, and frees its port',
    async (name) => {
      const { app, proxy } = await heldMidStart(name);
      try {
        process.kill(app.pid, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          app.exited.then(() => 'exited' as const),
          new Promise<'hung'>((resolve) => {
            timer = setTimeout(() => resolve('hung'), STOP_BOUND_MS);
          }),
        ]);
        clearTimeout(timer);
        expect(outcome, app.output()).toBe('exited');
        await expect(fetch(app.url('/healthz'))).rejects.toThrow();
      } finally {
        proxy.close();
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
