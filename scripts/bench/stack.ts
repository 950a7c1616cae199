import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDb, createPool } from '@walcache/db';
import {
  freePort,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
} from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { blogExample, type SeedSize } from '../../examples/blog/index.ts';
import { compileBlog } from '../../test/support/blog.ts';
import { programArgs, type RunFrom } from '../build.ts';
import { type Child, type Children, progress, waitForHttp } from './procs.ts';
import { childPids, type ProcessGroup } from './sys.ts';

/** Names private to the bench: nothing here can collide with a developer's running stack. */
export const BENCH_NAMES = {
  SLOT_NAME: 'walcache_bench',
  PUBLICATION_NAME: 'walcache_bench',
  QUEUE_NAME: 'bench-invalidate',
  CACHE_PREFIX: 'wcb',
} as const;

export interface Servers {
  pg: PostgresServer;
  redis: RedisServer;
  postgresVersion: string;
  redisVersion: string;
  /** The postmaster and its backends (memory as PSS: they share the buffer pool). */
  postgresGroup: ProcessGroup;
  redisGroup: ProcessGroup;
  stop(): Promise<void>;
}

export async function startServers(seed: SeedSize): Promise<Servers> {
  progress('starting a private Postgres (wal_level=logical) and Redis');
  const [pgServer, redis] = await Promise.all([
    startPostgres({
      // The test servers run synchronous_commit=off; then the WAL sender only sees a commit
      // when the WAL writer flushes it (wal_writer_delay, 200 ms), which would add up to
      // 200 ms to every invalidation. Production runs with the default: on.
      extraFlags: ['-c', 'synchronous_commit=on'],
    }),
    startRedis(),
  ]);
  const servers = {
    pg: pgServer,
    redis,
    stop: async () => {
      await Promise.allSettled([pgServer.stop(), redis.stop()]);
    },
  };
  try {
    const pool = createPool({ connectionString: pgServer.url });
    const db = createDb(pool);
    progress(
      `migrating and seeding ${seed.users} users, ${seed.articles} articles, ${seed.articles * seed.commentsPerArticle} comments`,
    );
    await blogExample.setup(db, seed);
    await compileBlog(pool);
    const { rows } = await pool.query<{ server_version: string }>('show server_version');
    const sync = await pool.query<{ synchronous_commit: string }>('show synchronous_commit');
    if (sync.rows[0]?.synchronous_commit !== 'on') throw new Error('expected synchronous_commit=on');
    await db.destroy();
    const client = new Redis(redis.url);
    const info = await client.info('server');
    client.disconnect();
    const postmasterPid = Number(
      readFileSync(join(pgServer.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    return {
      ...servers,
      postgresVersion: rows[0]?.server_version ?? 'unknown',
      redisVersion: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
      postgresGroup: {
        name: 'postgres',
        memory: 'pss',
        pids: () => [postmasterPid, ...childPids(postmasterPid)],
      },
      redisGroup: { name: 'redis', memory: 'rss', pids: () => (redis.pid ? [redis.pid] : []) },
    };
  } catch (error) {
    await servers.stop();
    throw error;
  }
}

export interface Apps {
  apiUrl: string;
  api: Child;
  cdc: Child;
  invalidator: Child;
  baselineUrl: string;
  baseline: Child;
  env: Record<string, string>;
}

export function appEnv(servers: Servers, ports: { api: number; cdc: number; invalidator: number }) {
  return {
    DATABASE_URL: servers.pg.url,
    REDIS_URL: servers.redis.url,
    HOST: '127.0.0.1',
    PORT: String(ports.api),
    CDC_METRICS_PORT: String(ports.cdc),
    INVALIDATOR_METRICS_PORT: String(ports.invalidator),
    // warn: a log line per request would measure pino, not the cache.
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    ...BENCH_NAMES,
  };
}

/**
 * Starts the API under test in its own process and waits for /healthz: from its bundle, as it
 * ships, or (the profile) from its sources, so that each function's file names its package.
 */
export async function startApiChild(
  children: Children,
  env: Record<string, string>,
  options: { name?: string; nodeFlags?: string[]; from?: RunFrom } = {},
): Promise<{ child: Child; url: string }> {
  const { name = 'api', nodeFlags = [], from = 'bundle' } = options;
  const child = children.spawn(name, process.execPath, [...nodeFlags, ...programArgs('api', from)], env);
  const url = `http://127.0.0.1:${env.PORT}`;
  await waitForHttp(child, `${url}/healthz`);
  return { child, url };
}

/**
 * The three walcache processes, from their bundles (what `npm start` and the image run; build
 * them first), and the comparison server, each a real child process.
 */
export async function startApps(children: Children, servers: Servers): Promise<Apps> {
  const [api, cdc, invalidator, baseline] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const env = appEnv(servers, { api, cdc, invalidator });
  progress('starting cdc, invalidator, api and the baseline server (each its own process)');
  // The CDC first: it creates the slot (and flushes the empty namespace) before anything is cached.
  const cdcChild = children.spawn('cdc', process.execPath, programArgs('cdc', 'bundle'), env);
  await waitForHttp(cdcChild, `http://127.0.0.1:${cdc}/healthz`, (b) => b.includes('"streaming"'));
  const invalidatorChild = children.spawn(
    'invalidator',
    process.execPath,
    programArgs('invalidator', 'bundle'),
    env,
  );
  const baselineChild = children.spawnTs('baseline', 'scripts/bench/servers/baseline.ts', {
    env: { DATABASE_URL: servers.pg.url, REDIS_URL: servers.redis.url, PORT: String(baseline) },
  });
  const [apiStarted] = await Promise.all([
    startApiChild(children, env),
    waitForHttp(invalidatorChild, `http://127.0.0.1:${invalidator}/healthz`),
    waitForHttp(baselineChild, `http://127.0.0.1:${baseline}/healthz`),
  ]);
  return {
    apiUrl: apiStarted.url,
    api: apiStarted.child,
    cdc: cdcChild,
    invalidator: invalidatorChild,
    baselineUrl: `http://127.0.0.1:${baseline}`,
    baseline: baselineChild,
    env,
  };
}

/** A group of one child process (memory as RSS). */
export function childGroup(name: string, child: () => Child | undefined): ProcessGroup {
  return {
    name,
    memory: 'rss',
    pids: () => {
      const c = child();
      return c && c.proc.exitCode === null ? [c.pid] : [];
    },
  };
}

/** A plain pg client for the bench's own queries (lag probe, setup writes). */
export async function pgClient(url: string, name: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: name });
  client.on('error', (err) => progress(`${name} connection error: ${err.message}`));
  await client.connect();
  return client;
}
