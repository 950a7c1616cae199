import { freePort } from '@walcache/testkit';
import { programArgs, type RunFrom } from '../../build.ts';
import type { BenchProfile } from '../config.ts';
import { median } from '../lag.ts';
import { type Children, progress, sleep } from '../procs.ts';
import type { StartupResult, StartupRow } from '../results.ts';
import { appEnv, type Servers } from '../stack.ts';
import { memoryMiB } from '../sys.ts';

const APPS = ['api', 'cdc', 'invalidator'] as const;
type App = (typeof APPS)[number];
const FROM: RunFrom[] = ['bundle', 'sources'];

/** Why 5 ms: start-up takes hundreds of ms; a 5 ms poll adds at most that to each figure. */
const POLL_MS = 5;
/** Why 2 s: idle once ready, the app's start-up garbage is collected and its RSS settles. */
const SETTLE_MS = 2_000;
/** A start that has not answered in 60 s is broken, not slow. */
const START_TIMEOUT_MS = 60_000;

/**
 * Each app started from its bundle and from its sources (tsx), in turn, round after round:
 * the time from spawn to its HTTP port's first answer (any status: the 503 `starting` its
 * entry answers while it starts), the time from spawn to ready, and its RSS once it is
 * ready (the CDC streaming) and has been idle for SETTLE_MS. Runs before the bench's own
 * stack, with the bench's names: each CDC start is a restart on the existing slot, the
 * first round (created the slot, nothing in the OS page cache) is discarded.
 */
export async function startupScenario(
  children: Children,
  servers: Servers,
  profile: BenchProfile,
): Promise<StartupResult> {
  const samples = new Map<string, { listeningMs: number[]; readyMs: number[]; rssMiB: number[] }>();
  for (let round = -1; round < profile.startupRounds; round++) {
    for (const app of APPS) {
      // Alternating which goes first: a drift of the machine's speed hits both alike.
      const order = round % 2 === 0 ? FROM : [...FROM].reverse();
      for (const from of order) {
        const { listeningMs, readyMs, rssMiB } = await startOnce(children, servers, app, from);
        if (round < 0) continue;
        const key = `${app}/${from}`;
        const s = samples.get(key) ?? { listeningMs: [], readyMs: [], rssMiB: [] };
        s.listeningMs.push(listeningMs);
        s.readyMs.push(readyMs);
        s.rssMiB.push(rssMiB);
        samples.set(key, s);
      }
    }
    if (round >= 0) progress(`start-up: round ${round + 1} of ${profile.startupRounds} done`);
  }
  const rows: StartupRow[] = [];
  for (const app of APPS) {
    const bundle = samples.get(`${app}/bundle`)!;
    const sources = samples.get(`${app}/sources`)!;
    for (const [from, s] of [
      ['bundle', bundle],
      ['sources', sources],
    ] as const)
      rows.push({
        app,
        from,
        listeningMs: summary(s.listeningMs),
        readyMs: summary(s.readyMs),
        rssMiB: summary(s.rssMiB),
      });
    // Pair by pair (round i's bundle with round i's sources), then the median: holds when the
    // machine's speed drifts between rounds.
    rows.push({
      app,
      from: 'bundle / sources',
      listeningMs: summary(bundle.listeningMs.map((v, i) => v / sources.listeningMs[i]!)),
      readyMs: summary(bundle.readyMs.map((v, i) => v / sources.readyMs[i]!)),
      rssMiB: summary(bundle.rssMiB.map((v, i) => v / sources.rssMiB[i]!)),
    });
  }
  return { rounds: profile.startupRounds, settleMs: SETTLE_MS, rows };
}

async function startOnce(
  children: Children,
  servers: Servers,
  app: App,
  from: RunFrom,
): Promise<{ listeningMs: number; readyMs: number; rssMiB: number }> {
  const [api, cdc, invalidator] = [await freePort(), await freePort(), await freePort()];
  const env = appEnv(servers, { api, cdc, invalidator });
  const port = { api, cdc, invalidator }[app];
  const url = `http://127.0.0.1:${port}/healthz`;
  const spawnedAt = performance.now();
  const child = children.spawn(`${app}-${from}`, process.execPath, programArgs(app, from), env);
  try {
    let listeningMs: number | undefined;
    for (;;) {
      if (child.proc.exitCode !== null) throw new Error(`${app} (${from}) exited:\n${child.output()}`);
      if (performance.now() - spawnedAt > START_TIMEOUT_MS)
        throw new Error(`${app} (${from}) did not answer in ${START_TIMEOUT_MS} ms:\n${child.output()}`);
      const res = await fetch(url).catch(() => undefined);
      if (res) {
        listeningMs ??= performance.now() - spawnedAt;
        const body = await res.text();
        if (res.ok && (app !== 'cdc' || body.includes('"streaming"'))) break;
      }
      await sleep(POLL_MS);
    }
    const readyMs = performance.now() - spawnedAt;
    await sleep(SETTLE_MS);
    const rssMiB = memoryMiB(child.pid);
    if (rssMiB === undefined) throw new Error(`${app} (${from}) is gone before its RSS was read`);
    return { listeningMs, readyMs, rssMiB };
  } finally {
    await children.stop(child);
  }
}

function summary(values: number[]): { p50: number; min: number; max: number } {
  return { p50: median(values), min: Math.min(...values), max: Math.max(...values) };
}
