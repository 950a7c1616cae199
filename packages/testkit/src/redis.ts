import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, retryWhilePortTaken, waitFor } from './ports.ts';
import { armReaper, type Reaper } from './reaper.ts';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** SIGKILL, as a crash; data survives only with `appendonly`. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir. */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  port?: number;
  /** Keep data across a kill/restart (the queue Redis in production runs with AOF). */
  appendonly?: boolean;
  maxmemory?: string;
  maxmemoryPolicy?: 'noeviction' | 'allkeys-lru' | 'volatile-lru' | 'allkeys-lfu' | 'volatile-ttl';
  binary?: string;
  /** More `redis-server` arguments, e.g. `['--enable-debug-command', 'yes']` for DEBUG RELOAD. */
  extraArgs?: string[];
  /**
   * Own process group: a terminal's Ctrl-C then does not reach the server, so the caller can
   * stop it after the processes that still need it (npm start stops Redis last).
   */
  detached?: boolean;
  /** `requirepass`: the default user needs this password (the URL carries it). */
  password?: string;
  /** ACL accounts, one `user` directive each: `['app', 'on', '>secret', '~wc:*', '+@all']`. */
  aclUsers?: string[][];
  /**
   * TLS only (`--port 0 --tls-port`): the URL becomes rediss://. `authClients` makes the
   * server require a client certificate signed by `caFile`; the readiness probe then
   * presents `clientCertFile`/`clientKeyFile`.
   */
  tls?: {
    certFile: string;
    keyFile: string;
    caFile: string;
    authClients?: boolean;
    clientCertFile?: string;
    clientKeyFile?: string;
  };
}

export const REDIS_INSTALL_HINT =
  'redis-server was not found on PATH. Install it with `sudo apt-get install redis-server` (Debian/Ubuntu), ' +
  '`brew install redis` (macOS). `npm start` alone can use a Redis you point it at instead: ' +
  '`docker compose up -d redis redis-queue`, then REDIS_URL=redis://127.0.0.1:56379 ' +
  'QUEUE_REDIS_URL=redis://127.0.0.1:56380 (the tests always start their own).';

export function findRedisServer(binary = process.env.REDIS_SERVER_BIN ?? 'redis-server'): string | undefined {
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? binary : undefined;
}

/**
 * Starts a private `redis-server` on a free port in a temp dir; nothing touches the system Redis.
 * A port it chose itself and found taken by the time the server binds is chosen again.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  if (options.port !== undefined) return startRedisOn(options, options.port);
  return retryWhilePortTaken(async () => startRedisOn(options, await freePort()));
}

async function startRedisOn(options: StartRedisOptions, port: number): Promise<RedisServer> {
  const binary = findRedisServer(options.binary);
  if (!binary) throw new Error(REDIS_INSTALL_HINT);
  const dir = await mkdtemp(join(tmpdir(), 'walcache-redis-'));
  const tls = options.tls;
  const args = [
    ...(tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          tls.certFile,
          '--tls-key-file',
          tls.keyFile,
          '--tls-ca-cert-file',
          tls.caFile,
          '--tls-auth-clients',
          tls.authClients ? 'yes' : 'no',
        ]
      : ['--port', String(port)]),
    ...(options.password ? ['--requirepass', options.password] : []),
    ...(options.aclUsers ?? []).flatMap((user) => ['--user', ...user]),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    '--appendfsync',
    'always',
    '--maxmemory',
    options.maxmemory ?? '0',
    '--maxmemory-policy',
    options.maxmemoryPolicy ?? 'noeviction',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  let reaper: Reaper | undefined;
  let output = '';

  const startServer = async () => {
    output = '';
    child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false });
    // redis-server does not notice its parent's death: SIGTERM it when this process dies.
    if (child.pid !== undefined) reaper = armReaper(child.pid, 'SIGTERM');
    child.stdout?.on('data', (d) => {
      output = (output + d).slice(-4000);
    });
    child.stderr?.on('data', (d) => {
      output = (output + d).slice(-4000);
    });
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      ...(options.password ? { password: options.password } : {}),
      ...(tls
        ? {
            tls: {
              ca: readFileSync(tls.caFile),
              ...(tls.clientCertFile && tls.clientKeyFile
                ? { cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) }
                : {}),
            },
          }
        : {}),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      // Whatever holds the port may accept and never answer: each try ends, the wait goes on.
      connectTimeout: 1_000,
      commandTimeout: 1_000,
    });
    probe.on('error', () => {});
    let exited = false;
    try {
      await waitFor(
        async () => {
          // Exited (a port taken since freePort chose it, a bad argument): say so at once.
          if (child?.exitCode !== null) {
            exited = true;
            return true;
          }
          try {
            if (probe.status !== 'ready') await probe.connect();
            return (await probe.ping()) === 'PONG';
          } catch {
            probe.disconnect();
            return false;
          }
        },
        { timeoutMs: 10_000, what: `redis-server on port ${port}` },
      );
    } finally {
      probe.disconnect();
    }
    if (exited) {
      reaper?.release();
      reaper = undefined;
      throw new Error(`redis-server exited: ${output}`);
    }
  };

  const stopChild = async (signal: NodeJS.Signals) => {
    const current = child;
    reaper?.release();
    reaper = undefined;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      current.once('exit', () => resolve());
      current.kill(signal);
    });
  };

  await startServer();
  return {
    url: `${tls ? 'rediss' : 'redis'}://${options.password ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    kill: () => stopChild('SIGKILL'),
    startServer,
    async stop() {
      await stopChild('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
