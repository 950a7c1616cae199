import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppName, type AppProcess, spawnApp } from '../support/app-process.ts';
import { type Servers, startServers } from '../support/stack.ts';

/** onShutdown's documented bound (docs/architecture.md, Processes). */
const BOUND_MS = 15_000;
const APPS: AppName[] = ['api', 'cdc', 'invalidator'];
/** Why 240 s per test: starting the apps (see spawnApp's ready) plus the stop bound. */
const TEST_TIMEOUT_MS = 240_000;

/** SIGTERM, and how long until it exited, with which code. */
async function term(app: AppProcess): Promise<{ code: number | null; ms: number }> {
  const at = Date.now();
  process.kill(app.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    app.exited,
    new Promise<'hung'>((r) => {
      timer = setTimeout(() => r('hung'), BOUND_MS + 5_000);
    }),
  ]);
  clearTimeout(timer);
  if (code === 'hung') {
    process.kill(app.pid, 'SIGKILL');
    throw new Error(`the ${app.app} ignored SIGTERM for ${BOUND_MS + 5_000} ms:\n${app.output()}`);
  }
  return { code, ms: Date.now() - at };
}

describe('each app stops on SIGTERM within its bound', () => {
  let servers: Servers;
  const started: AppProcess[] = [];
  beforeAll(async () => {
    servers = await startServers();
  });
  afterAll(async () => {
    for (const app of started) app.kill();
    await servers?.stop();
  });

  it.each(APPS)(
    '%s, with its stdout closed (nobody reads its logs any more)',
    async (name) => {
      const app = await spawnApp(name, servers);
      started.push(app);
      await app.ready();
      app.stdout.destroy();
      const { code, ms } = await term(app);
      expect(code, app.output()).toBe(0);
      expect(ms).toBeLessThan(BOUND_MS);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'api, with its stdout full (a reader that stopped reading)',
    async () => {
      const app = await spawnApp('api', servers, { LOG_LEVEL: 'debug' });
      started.push(app);
      await app.ready();
      app.stdout.pause();
      // One debug line per request: far more than a pipe holds (64 KiB). pino's default
      // destination then retried its exit flush forever and the API never exited.
      for (let i = 0; i < 20; i += 1)
        await Promise.all(
          Array.from({ length: 100 }, () => fetch(app.url('/healthz')).then((r) => r.arrayBuffer())),
        );
      const { code, ms } = await term(app);
      expect(code, app.output()).toBe(0);
      expect(ms).toBeLessThan(BOUND_MS);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'all three, with Postgres and Redis stopped under them',
    async () => {
      const apps = await Promise.all(APPS.map((name) => spawnApp(name, servers)));
      started.push(...apps);
      await Promise.all(apps.map((app) => app.ready()));
      await Promise.all([servers.pg.stopServer(), servers.redis.kill()]);
      const results = await Promise.all(apps.map((app) => term(app)));
      for (const [i, app] of apps.entries()) {
        const { code, ms } = results[i]!;
        // Each stops by itself, not by the deadline, and says so.
        expect(code, app.output()).toBe(0);
        expect(ms, app.output()).toBeLessThan(BOUND_MS);
        expect(app.output()).toMatch(/"msg":"stopped"/);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
