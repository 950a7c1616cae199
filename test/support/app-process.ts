import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { freePort, waitFor } from '@walcache/testkit';
import { programArgs, type RunFrom } from '../../scripts/build.ts';
import type { Servers } from './stack.ts';

const root = resolve(import.meta.dirname, '../..');

export type AppName = 'api' | 'cdc' | 'invalidator';

export interface AppProcess {
  readonly app: AppName;
  readonly pid: number;
  /** `http://127.0.0.1:<its port><path>` (the API's port, or the metrics port). */
  url(path: string): string;
  /** Its stdout, for a test to read or to close. */
  readonly stdout: Readable;
  /** What it wrote to stdout (while read) and stderr. */
  output(): string;
  /** Resolves when its /healthz answers (for the CDC: when it streams). */
  ready(timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** A test's cleanup: SIGKILL it unless it already exited. */
  kill(): void;
}

/**
 * Runs apps/<app>/src/main.ts (or its bundle, dist/<app>.mjs, already built) as a real
 * process against `servers` (names unique to the call), so a test can signal it, close its
 * stdout, or stop its servers under it.
 */
export async function spawnApp(
  app: AppName,
  servers: Servers,
  extra: Record<string, string> = {},
  from: RunFrom = 'sources',
): Promise<AppProcess> {
  const port = await freePort();
  const id = `${app}${port}`;
  const child: ChildProcess = spawn(process.execPath, programArgs(app, from), {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: servers.pg.url,
      REDIS_URL: servers.redis.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      CDC_METRICS_PORT: String(port),
      INVALIDATOR_METRICS_PORT: String(port),
      SLOT_NAME: `walcache_${id}`,
      PUBLICATION_NAME: `walcache_${id}`,
      QUEUE_NAME: `invalidate-${id}`,
      CACHE_PREFIX: `wc${id}`,
      LOG_LEVEL: 'info',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { pid, stdout, stderr } = child;
  if (pid === undefined || !stdout || !stderr) throw new Error(`could not spawn the ${app}`);
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-20_000);
  };
  stdout.on('data', keep);
  stderr.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  return {
    app,
    pid,
    stdout,
    output: () => out,
    exited,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    kill() {
      if (!gone) child.kill('SIGKILL');
    },
    // Why 120 s: tsx compiles the app at start; on a loaded 2-core machine that alone took
    // over 30 s.
    async ready(timeoutMs = 120_000) {
      await waitFor(
        async () => {
          if (gone) throw new Error(`the ${app} exited:\n${out}`);
          const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
          if (!res?.ok) return false;
          const body = (await res.json()) as { state?: string };
          return app !== 'cdc' || body.state === 'streaming';
        },
        { timeoutMs, intervalMs: 50, what: `the ${app} (pid ${pid}) to serve /healthz` },
      ).catch((error: unknown) => {
        throw new Error(`the ${app} did not come up:\n${out}`, { cause: error });
      });
    },
  };
}
