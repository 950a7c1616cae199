import { parseArgs } from 'node:util';
import { ConfigError, ConnectionConfigError, parseEnv, redactSecrets } from '@walcache/config';
import { isMain } from '@walcache/observability';
import { z } from 'zod';
import { flushCommand } from './commands/flush.ts';
import { initCommand } from './commands/init.ts';
import { inspectCommand } from './commands/inspect.ts';
import { replayFailedCommand } from './commands/replay.ts';
import { slotCommand } from './commands/slot.ts';
import { statusCommand } from './commands/status.ts';
import { verifyCommand } from './commands/verify.ts';
import { warmCommand } from './commands/warm.ts';
import { Clients } from './context.ts';
import { CliError, type ExitCode, exitCodes, usageError } from './errors.ts';
import { type Io, processIo } from './io.ts';

export const VERSION = '0.1.0';

export const USAGE = `walcache ${VERSION}: operate a walcache deployment (reads the same environment as the apps)

usage: walcache <command> [options]

commands:
  status                        queue, replication slot, invalidation latency, hit ratio, consistency
  inspect <key>                 a cached value with its TTL, age and tags (key: book:42)
  inspect <resource> k=v …      the same, by resource params (inspect book id=42)
  flush <resource>              delete every cached value of one resource (asks first)
  flush --all                   delete the whole cache namespace (asks first)
  replay-failed                 move every failed invalidation job back to the queue (asks first)
  slot [show]                   the replication slot: streaming?, lag, WAL retained
  slot drop | slot recreate     drop (or drop, create and flush) the slot; the CDC must be stopped
  warm [resource …]             fill what the config declares "warm" now (the invalidator does
                                after a start and a flush); values already cached stay
  init [--out F] [--force]      write a starting config from DATABASE_URL's catalog (default
       [--schema S,…]           walcache.config.yaml, schema public; never overwrites without --force)
  verify --confirm-database D   fill every resource, make random writes to every table it reads and
       [--mutations N --seed S] report each value left stale; D must be DATABASE_URL's database.
                                Needs the CDC and an invalidator running on the same environment

options:
  --json                        machine-readable output
  --yes, -y                     do not ask for confirmation (scripts)
  --api-url <url>               the API whose /metrics gives the hit ratio (default http://127.0.0.1:$PORT)
  --env-file <path>             load variables from a file first (e.g. .env)
  --help, -h    --version

environment: DATABASE_URL, REDIS_URL (required), QUEUE_REDIS_URL, CACHE_PREFIX, QUEUE_NAME,
SLOT_NAME, PORT — see .env.example.

exit codes: 0 ok · 1 failed · 2 usage · 3 refused/aborted · 4 not found · 69 Redis/Postgres
unreachable · 78 bad environment`;

const commandSchema = z.enum(
  ['status', 'inspect', 'flush', 'replay-failed', 'slot', 'init', 'verify', 'warm'],
  {
    error: (issue) => `unknown command ${JSON.stringify(issue.input)}`,
  },
);

const optionsSchema = z.object({
  json: z.boolean().default(false),
  yes: z.boolean().default(false),
  all: z.boolean().default(false),
  help: z.boolean().default(false),
  version: z.boolean().default(false),
  'api-url': z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }).optional(),
  'env-file': z.string().min(1).optional(),
  out: z.string().min(1).default('walcache.config.yaml'),
  force: z.boolean().default(false),
  schema: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_$]*(,[A-Za-z_][A-Za-z0-9_$]*)*$/, 'schema names, comma-separated')
    .default('public'),
  'confirm-database': z.string().min(1).optional(),
  mutations: z.coerce.number().int().min(1).max(100_000).default(100),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
});

/** Runs one command; returns the exit code (never calls process.exit: tests call this too). */
export async function run(argv: string[], io: Io = processIo(), source = process.env): Promise<ExitCode> {
  let clients: Clients | undefined;
  try {
    let parsed: ReturnType<typeof parseCli>;
    try {
      parsed = parseCli(argv);
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw usageError(error instanceof Error ? error.message : String(error));
    }
    const { values, positionals } = parsed;
    const options = optionsSchema.safeParse(values);
    if (!options.success)
      throw usageError(options.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; '));
    const o = options.data;
    if (o.version) {
      io.out(VERSION);
      return exitCodes.ok;
    }
    const [name, ...args] = positionals;
    if (o.help || !name) {
      io.out(USAGE);
      return o.help ? exitCodes.ok : exitCodes.usage;
    }
    const command = commandSchema.safeParse(name);
    if (!command.success) throw usageError(`${command.error.issues[0]?.message}; see walcache --help`);
    if (o.all && command.data !== 'flush') throw usageError('--all only applies to flush');

    const initOnly = ['out', 'force', 'schema'] as const;
    for (const flag of initOnly)
      if (command.data !== 'init' && values[flag] !== undefined)
        throw usageError(`--${flag} only applies to init`);
    const verifyOnly = ['confirm-database', 'mutations', 'seed'] as const;
    for (const flag of verifyOnly)
      if (command.data !== 'verify' && values[flag] !== undefined)
        throw usageError(`--${flag} only applies to verify`);

    // init reads only the database: a placeholder stands in for the Redis URLs, never connected.
    const unused = 'redis://unused.invalid:6379';
    const env = loadEnv(
      command.data === 'init' ? { ...source, REDIS_URL: unused, QUEUE_REDIS_URL: unused } : source,
      o['env-file'],
    );
    clients = new Clients(env);
    switch (command.data) {
      case 'status':
        if (args.length > 0) throw usageError('status takes no arguments');
        await statusCommand(clients, io, {
          json: o.json,
          apiUrl: o['api-url'] ?? `http://127.0.0.1:${env.PORT}`,
        });
        break;
      case 'inspect':
        await inspectCommand(clients, io, args, o);
        break;
      case 'flush':
        await flushCommand(clients, io, args, o);
        break;
      case 'replay-failed':
        if (args.length > 0) throw usageError('replay-failed takes no arguments');
        await replayFailedCommand(clients, io, o);
        break;
      case 'slot':
        await slotCommand(clients, io, args, o);
        break;
      case 'warm':
        await warmCommand(clients, io, args, o);
        break;
      case 'init':
        if (args.length > 0) throw usageError('init takes no arguments (options: --out, --force, --schema)');
        await initCommand(clients, io, { out: o.out, force: o.force, schemas: o.schema.split(',') });
        break;
      case 'verify':
        if (args.length > 0) throw usageError('verify takes no arguments');
        return await verifyCommand(clients, io, {
          confirmDatabase: o['confirm-database'],
          mutations: o.mutations,
          seed: o.seed,
          json: o.json,
        });
    }
    return exitCodes.ok;
  } catch (error) {
    // Driver messages may quote a connection string: nothing leaves the CLI unredacted.
    if (error instanceof CliError) {
      if (error.message) io.err(`walcache: ${redactSecrets(error.message)}`);
      return error.exitCode;
    }
    if (error instanceof ConnectionConfigError) {
      io.err(`walcache: ${redactSecrets(error.message)}`);
      return exitCodes.config;
    }
    io.err(
      `walcache: ${redactSecrets(error instanceof Error ? (error.stack ?? error.message) : String(error))}`,
    );
    return exitCodes.failed;
  } finally {
    await clients?.close();
  }
}

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: 'boolean' },
      yes: { type: 'boolean', short: 'y' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'api-url': { type: 'string' },
      'env-file': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      schema: { type: 'string' },
      'confirm-database': { type: 'string' },
      mutations: { type: 'string' },
      seed: { type: 'string' },
    },
  });
}

function loadEnv(source: Record<string, string | undefined>, envFile: string | undefined) {
  let merged = source;
  if (envFile) {
    const before = { ...process.env };
    try {
      process.loadEnvFile(envFile);
    } catch (error) {
      throw usageError(
        `cannot read --env-file ${envFile}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    // Values already in the environment win over the file, like the apps' .env handling.
    merged = { ...process.env, ...before, ...source };
  }
  try {
    return parseEnv(merged);
  } catch (error) {
    if (error instanceof ConfigError)
      throw new CliError(
        `${error.message}\nSet them in the environment or pass --env-file .env (see .env.example).`,
        exitCodes.config,
      );
    throw error;
  }
}

if (isMain(import.meta.url)) {
  process.exitCode = await run(process.argv.slice(2));
}
