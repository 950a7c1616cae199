import {
  type Env,
  isClusterUrl,
  permanentConnectionFailure,
  type RedisTarget,
  redactUrl,
  redisTarget,
} from '@walcache/config';
import { createRedisClient, QUEUE_PREFIX, type RedisClient, type RedisClientOptions } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { type CompiledConfig, type Db, loadCompiledConfig } from '@walcache/resources';
import { Queue } from 'bullmq';
import { CliError, exitCodes } from './errors.ts';

/**
 * The clients a command needs, created on first use (a `flush` never opens a Postgres
 * connection) and closed once by main. The only place the CLI connects.
 */
export class Clients {
  // Promises, not clients: two commands steps asking at once must share one connection.
  private cacheClient: Promise<RedisClient> | undefined;
  private queueClient: Promise<RedisClient> | undefined;
  private queueInstance: Promise<Queue> | undefined;
  private pool: ReturnType<typeof createPool> | undefined;
  private dbInstance: Promise<Db> | undefined;
  private compiled: Promise<CompiledConfig> | undefined;

  constructor(readonly env: Env) {}

  cache(): Promise<RedisClient> {
    this.cacheClient ??= targetOf(this.env, 'REDIS_URL').then((target) =>
      connectRedis(createRedisClient(target, oneShot('walcache-cli')), this.env, 'REDIS_URL'),
    );
    return this.cacheClient;
  }

  queueRedis(): Promise<RedisClient> {
    if (this.env.QUEUE_REDIS_URL === this.env.REDIS_URL) return this.cache();
    this.queueClient ??= targetOf(this.env, 'QUEUE_REDIS_URL').then((target) =>
      connectRedis(createRedisClient(target, oneShot('walcache-cli-queue')), this.env, 'QUEUE_REDIS_URL'),
    );
    return this.queueClient;
  }

  queue(): Promise<Queue> {
    this.queueInstance ??= this.queueRedis().then(
      (connection) => new Queue(this.env.QUEUE_NAME, { connection, prefix: QUEUE_PREFIX }),
    );
    return this.queueInstance;
  }

  db(): Promise<Db> {
    this.dbInstance ??= this.connectDb();
    return this.dbInstance;
  }

  /** The pg Pool behind db(), for catalog reads and plain SQL. */
  async pg(): Promise<ReturnType<typeof createPool>> {
    await this.db();
    return this.pool!;
  }

  /** The deployment's resources: the config compiled against the database's catalog. */
  resources(): Promise<CompiledConfig> {
    this.compiled ??= this.db().then(() =>
      loadCompiledConfig(
        { config: this.env.WALCACHE_CONFIG, example: this.env.WALCACHE_EXAMPLE },
        this.pool!,
      ).catch((error: unknown) => {
        throw new CliError(message(error), exitCodes.config, { cause: error });
      }),
    );
    return this.compiled;
  }

  private async connectDb(): Promise<Db> {
    const pool = createPool({
      connectionString: this.env.DATABASE_URL,
      max: 2,
      applicationName: 'walcache-cli',
    });
    this.pool = pool;
    pool.on('error', () => undefined); // an idle client dropping is harmless for a one-shot command
    const client = await pool.connect().catch((error: unknown) => {
      const permanent = permanentConnectionFailure(error, 'DATABASE_URL', 'postgres');
      if (permanent) throw new CliError(permanent.message, exitCodes.config, { cause: error });
      throw new CliError(
        `cannot reach PostgreSQL (DATABASE_URL): ${message(error)}. Is it running, and is DATABASE_URL right?`,
        exitCodes.unavailable,
        { cause: error },
      );
    });
    client.release();
    return createDb(pool);
  }

  /** Closes whatever was opened; a client that failed to connect has nothing to close. */
  async close(): Promise<void> {
    const opened = <T>(p: Promise<T> | undefined): Promise<T | undefined> =>
      p ? p.catch(() => undefined) : Promise.resolve(undefined);
    await (await opened(this.queueInstance))?.close();
    const [cache, queueRedis] = await Promise.all([opened(this.cacheClient), opened(this.queueClient)]);
    await Promise.allSettled([cache?.quit(), queueRedis?.quit(), this.pool?.end()]);
  }
}

async function targetOf(env: Env, variable: 'REDIS_URL' | 'QUEUE_REDIS_URL'): Promise<RedisTarget> {
  try {
    return redisTarget(env[variable], env);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), exitCodes.config, {
      cause: error,
    });
  }
}

/** A one-shot command fails at once rather than retrying in the background. */
function oneShot(name: string): RedisClientOptions {
  return {
    lazyConnect: true,
    // The operator gets the reason in seconds. 3 s covers a slow network, not a dead server.
    connectTimeout: 3_000,
    maxRetriesPerRequest: null,
    retryStrategy: () => null,
    connectionName: name,
  };
}

async function connectRedis<C extends RedisClient>(
  redis: C,
  env: Env,
  variable: 'REDIS_URL' | 'QUEUE_REDIS_URL',
): Promise<C> {
  const url = env[variable];
  let lastError: unknown;
  redis.on('error', (error) => {
    lastError = error;
  });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const permanent = permanentConnectionFailure(lastError ?? error, variable, 'redis');
    if (permanent) throw new CliError(permanent.message, exitCodes.config, { cause: error });
    throw new CliError(
      `cannot reach Redis at ${redactedHost(url)} (${variable}): ${message(lastError ?? error)}. Is it running, and is ${variable} right?`,
      exitCodes.unavailable,
      { cause: error },
    );
  }
  return redis;
}

function redactedHost(url: string): string {
  // A cluster URL lists its seeds, which URL cannot parse as one host.
  if (isClusterUrl(url)) return redactUrl(url);
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(unparsable URL)';
  }
}

function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  return error instanceof Error ? error.message || error.name : String(error);
}
