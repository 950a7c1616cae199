import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Env } from '@walcache/config';
import { freePort, waitFor } from '@walcache/testkit';

const root = resolve(import.meta.dirname, '../..');

export interface CdcHealth {
  state: string;
  lastStoredLsn: string | null;
  lastReceivedLsn: string | null;
}

export interface CdcProcess {
  readonly pid: number;
  readonly metricsPort: number;
  /** Last lines of its output (pino JSON), for assertions and failure messages. */
  output(): string;
  health(): Promise<CdcHealth | undefined>;
  metrics(): Promise<string>;
  waitForState(state: string, timeoutMs?: number): Promise<void>;
  /** Sends the signal and resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  readonly exited: boolean;
}

/**
 * Runs apps/cdc/src/main.ts as a real child process (so a test can SIGKILL it), with the
 * test's environment. Only this process is ever signalled, by its own pid.
 */
export async function spawnCdc(env: Env, extra: Record<string, string> = {}): Promise<CdcProcess> {
  const metricsPort = await freePort();
  // `node --import tsx`, not the tsx wrapper: the wrapper runs the app in a second process,
  // and a SIGKILL of the wrapper would leave the real CDC running with the slot.
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'apps/cdc/src/main.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      DATABASE_URL: env.DATABASE_URL,
      REDIS_URL: env.REDIS_URL,
      QUEUE_REDIS_URL: env.QUEUE_REDIS_URL,
      SLOT_NAME: env.SLOT_NAME,
      PUBLICATION_NAME: env.PUBLICATION_NAME,
      QUEUE_NAME: env.QUEUE_NAME,
      CACHE_PREFIX: env.CACHE_PREFIX,
      CDC_METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('could not spawn the CDC');
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  const url = (path: string) => `http://127.0.0.1:${metricsPort}${path}`;
  const handle: CdcProcess = {
    pid: child.pid,
    metricsPort,
    output: () => out,
    get exited() {
      return exited;
    },
    async health() {
      try {
        const res = await fetch(url('/healthz'));
        return (await res.json()) as CdcHealth;
      } catch {
        return undefined; // not listening yet (starting) or already gone
      }
    },
    async metrics() {
      return (await fetch(url('/metrics'))).text();
    },
    async waitForState(state, timeoutMs = 30_000) {
      const last = { state: 'unknown' };
      await waitFor(
        async () => {
          if (exited) throw new Error(`the CDC exited:\n${out}`);
          last.state = (await handle.health())?.state ?? 'not listening';
          return last.state === state;
        },
        { timeoutMs, intervalMs: 50, what: `CDC pid ${child.pid} to be ${state}` },
      ).catch((error: unknown) => {
        throw new Error(`CDC pid ${child.pid} is ${last.state}, not ${state}; its output:\n${out}`, {
          cause: error,
        });
      });
    },
    async kill(signal = 'SIGKILL') {
      if (exited) return;
      child.kill(signal);
      await exit;
    },
  };
  return handle;
}
