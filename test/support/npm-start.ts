import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdtemp, rm, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitFor } from '@walcache/testkit';

const root = resolve(import.meta.dirname, '../..');

/** What a checkout holds besides its sources: state, installs, history. */
const NOT_COPIED = new Set(['.walcache', '.git', 'node_modules', '.tools', 'bench-results']);

export interface Checkout {
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * A second checkout of this repository in a temp dir: its own sources, scripts and (once
 * started) .walcache state, sharing this checkout's installed node_modules and .tools
 * through symlinks (a fresh install would cost minutes). The temp dir is made traversable:
 * what is tested with it is process management, not the untraversable-checkout case.
 */
export async function copyCheckout(): Promise<Checkout> {
  const dir = await mkdtemp(join(tmpdir(), 'walcache-checkout-'));
  await chmod(dir, 0o755);
  for (const entry of readdirSync(root)) {
    if (NOT_COPIED.has(entry)) continue;
    // Timestamps kept: scripts/entry.mjs reinstalls when the lockfile looks newer than the install.
    await cp(join(root, entry), join(dir, entry), {
      recursive: true,
      verbatimSymlinks: true,
      preserveTimestamps: true,
    });
  }
  // The copy shares this checkout's install and must never run `pnpm install` into it (it
  // would rebuild the shared node_modules): its lockfile is dated older than any install.
  await utimes(join(dir, 'pnpm-lock.yaml'), 0, 0);
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
  await symlink(join(root, '.tools'), join(dir, '.tools'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface StartedPorts {
  api: number;
  cdcMetrics: number;
  invalidatorMetrics: number;
  redis: number;
  postgres: number;
}

export interface NpmStart {
  /** The pid of `npm` itself, also the id of the process group it leads. */
  readonly pid: number;
  output(): string;
  /** Resolves when the API serves an article and the CDC is streaming. */
  ready(timeoutMs?: number): Promise<StartedPorts>;
  /** Every process of this run still alive: all carry its marker in their environment. */
  processes(): number[];
  /** Resolves with npm's exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

const SETTINGS = [
  'PORT',
  'HOST',
  'CDC_METRICS_PORT',
  'INVALIDATOR_METRICS_PORT',
  'DATABASE_URL',
  'REDIS_URL',
  'QUEUE_REDIS_URL',
  'OPS_TOKEN',
  'NODE_ENV',
];

/**
 * Runs the real `npm start` in `dir` as a terminal would run a foreground job: in a process
 * group of its own, led by npm, so the group can be signalled like a Ctrl-C or a kill -9 of
 * the group. The environment is the machine's minus every walcache setting, plus `env`.
 */
export function npmStart(dir: string, env: Record<string, string> = {}): NpmStart {
  const mark = randomUUID();
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !SETTINGS.includes(k) && !k.startsWith('VITEST')),
  );
  const child: ChildProcess = spawn('npm', ['start'], {
    cwd: dir,
    env: { ...base, ...env, WALCACHE_TEST_RUN: mark },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) throw new Error('could not spawn npm');
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString('utf8');
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const port = (pattern: RegExp, what: string) => {
    const found = pattern.exec(out)?.[1];
    if (!found) throw new Error(`npm start printed no ${what} port:\n${out}`);
    return Number(found);
  };
  return {
    pid: child.pid,
    output: () => out,
    exited,
    processes: () => processesMarked(mark),
    async ready(timeoutMs = 120_000) {
      await waitFor(() => /Press Ctrl-C to stop/.test(out) || gone, {
        timeoutMs,
        intervalMs: 100,
        what: 'npm start to print its summary',
      }).catch((error: unknown) => {
        throw new Error(`npm start did not come up:\n${out}`, { cause: error });
      });
      if (gone) throw new Error(`npm start exited:\n${out}`);
      const ports: StartedPorts = {
        api: port(/API\s+http:\/\/127\.0\.0\.1:(\d+)\//, 'API'),
        cdcMetrics: port(/cdc :(\d+)\/metrics/, 'CDC metrics'),
        invalidatorMetrics: port(/invalidator :(\d+)\/metrics/, 'invalidator metrics'),
        redis: port(/redis-server on 127\.0\.0\.1:(\d+)/, 'Redis'),
        postgres: port(/PostgreSQL \(wal_level=logical\) on 127\.0\.0\.1:(\d+)/, 'PostgreSQL'),
      };
      const json = async (url: string) => {
        const res = await fetch(url).catch(() => undefined);
        return res?.ok ? ((await res.json()) as Record<string, unknown>) : undefined;
      };
      await waitFor(
        async () => {
          if (gone) throw new Error('npm start exited');
          const [article, cdc, invalidator] = await Promise.all([
            json(`http://127.0.0.1:${ports.api}/v1/articles/1`),
            json(`http://127.0.0.1:${ports.cdcMetrics}/healthz`),
            json(`http://127.0.0.1:${ports.invalidatorMetrics}/healthz`),
          ]);
          return article !== undefined && cdc?.state === 'streaming' && invalidator?.status === 'ok';
        },
        { timeoutMs, intervalMs: 100, what: 'the API, the CDC and the invalidator of npm start' },
      ).catch((error: unknown) => {
        throw new Error(`npm start is not serving:\n${out}`, { cause: error });
      });
      return ports;
    },
  };
}

/** Live processes whose environment carries WALCACHE_TEST_RUN=<mark> (zombies excluded). */
export function processesMarked(mark: string): number[] {
  const needle = `WALCACHE_TEST_RUN=${mark}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, 'latin1').includes(needle)) continue;
      const state = readFileSync(`/proc/${entry}/stat`, 'latin1').replace(/^.*\) /s, '')[0];
      if (state !== 'Z' && state !== 'X') pids.push(Number(entry));
    } catch {
      // Gone while we looked, or not ours to read.
    }
  }
  return pids;
}

/** A test's last resort in its cleanup: SIGKILL the processes of this run (by pid, none other). */
export function killMarked(run: NpmStart): void {
  for (const pid of run.processes()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
