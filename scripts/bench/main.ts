/**
 * `npm run bench [-- --quick] [-- --only reads,mixed,invalidation,ryw,precision,fanout,profile,startup,cluster]`
 *
 * Builds the bundles when stale, starts a private Postgres and Redis, times each app's start
 * from its bundle and from its sources, then starts the three walcache processes (bundles) and a comparison server
 * (each its own process), runs every scenario after a warm-up, prints a table and writes
 * BENCHMARKS.md + bench-results/latest.json (full run) or bench-results/quick.json +
 * bench-output/BENCHMARKS.quick.md (quick or partial run: the committed figures stay those of
 * a full run). Not part of `npm test`: nothing here asserts a timing.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ensureBuilt } from '../build.ts';
import { type BenchProfile, profiles } from './config.ts';
import { type Ctx, warmCaches } from './context.ts';
import { autocannonGenerator, type LoadGenerator, wrkGenerator } from './load.ts';
import { type Child, Children, logDir, progress, root } from './procs.ts';
import { consoleTable, markdown } from './report.ts';
import type { BenchResults } from './results.ts';
import { clusterScenario } from './scenarios/cluster.ts';
import { profileHitPath } from './scenarios/cpuprofile.ts';
import { fanoutScenario } from './scenarios/fanout.ts';
import { invalidationScenario } from './scenarios/invalidation.ts';
import { mixedScenario } from './scenarios/mixed.ts';
import { precisionScenario } from './scenarios/precision.ts';
import { readScenarios } from './scenarios/reads.ts';
import { rywScenario } from './scenarios/ryw.ts';
import { startupScenario } from './scenarios/startup.ts';
import { type Apps, childGroup, type Servers, startApps, startServers } from './stack.ts';
import { groupMemoryMiB, machineInfo } from './sys.ts';

const ALL = [
  'reads',
  'mixed',
  'invalidation',
  'ryw',
  'precision',
  'fanout',
  'profile',
  'startup',
  'cluster',
] as const;
type Part = (typeof ALL)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    load: { type: 'string' },
    render: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: npm run bench [-- --quick] [-- --only reads,mixed,invalidation,ryw,precision,fanout,profile,startup,cluster]\n' +
      '  --quick  every scenario, short runs (under two minutes); writes bench-results/quick.json\n' +
      '  --only   run only these parts (development); writes bench-results/quick.json\n' +
      '  --load   wrk | autocannon (default: wrk when installed)\n' +
      '  --render rewrite BENCHMARKS.md from bench-results/latest.json (after editing the report), no run\n',
  );
  process.exit(0);
}
if (values.render) {
  const latest = JSON.parse(readFileSync(join(root, 'bench-results', 'latest.json'), 'utf8')) as BenchResults;
  writeFileSync(join(root, 'BENCHMARKS.md'), markdown(latest));
  process.stdout.write('rewrote BENCHMARKS.md from bench-results/latest.json\n');
  process.exit(0);
}
const parts = new Set<Part>(
  values.only
    ? values.only.split(',').map((p) => {
        if (!(ALL as readonly string[]).includes(p))
          throw new Error(`unknown part "${p}" (one of ${ALL.join(', ')})`);
        return p as Part;
      })
    : ALL,
);
const profile: BenchProfile = profiles[values.quick ? 'quick' : 'full'];
const complete = profile.name === 'full' && parts.size === ALL.length;
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;

// This run's children's logs only (procs.ts).
rmSync(logDir, { recursive: true, force: true });
const children = new Children();
let servers: Servers | undefined;
let redis: Redis | undefined;
let cleaning: Promise<void> | undefined;

/** Stops only what this run started: its children by PID, then its private servers. */
async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await children.stopAll();
    redis?.disconnect();
    await servers?.stop();
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping every process the bench started`);
    void cleanup().finally(() => {
      progress('stopped');
      process.exit(130);
    });
  });
}
// A throw outside main's await chain (an emitter without a listener): still clean up.
process.on('uncaughtException', (error) => {
  process.stderr.write(`bench crashed: ${error.stack ?? error.message}\n`);
  void cleanup().finally(() => process.exit(1));
});
// Last resort if the bench dies without cleanup: no orphaned app or load generator.
process.on('exit', () => children.killAllNow());

async function main(): Promise<void> {
  const started = performance.now();
  progress(`profile ${profile.name}; parts: ${[...parts].join(', ')}`);
  if (values.load && values.load !== 'wrk' && values.load !== 'autocannon')
    throw new Error(`--load must be wrk or autocannon, not "${values.load}"`);
  const wrk = values.load === 'autocannon' ? undefined : wrkGenerator(children);
  if (values.load === 'wrk' && !wrk)
    throw new Error('--load wrk: wrk is not installed (apt-get install wrk)');
  if (!wrk)
    progress(
      'wrk is not installed (apt-get install wrk): autocannon drives the load and takes a core of its own',
    );
  const load: LoadGenerator =
    wrk ??
    autocannonGenerator(
      children,
      (await import('autocannon/package.json', { with: { type: 'json' } })).default.version,
    );
  progress(`load generator: ${load.name}`);
  const built = await ensureBuilt(['api', 'cdc', 'invalidator']);
  if (built.length > 0) progress(`built ${built.map((t) => `dist/${t}.mjs`).join(', ')}`);
  servers = await startServers(profile.seed);
  // Before the bench's own stack: its CDC would hold the slot each started CDC needs.
  const startup = parts.has('startup') ? await startupScenario(children, servers, profile) : undefined;
  const apps: Apps = await startApps(children, servers);
  redis = new Redis(servers.redis.url, { connectionName: 'walcache-bench' });
  const api: Child = apps.api;
  const groups: Ctx['groups'] = {
    api: childGroup('api', () => api),
    cdc: childGroup('cdc', () => apps.cdc),
    invalidator: childGroup('invalidator', () => apps.invalidator),
    baseline: childGroup('baseline', () => apps.baseline),
    postgres: servers.postgresGroup,
    redis: servers.redisGroup,
  };
  // The baseline server (Hono + ioredis + pg, nothing else) is the floor any Node service
  // started this way pays: the difference to it is walcache's own.
  const memoryGroups = [
    groups.api,
    groups.cdc,
    groups.invalidator,
    groups.postgres,
    groups.redis,
    groups.baseline,
  ];
  const atRest = Object.fromEntries(memoryGroups.map((g) => [g.name, Math.round(groupMemoryMiB(g))]));
  progress(`memory at rest (MiB): ${JSON.stringify(atRest)}`);

  const warmed = await warmCaches({ profile, children, servers, apps, redis, load, groups });
  const ctx: Ctx = { profile, children, servers, apps, redis, load, groups, ...warmed };
  const results: BenchResults = {
    date: new Date().toISOString(),
    command,
    profile: profile.name,
    readRounds: profile.rounds,
    machine: machineInfo(servers.postgresVersion, servers.redisVersion, load.name),
    notes: [],
    durationS: 0,
    http: [],
    mixed: [],
    memory: { atRest, underMixedLoad: {}, atEnd: {} },
    ...(startup ? { startup } : {}),
  };
  if (process.env.BENCH_NOTE) results.notes.push(process.env.BENCH_NOTE);
  // Half the cores already busy before the bench starts means other work shares the machine.
  if (results.machine.loadAverageAtStart > results.machine.cpuCount / 2) {
    results.notes.push(
      `The machine was not idle: its 1-minute load average was ${results.machine.loadAverageAtStart} on ${results.machine.cpuCount} cores when the bench started. The "machine CPU" columns show how much of each run's CPU went to other work.`,
    );
  }

  if (parts.has('reads')) await readScenarios(ctx, results.http);
  // While the cache still holds exactly the read data set (the mixed writes invalidate it).
  if (parts.has('profile')) {
    results.cpuProfile = await profileHitPath(ctx, 'detail');
    results.cpuProfileList = await profileHitPath(ctx, 'list');
  }
  if (parts.has('mixed')) {
    const mixed = await mixedScenario(ctx, results.http, memoryGroups);
    results.mixed.push(...mixed.results);
    results.memory.underMixedLoad = mixed.memory;
  }
  if (parts.has('invalidation')) results.invalidation = await invalidationScenario(ctx);
  if (parts.has('ryw')) results.ryw = await rywScenario(ctx);
  if (parts.has('precision')) results.precision = await precisionScenario(ctx, profile.precisionWrites);
  // Last: it moves thousands of articles under one author.
  if (parts.has('fanout')) results.fanout = await fanoutScenario(ctx);
  // Its own Redis Cluster and apps; it compares with the one-server rows above.
  if (parts.has('cluster')) results.cluster = await clusterScenario(ctx, results);

  results.memory.atEnd = Object.fromEntries(memoryGroups.map((g) => [g.name, Math.round(groupMemoryMiB(g))]));
  results.durationS = (performance.now() - started) / 1000;
  process.stdout.write(`\n${consoleTable(results)}\n\n`);
  const resultsDir = join(root, 'bench-results');
  mkdirSync(resultsDir, { recursive: true });
  mkdirSync(join(root, 'bench-output'), { recursive: true });
  if (complete) {
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(root, 'BENCHMARKS.md'), markdown(results));
    progress('wrote BENCHMARKS.md and bench-results/latest.json');
  } else {
    writeFileSync(join(resultsDir, 'quick.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(root, 'bench-output', 'BENCHMARKS.quick.md'), markdown(results));
    progress(
      'wrote bench-results/quick.json and bench-output/BENCHMARKS.quick.md (BENCHMARKS.md is kept for full runs)',
    );
  }
}

try {
  await main();
  await cleanup();
  progress(`done`);
} catch (error) {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  if (error instanceof Error && error.cause) process.stderr.write(`cause: ${String(error.cause)}\n`);
  process.stderr.write(`last output of the running children:\n${children.tails()}\n`);
  await cleanup();
  process.exit(1);
}
