import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

/** Linux clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on every common kernel). */
const CLK_TCK = 100;

/** CPU microseconds (user + system) a process used so far; NaN once it is gone. */
export function cpuMicros(pid: number): number {
  return (cpuSeconds(pid) ?? Number.NaN) * 1_000_000;
}

/** CPU seconds (user + system) a process used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch (error) {
    if (
      (error as NodeJS.ErrnoException).code === 'ENOENT' ||
      (error as NodeJS.ErrnoException).code === 'ESRCH'
    )
      return undefined;
    throw error;
  }
}

/**
 * Memory of a process in MiB: RSS, or PSS where shared pages must not be counted twice
 * (the Postgres processes all map the same shared buffers).
 */
export function memoryMiB(pid: number, kind: 'rss' | 'pss' = 'rss'): number | undefined {
  try {
    if (kind === 'rss') {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : undefined;
    }
    const m = /Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Direct children of a process (the Postgres backends of a postmaster). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch (error) {
      // A process that exited between readdir and read is simply not a child any more.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return out;
}

/** A named group of processes measured together (Postgres = postmaster + its backends). */
export interface ProcessGroup {
  name: string;
  pids(): number[];
  memory: 'rss' | 'pss';
}

export function groupMemoryMiB(group: ProcessGroup): number {
  return group.pids().reduce((sum, pid) => sum + (memoryMiB(pid, group.memory) ?? 0), 0);
}

/** Busy and total jiffies of the whole machine (every process, the bench's or anyone's). */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return { busy, total: busy + (idle ?? 0) + (iowait ?? 0) };
}

/** The key under which a CPU map carries the whole machine's use (% of one core, all cores summed). */
export const MACHINE = 'machine';

/**
 * CPU use of each group between `start()` and `stop()`, as a percentage of one core, plus
 * the whole machine's (`MACHINE`): the difference is other work on a shared machine.
 */
export function cpuMeter(groups: ProcessGroup[]) {
  // Per PID, not per group sum: a Postgres backend that exits takes its CPU time with it,
  // which would make a group's sum go down. A PID born during the run counts from zero.
  const snapshot = (g: ProcessGroup) => new Map(g.pids().map((pid) => [pid, cpuSeconds(pid) ?? 0]));
  const begin = new Map(groups.map((g) => [g.name, snapshot(g)]));
  const machine0 = machineJiffies();
  const t0 = performance.now();
  return {
    stop(): Record<string, number> {
      const seconds = (performance.now() - t0) / 1000;
      const machine1 = machineJiffies();
      const share = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
      const used = (g: ProcessGroup) => {
        const before = begin.get(g.name) ?? new Map<number, number>();
        let sum = 0;
        for (const [pid, now] of snapshot(g)) sum += Math.max(0, now - (before.get(pid) ?? 0));
        return sum;
      };
      return {
        ...Object.fromEntries(groups.map((g) => [g.name, Math.round((used(g) / seconds) * 100)])),
        [MACHINE]: Math.round(share * cpus().length * 100),
      };
    },
  };
}

/** Samples memory of each group every `intervalMs` and keeps the maximum. */
export function memorySampler(groups: ProcessGroup[], intervalMs = 500) {
  const max = new Map<string, number>();
  const sample = () => {
    for (const g of groups) max.set(g.name, Math.max(max.get(g.name) ?? 0, groupMemoryMiB(g)));
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop(): Record<string, number> {
      clearInterval(timer);
      sample();
      return Object.fromEntries([...max].map(([k, v]) => [k, Math.round(v)]));
    },
  };
}

export interface MachineInfo {
  cpuModel: string;
  cpuCount: number;
  memoryGiB: number;
  node: string;
  postgres: string;
  redis: string;
  loadGenerator: string;
  os: string;
  /** 1-minute load average when the bench started: other work on the machine shows here. */
  loadAverageAtStart: number;
}

export function machineInfo(postgres: string, redisVersion: string, loadGenerator: string): MachineInfo {
  const list = cpus();
  let os: string = process.platform;
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    os = /PRETTY_NAME="([^"]+)"/.exec(release)?.[1] ?? os;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    postgres,
    redis: redisVersion,
    loadGenerator,
    os: `${os} (kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()})`,
    loadAverageAtStart: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}
