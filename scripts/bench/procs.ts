import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@walcache/testkit';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Each child's output, one file per name (appended across the run's restarts of it). */
export const logDir = join(root, 'bench-output', 'logs');

const started = performance.now();
/** A progress line on stderr, with the seconds since the bench started. */
export function progress(message: string): void {
  process.stderr.write(
    `[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`,
  );
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** The last lines it printed (stdout and stderr), for error messages. */
  output(): string;
  /** Everything it printed on stdout (the machine-readable results of the bench's own children). */
  stdout(): string;
  /** Resolves with the exit code (or 1 on a signal) once it exited. */
  readonly exited: Promise<number>;
}

/**
 * `WALCACHE_BENCH_CPU_PROF=<dir>`: every Node process the bench starts writes a V8 CPU profile
 * there when it exits (`<name>.<n>.cpuprofile`; open it in Chrome DevTools or speedscope).
 * Node refuses `--cpu-prof` in NODE_OPTIONS, so the bench passes it itself. Profiling costs
 * every process some CPU: figures of such a run are for finding where time goes, not for
 * BENCHMARKS.md.
 */
let profiled = 0;
function profilerFlags(name: string, command: string): string[] {
  const dir = process.env.WALCACHE_BENCH_CPU_PROF;
  if (!dir || command !== process.execPath) return [];
  profiled += 1;
  const file = `${name.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '')}.${profiled}.cpuprofile`;
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${file}`];
}

/**
 * Every process the bench started, and only those: stopped by PID on exit, on SIGINT or
 * SIGTERM, and on a crash of the bench itself.
 */
export class Children {
  private readonly children = new Set<Child>();

  /** A TypeScript entry run as `node --import tsx file` — one process, so its PID is the app's own. */
  spawnTs(
    name: string,
    file: string,
    options: { env?: Record<string, string>; nodeFlags?: string[]; args?: string[] } = {},
  ): Child {
    return this.spawn(
      name,
      process.execPath,
      [...(options.nodeFlags ?? []), '--import', 'tsx', file, ...(options.args ?? [])],
      options.env,
    );
  }

  spawn(name: string, command: string, args: string[], env: Record<string, string> = {}): Child {
    const proc = spawn(command, [...profilerFlags(name, command), ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    let out = '';
    // Everything a child printed, kept for after the run: an error count in the report (a read
    // that failed, a 503) is explained by the app's own warning there.
    mkdirSync(logDir, { recursive: true });
    const log = createWriteStream(
      join(logDir, `${name.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '')}.log`),
      { flags: 'a' },
    );
    log.on('error', () => undefined);
    log.write(`--- ${new Date().toISOString()} ${name} started (pid ${proc.pid ?? '?'})\n`);
    proc.once('close', () => log.end());
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-8000);
      log.write(chunk);
    };
    proc.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      keep(chunk);
    });
    proc.stderr?.on('data', keep);
    // A spawn failure (command not found) arrives as an 'error' event: report it, never crash.
    proc.on('error', (error) => keep(Buffer.from(`${name}: ${error.message}\n`)));
    if (proc.pid === undefined) throw new Error(`could not start ${name} (${command} not found?)`);
    const exited = new Promise<number>((resolve) => {
      // 'close', not 'exit': stdout is fully read by then (results are its last line).
      proc.once('close', (code) => {
        this.children.delete(child);
        resolve(code ?? 1);
      });
    });
    const child: Child = { name, proc, pid: proc.pid, output: () => tail, stdout: () => out, exited };
    this.children.add(child);
    return child;
  }

  /**
   * SIGTERM (the apps close cleanly on it), then SIGKILL after `graceMs`: 10 s is the API's own
   * drain deadline, and a profiled API must exit cleanly to write its profile.
   */
  async stop(child: Child, graceMs = 10_000): Promise<number> {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return child.exited;
    child.proc.kill('SIGTERM');
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
    try {
      return await child.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c)));
  }

  /** The last output of every live child, for the error report of a failed run. */
  tails(): string {
    return [...this.children]
      .map((c) => `--- ${c.name} (pid ${c.pid}) ---\n${c.output().slice(-1500)}`)
      .join('\n');
  }

  /** Synchronous last resort for `process.on('exit')`: no waiting possible there. */
  killAllNow(): void {
    for (const child of this.children) child.proc.kill('SIGKILL');
  }
}

/** Polls an HTTP URL until it answers 200 (and `accept` agrees), or the child dies. */
export async function waitForHttp(
  child: Child,
  url: string,
  accept: (body: string) => boolean = () => true,
  // A minute: a cold start on a loaded machine (tsx compiling every app at once) takes tens of seconds.
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    async () => {
      if (child.proc.exitCode !== null) {
        throw new Error(`${child.name} exited with ${child.proc.exitCode}:\n${child.output()}`);
      }
      // Connection refused, or 503 `starting` once it took its port, is the normal answer
      // while the child starts: poll again.
      const res = await fetch(url).catch(() => undefined);
      if (!res) return false;
      const body = await res.text();
      return res.ok && accept(body);
    },
    // Every 100 ms: start-up takes seconds (tsx compiles the app), finer polling buys nothing.
    { timeoutMs, intervalMs: 100, what: `${child.name} at ${url}` },
  ).catch((error: unknown) => {
    throw new Error(`${child.name} did not become ready:\n${child.output()}`, { cause: error });
  });
}

/** Runs a child to completion and returns its stdout; a non-zero exit is an error. */
export async function runToEnd(child: Child): Promise<string> {
  const code = await child.exited;
  if (code !== 0) throw new Error(`${child.name} exited with ${code}:\n${child.output()}`);
  return child.stdout();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
