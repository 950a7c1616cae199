import { redactSecrets } from '@walcache/config';
import { type DestinationStream, type Logger, type LoggerOptions, pino, stdSerializers } from 'pino';
import { type SafeDestination, safeDestination } from './destination.ts';

/**
 * The field names every walcache app uses for the same things, so one query finds them in
 * every app's logs. docs/operations.md lists them; add a name here before using a new one.
 */
export const logFields = {
  /** Set on every line: which app (`api`, `cdc`, `invalidator`, …) wrote it. */
  app: 'app',
  err: 'err',
  lsn: 'lsn',
  slot: 'slot',
  jobId: 'jobId',
  queue: 'queue',
  key: 'key',
  tags: 'tags',
  reqId: 'reqId',
  reason: 'reason',
} as const;

/** Variables whose values are secrets wherever they appear in a log object. */
const SECRET_KEYS = [
  'DATABASE_URL',
  'REDIS_URL',
  'QUEUE_REDIS_URL',
  'OPS_TOKEN',
  'token',
  'password',
  'authorization',
];

/** How deep the redaction walks a log object; deeper values are rare and left as they are. */
const MAX_DEPTH = 6;

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  // Only plain objects are walked: a Date, a Map or an Error keeps its own serialization
  // (errors go through the `err` serializer below).
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.includes(k) ? '***' : scrub(v, depth + 1);
  return out;
}

/**
 * One logger per process, with the same field names in every app (`logFields`). Secrets
 * never reach a log line: known secret fields are censored at any depth, and every string
 * (message, fields, error messages and stacks) has URL passwords removed.
 */
export function createLogger(
  app: string,
  options: { level?: string; destination?: DestinationStream } = {},
): Logger {
  const config: LoggerOptions = {
    name: app,
    level: options.level ?? 'info',
    base: { app, pid: process.pid },
    redact: {
      paths: [
        ...SECRET_KEYS,
        ...SECRET_KEYS.map((k) => `*.${k}`),
        'req.headers.authorization',
        'req.headers.cookie',
      ],
      censor: '***',
    },
    serializers: {
      err: (error: Error) => {
        // The serialized error has its own prototype: copy its fields to walk them.
        const s = stdSerializers.err(error);
        // node-postgres puts the whole Client (socket, pool state, config) on connection
        // errors: hundreds of lines per "connection lost" warning, none of them useful.
        const { client: _client, ...fields } = s as typeof s & { client?: unknown };
        // ioredis puts the failed command on its errors: for AUTH (and HELLO … AUTH) its
        // arguments are the user and the password.
        const command = (fields as { command?: { name?: unknown; args?: unknown } }).command;
        if (command && typeof command.name === 'string' && /^(auth|hello)$/i.test(command.name))
          (fields as { command?: unknown }).command = { name: command.name, args: ['***'] };
        return scrub(fields, 0) as typeof s;
      },
    },
    formatters: {
      log: (object) => scrub(object, 0) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>,
        );
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(config, options.destination ?? stdout());
}

let sharedStdout: SafeDestination | undefined;

/** One stdout destination per process; what is still pending gets one last try at exit. */
function stdout(): SafeDestination {
  if (!sharedStdout) {
    const destination = safeDestination(1);
    process.on('exit', () => destination.flushOnce());
    sharedStdout = destination;
  }
  return sharedStdout;
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
