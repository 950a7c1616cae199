import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type Env, parseEnv } from '@walcache/config';
import { createDb, createPool } from '@walcache/db';
import { createLogger, silentLogger } from '@walcache/observability';
import { type PostgresServer, type RedisServer, startPostgres, startRedis, waitFor } from '@walcache/testkit';
import pg from 'pg';
import { destination } from 'pino';
import { expect } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { blogExample, type SeedSize } from '../../examples/blog/index.ts';
import { compileBlog } from './blog.ts';
import { createLeastPrivilegeRole } from './roles.ts';

export interface Servers {
  pg: PostgresServer;
  redis: RedisServer;
  stop(): Promise<void>;
}

/**
 * Private Postgres + Redis with the blog example's schema and data (small by default: tests
 * need rows, not volume), and the blog's resources compiled against it (test/support/blog.ts).
 */
export async function startServers(
  seed: SeedSize | false = { users: 50, articles: 200, tags: 10, commentsPerArticle: 2 },
  redisOptions: Parameters<typeof startRedis>[0] = {},
): Promise<Servers> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis(redisOptions)]);
  const pool = createPool({ connectionString: pg.url });
  const db = createDb(pool);
  await blogExample.setup(db, seed);
  await compileBlog(pool);
  await db.destroy();
  return {
    pg,
    redis,
    async stop() {
      await Promise.allSettled([pg.stop(), redis.stop()]);
    },
  };
}

/** An environment for the apps against the given servers, with names unique to this test. */
export function testEnv(servers: Servers, overrides: Record<string, string> = {}): Env {
  const id = randomBytes(4).toString('hex');
  return parseEnv({
    DATABASE_URL: servers.pg.url,
    REDIS_URL: servers.redis.url,
    PORT: '0',
    HOST: '127.0.0.1',
    CDC_METRICS_PORT: '0',
    INVALIDATOR_METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
    SLOT_NAME: `walcache_${id}`,
    PUBLICATION_NAME: `walcache_${id}`,
    QUEUE_NAME: `invalidate-${id}`,
    CACHE_PREFIX: `wc${id}`,
    ...overrides,
  });
}

export interface Stack {
  env: Env;
  api: Awaited<ReturnType<typeof startApi>>;
  cdc: Awaited<ReturnType<typeof startCdc>>;
  invalidator: Awaited<ReturnType<typeof startInvalidator>>;
  /** Database checkouts by the API since start: a hit must not add any. */
  apiQueries(): number;
  stop(): Promise<void>;
}

/**
 * The apps' logs are silent in tests; `WALCACHE_TEST_LOG=debug` (or any pino level) prints
 * them to stderr, to see what an app did in a test that failed. `WALCACHE_TEST_LOG_DIR=D`
 * writes them (at info unless `WALCACHE_TEST_LOG` says otherwise) to one file per test file,
 * `D/<test file>.log`: for a failure that only the full suite shows, where stderr interleaves.
 */
export const appLogger = (app: string) => {
  const dir = process.env.WALCACHE_TEST_LOG_DIR;
  const level = process.env.WALCACHE_TEST_LOG ?? (dir ? 'info' : undefined);
  if (!level) return silentLogger();
  const dest = dir ? join(dir, `${basename(expect.getState().testPath ?? `pid-${process.pid}`)}.log`) : 2;
  if (dir) mkdirSync(dir, { recursive: true });
  return createLogger(app, { level, destination: destination({ dest, sync: true, append: true }) });
};

/** The three apps through their real entry functions, in this process. */
export async function startStack(
  servers: Servers,
  overrides: Record<string, string> = {},
  cdcOptions = {},
): Promise<Stack> {
  const env = testEnv(servers, overrides);
  let queries = 0;
  const api = await startApi(env, appLogger('api'), {
    onPool: (pool) => pool.on('acquire', () => (queries += 1)),
  });
  const cdc = await startCdc(env, appLogger('cdc'), { heartbeatIntervalMs: 500, ...cdcOptions });
  const invalidator = await startInvalidator(env, appLogger('invalidator'));
  return {
    env,
    api,
    cdc,
    invalidator,
    apiQueries: () => queries,
    async stop() {
      await Promise.allSettled([api.close(), cdc.close(), invalidator.close()]);
    },
  };
}

export interface LiveSystem {
  servers: Servers;
  stack: Stack;
  /** A plain pg client that knows nothing of walcache: the writer every such test needs. */
  writer: pg.Client;
  stop(): Promise<void>;
}

/** Servers, the three apps with the CDC streaming, and a plain writer: one call per test file. */
export async function startLiveSystem(
  /** Environment overrides, or a function of the servers started here (their URLs). */
  overrides: Record<string, string> | ((servers: Servers) => Record<string, string>) = {},
  cdcOptions: Parameters<typeof startStack>[2] = {},
  options: {
    /** The apps connect as the role of docs/operations.md ("Least privilege"), not the superuser. */
    leastPrivilege?: boolean;
  } = {},
): Promise<LiveSystem> {
  const servers = await startServers();
  const roleOverrides: Record<string, string> = {};
  if (options.leastPrivilege) {
    const id = randomBytes(4).toString('hex');
    const publication = `walcache_lp_${id}`;
    const role = await createLeastPrivilegeRole(servers.pg.url, {
      role: `walcache_app_${id}`,
      password: randomBytes(12).toString('hex'),
      publication,
    });
    Object.assign(roleOverrides, { DATABASE_URL: role.url, PUBLICATION_NAME: publication });
  }
  const own = typeof overrides === 'function' ? overrides(servers) : overrides;
  const stack = await startStack(servers, { ...roleOverrides, ...own }, cdcOptions);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  const writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  return {
    servers,
    stack,
    writer,
    async stop() {
      await writer.end().catch(() => undefined); // a test may have ended it already
      await stack.stop();
      await servers.stop();
    },
  };
}
