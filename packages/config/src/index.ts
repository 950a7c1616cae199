import { accessSync, constants, readFileSync } from 'node:fs';
import { z } from 'zod';
import { clusterUrlProblem, isClusterUrl } from './connections.ts';
import { redactUrl } from './redact.ts';

export {
  ConnectionConfigError,
  clusterUrlProblem,
  isClusterUrl,
  permanentConnectionFailure,
  type RedisConnectionOptions,
  type RedisSeed,
  type RedisTarget,
  type RedisTlsFiles,
  redisConnectionOptions,
  redisTarget,
  redisUrlVariable,
} from './connections.ts';
export { redactSecrets, redactUrl } from './redact.ts';

/** A path to a file this process can read (certificates, keys, secrets mounted as files). */
const readableFile = z.string().refine(
  (path) => {
    try {
      accessSync(path, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'cannot read this file (missing, or no permission)' },
);

import { configArgs } from './choice.ts';

/**
 * One Redis server (`redis://`, `rediss://` with TLS) or a Redis Cluster by its seed nodes
 * (`redis+cluster://h1:p1,h2:p2`, `rediss+cluster://` with TLS); connections.ts parses both.
 */
const redisUrl = z.string().superRefine((value, ctx) => {
  if (isClusterUrl(value)) {
    const problem = clusterUrlProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    return;
  }
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:')
    ctx.addIssue({
      code: 'custom',
      message:
        'expected a redis:// or rediss:// (TLS) URL, or redis+cluster://host:port,… for a Redis Cluster',
    });
});

/**
 * The environment of every walcache process, parsed once in each app's `main.ts`.
 * Defaults are the embedded development setup; production sets the URLs explicitly.
 */
export const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// URL' }),
    REDIS_URL: redisUrl,
    /** The queue may live on its own Redis (noeviction) while the cache Redis evicts (LRU). */
    QUEUE_REDIS_URL: redisUrl.optional(),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('0.0.0.0'),
    /** Ops routes (/ops/*) are mounted only when a token is set. */
    OPS_TOKEN: z.string().min(8, 'must be at least 8 characters').optional(),
    /** The ops token read from a file (a mounted container secret); trailing newlines are dropped. */
    OPS_TOKEN_FILE: readableFile.optional(),
    /** CA certificate(s) that sign the Redis servers' certificates (rediss:// URLs); default: the system CAs. */
    REDIS_TLS_CA_FILE: readableFile.optional(),
    /** Client certificate and its key, for a Redis that requires them (`tls-auth-clients yes`). */
    REDIS_TLS_CERT_FILE: readableFile.optional(),
    REDIS_TLS_KEY_FILE: readableFile.optional(),
    CDC_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
    INVALIDATOR_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9466),
    SLOT_NAME: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _ only (a replication slot name)')
      .default('walcache'),
    PUBLICATION_NAME: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier')
      .default('walcache'),
    /** Every Redis key walcache writes starts with this prefix, so a flush can find them all. */
    CACHE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,32}$/, 'letters, digits, _ . - only')
      .default('wc'),
    QUEUE_NAME: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ - only (BullMQ forbids ":")')
      .default('invalidate'),
    CACHE_TTL_SECONDS: z.coerce.number().int().positive().default(3600),
    NEGATIVE_TTL_SECONDS: z.coerce.number().int().positive().default(30),
    /**
     * How often an invalidator sweeps the tag index of members whose value expired or was
     * evicted (docs/architecture.md, "Memory pressure"); 0 turns the sweeper off.
     */
    TAG_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(60),
    /**
     * How long a read whose read-your-writes token is ahead of the watermark waits for it
     * before answering from Postgres (docs/api.md, "Read your writes").
     */
    RYW_WAIT_MS: z.coerce.number().int().min(0).max(10_000).default(50),
    // Why 32: a job mostly waits (a visibility query, two Redis round trips); with 8, jobs at
    // 1 000 commits/s queued for a free slot (commit → deleted p99 ~2x of 32's, docs/benchmarks.md).
    // The database pool (10) still bounds the queries they make at once.
    INVALIDATOR_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(32),
    /** The config file to serve (docs/config.md); unset: the example below. */
    WALCACHE_CONFIG: z.string().min(1).optional(),
    /** A bundled example (examples/<name>) to serve when no config file is named; default blog. */
    WALCACHE_EXAMPLE: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/, 'the name of a folder under examples/')
      .optional(),
  })
  .superRefine((env, ctx) => {
    const tlsFiles = (['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'] as const).filter(
      (name) => env[name] !== undefined,
    );
    const urls = [env.REDIS_URL, env.QUEUE_REDIS_URL ?? env.REDIS_URL];
    if (tlsFiles.length > 0 && !urls.some((u) => /^rediss[:+]/.test(u))) {
      ctx.addIssue({
        code: 'custom',
        path: [tlsFiles[0] as string],
        message: 'is set but no Redis URL uses TLS: write rediss:// in REDIS_URL / QUEUE_REDIS_URL',
      });
    }
    if ((env.REDIS_TLS_CERT_FILE === undefined) !== (env.REDIS_TLS_KEY_FILE === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.REDIS_TLS_CERT_FILE === undefined ? 'REDIS_TLS_CERT_FILE' : 'REDIS_TLS_KEY_FILE'],
        message: 'a client certificate needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE',
      });
    }
    if (env.OPS_TOKEN !== undefined && env.OPS_TOKEN_FILE !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['OPS_TOKEN_FILE'],
        message: 'set either OPS_TOKEN or OPS_TOKEN_FILE, not both',
      });
    }
  })
  .transform((env, ctx) => {
    let opsToken = env.OPS_TOKEN;
    if (env.OPS_TOKEN_FILE !== undefined) {
      opsToken = readFileSync(env.OPS_TOKEN_FILE, 'utf8').replace(/\s+$/, '');
      if (opsToken.length < 8) {
        ctx.issues.push({
          code: 'custom',
          path: ['OPS_TOKEN_FILE'],
          message: 'the token in this file must be at least 8 characters',
          input: env.OPS_TOKEN_FILE,
        });
        return z.NEVER;
      }
    }
    return { ...env, OPS_TOKEN: opsToken, QUEUE_REDIS_URL: env.QUEUE_REDIS_URL ?? env.REDIS_URL };
  });

export type Env = z.output<typeof envSchema>;

export class ConfigError extends Error {
  readonly code = 'WALCACHE_CONFIG';
  constructor(readonly issues: string[]) {
    super(`invalid environment:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

/** Parses an environment; throws a ConfigError naming each bad variable and what it expects. */
export function parseEnv(source: Record<string, string | undefined>): Env {
  // An empty string in a .env file means "unset", not "invalid".
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const result = envSchema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const name = issue.path.join('.') || '(environment)';
      const got = issue.path.length ? source[String(issue.path[0])] : undefined;
      const shown = got === undefined ? 'it is not set' : `got ${JSON.stringify(redactUrl(got))}`;
      return `${name}: ${issue.message} (${shown})`;
    }),
  );
}

/** For main.ts: parse or print the problem and exit, so a bad value never starts a half-configured process. */
export function loadEnvOrExit(
  source: Record<string, string | undefined> = { ...process.env, ...configArgs() },
): Env {
  try {
    return parseEnv(source);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`walcache: ${error.message}\nSee .env.example for every variable.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}

export { configArgs } from './choice.ts';
export { CONFIG_EXTENSIONS, ConfigFileError, loadConfigFile, parseConfig } from './file.ts';
export {
  type CustomResourceConfig,
  configJsonSchema,
  customResourceSchema,
  defineConfig,
  type EmbedConfig,
  type ListConfig,
  type ResourceConfig,
  type WalcacheConfig,
  type WalcacheConfigInput,
  type WarmConfig,
  walcacheConfigSchema,
} from './resources.ts';
export { CONFIG_SCHEMA_FILE, configJsonSchemaText } from './schema-file.ts';
