import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, createPool } from '@walcache/db';
import {
  freePort,
  generateCertificates,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
  type TestCertificates,
  waitFor,
} from '@walcache/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blogExample } from '../../examples/blog/index.ts';
import { docsBlock } from '../support/roles.ts';

// The issue's own scenario: `npm start` against a TLS-only Redis with an ACL user and a TLS
// Postgres, the ops token from a file; then the logs of everything it ran are scanned.

const root = resolve(import.meta.dirname, '../..');
const REDIS_ADMIN_PASSWORD = 'redis-admin-pw-8c1f';
const REDIS_APP_PASSWORD = 'redis-app-pw-5e2a';
const OPS_TOKEN = 'ops-token-from-a-file-77d3';
/** The testkit's superuser password, as it appears inside a URL. */
const PG_CREDENTIALS = 'walcache:walcache@';
/**
 * Why 180 s: these tests start real processes through tsx (several seconds each on a loaded
 * 2-core machine, four at once in the second test); no assertion is about their speed.
 */
const PROCESS_TEST_MS = 180_000;

let certs: TestCertificates;
let postgres: PostgresServer;
let redis: RedisServer;
const outputs: string[] = [];

beforeAll(async () => {
  certs = await generateCertificates();
  [postgres, redis] = await Promise.all([
    startPostgres({
      ssl: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile, only: true },
    }),
    startRedis({
      password: REDIS_ADMIN_PASSWORD,
      tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile },
    }),
  ]);
  const pool = createPool({ connectionString: postgres.url });
  const db = createDb(pool);
  await blogExample.setup(db, { users: 20, articles: 40, tags: 5, commentsPerArticle: 1 });
  await db.destroy();
  await createAclUser();
});

/** The docs' ACL user, for the default prefix. */
async function createAclUser(): Promise<void> {
  const admin = new Redis(redis.url, { tls: { ca: readFileSync(certs.caFile) } });
  const [, , ...args] = docsBlock('redis-acl')
    .trim()
    .replace('>change-me', `>${REDIS_APP_PASSWORD}`)
    .split(/\s+/);
  await admin.call('ACL', 'SETUSER', ...args);
  admin.disconnect();
}

afterAll(async () => {
  await Promise.allSettled([postgres?.stop(), redis?.stop()]);
  await certs?.remove();
});

interface Spawned {
  child: ChildProcess;
  output(): string;
  exit: Promise<number | null>;
}

/** A walcache process with only the given environment (and PATH/HOME); its output is kept for the scan. */
function spawnScript(script: string, env: Record<string, string>, args: string[] = []): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const index = outputs.push('') - 1;
  const keep = (d: Buffer) => {
    out += d.toString('utf8');
    outputs[index] = out;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exit };
}

function productionEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const tokenFile = join(certs.dir, 'ops-token');
  writeFileSync(tokenFile, `${OPS_TOKEN}\n`);
  return {
    DATABASE_URL: postgres.url,
    REDIS_URL: `rediss://walcache:${REDIS_APP_PASSWORD}@127.0.0.1:${redis.port}`,
    REDIS_TLS_CA_FILE: certs.caFile,
    OPS_TOKEN_FILE: tokenFile,
    LOG_LEVEL: 'debug',
    ...overrides,
  };
}

describe('npm start with credentials everywhere', () => {
  it(
    'serves, invalidates and answers /ops with the token from a file; the banner hides the passwords',
    async () => {
      const [api, cdc, inv] = await Promise.all([freePort(), freePort(), freePort()]);
      const start = spawnScript(
        'scripts/start.ts',
        productionEnv({
          PORT: String(api),
          CDC_METRICS_PORT: String(cdc),
          INVALIDATOR_METRICS_PORT: String(inv),
        }),
      );
      try {
        await waitFor(
          async () => {
            if (start.child.exitCode !== null) throw new Error(`npm start exited:\n${start.output()}`);
            const health = await fetch(`http://127.0.0.1:${cdc}/healthz`).then(
              (r) => r.json() as Promise<{ state?: string }>,
              () => undefined,
            );
            const ready = await fetch(`http://127.0.0.1:${api}/readyz`).then(
              (r) => r.ok,
              () => false,
            );
            return health?.state === 'streaming' && ready;
          },
          { timeoutMs: 90_000, intervalMs: 200, what: 'the CDC of npm start to stream' },
        );
        expect(start.output()).toMatch(/redis\s+rediss:\/\/walcache:\*\*\*@127\.0\.0\.1:/);
        expect(start.output()).toMatch(/database\s+postgres:\/\/walcache:\*\*\*@127\.0\.0\.1:/);
        expect(start.output()).toMatch(/ops\s+http:\/\/127\.0\.0\.1:\d+\/ops\/status/);

        const base = `http://127.0.0.1:${api}`;
        const title = async () =>
          ((await (await fetch(`${base}/v1/articles/2`)).json()) as { title: string }).title;
        await title();
        const writer = new pg.Client({ connectionString: postgres.url });
        await writer.connect();
        await writer.query("update articles set title = 'over TLS everywhere' where id = 2");
        await writer.end();
        await waitFor(async () => (await title()) === 'over TLS everywhere', {
          what: 'the invalidation',
          timeoutMs: 20_000,
        });

        const status = await fetch(`${base}/ops/status`, {
          headers: { authorization: `Bearer ${OPS_TOKEN}` },
        });
        expect(status.status).toBe(200);
        const statusText = await status.text();
        outputs.push(statusText);
        expect(statusText).not.toContain(REDIS_APP_PASSWORD);
        expect(statusText).not.toContain(PG_CREDENTIALS);
        // A wrong token and Basic auth put credentials in headers: the logs must not echo them.
        expect(
          (await fetch(`${base}/ops/status`, { headers: { authorization: 'Bearer wrong-token-123' } }))
            .status,
        ).toBe(401);
        const basic = Buffer.from(`me:${OPS_TOKEN}`).toString('base64');
        expect(
          (await fetch(`${base}/ops/queues`, { headers: { authorization: `Basic ${basic}` } })).status,
        ).toBe(200);

        // Connection errors are what log connection details: a Redis restart and a Postgres restart.
        await redis.kill();
        await waitFor(
          async () => (await fetch(`${base}/v1/articles/3`)).headers.get('x-cache') === 'BYPASS',
          {
            what: 'the API to bypass the dead Redis',
          },
        );
        await redis.startServer();
        // The ACL user lived in memory only: the restarted Redis needs it again.
        await createAclUser();
        await postgres.restart();
        await waitFor(
          async () => {
            const health = await fetch(`http://127.0.0.1:${cdc}/healthz`).then(
              (r) => r.json() as Promise<{ state?: string }>,
              () => undefined,
            );
            return health?.state === 'streaming';
          },
          { timeoutMs: 30_000, intervalMs: 200, what: 'the CDC to stream again' },
        );
      } finally {
        start.child.kill('SIGTERM');
        await start.exit;
      }
      expect(start.output()).toMatch(/reconnect|connection|lost/i);
    },
    PROCESS_TEST_MS,
  );
});

describe('a setting that cannot work: each process exits 78 with one line', () => {
  it(
    'wrong Redis password, wrong Postgres password, untrusted CA: api, cdc, invalidator and the CLI',
    async () => {
      const [api, cdc, inv] = await Promise.all([freePort(), freePort(), freePort()]);
      const wrongPg = new URL(postgres.url);
      wrongPg.password = 'wrong-pg-password-1';
      const runs = [
        spawnScript(
          'apps/api/src/main.ts',
          productionEnv({
            PORT: String(api),
            REDIS_URL: `rediss://walcache:wrong-redis-pw-2@127.0.0.1:${redis.port}`,
          }),
        ),
        spawnScript(
          'apps/cdc/src/main.ts',
          productionEnv({ CDC_METRICS_PORT: String(cdc), DATABASE_URL: wrongPg.toString() }),
        ),
        spawnScript(
          'apps/invalidator/src/main.ts',
          productionEnv({
            INVALIDATOR_METRICS_PORT: String(inv),
            REDIS_TLS_CA_FILE: certs.certFile, // a leaf certificate is no CA
          }),
        ),
        spawnScript('packages/cli/src/main.ts', productionEnv({ DATABASE_URL: wrongPg.toString() }), [
          'status',
        ]),
      ];
      const expected = [
        /"msg":"REDIS_URL: Redis refused the credentials/,
        /"msg":"DATABASE_URL: PostgreSQL refused the login/,
        /"msg":"REDIS_URL: the server's TLS certificate is not trusted/,
        /^walcache: DATABASE_URL: PostgreSQL refused the login/,
      ];
      for (const [i, run] of runs.entries()) {
        const code = await run.exit;
        const lines = run.output().trim().split('\n');
        // JSON log lines: what a process said before (e.g. "cdc starting", or the warning that
        // the ACL user may not read maxmemory-policy) is below error; the refusal is its only
        // error line: no retry was logged.
        const loud = lines.filter(
          (line) => !line.startsWith('{') || (JSON.parse(line) as { level: number }).level >= 50,
        );
        expect({ code, loud: loud.length, output: run.output() }).toMatchObject({ code: 78, loud: 1 });
        expect(loud[0]).toMatch(expected[i] as RegExp);
        expect(lines.at(-1)).toBe(loud[0]);
      }
    },
    PROCESS_TEST_MS,
  );
});

describe('the scan', () => {
  it('finds no password, token or credential-bearing URL in anything the processes printed', () => {
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    const secrets = [
      REDIS_ADMIN_PASSWORD,
      REDIS_APP_PASSWORD,
      OPS_TOKEN,
      'wrong-redis-pw-2',
      'wrong-pg-password-1',
      'wrong-token-123',
      Buffer.from(`me:${OPS_TOKEN}`).toString('base64'),
    ];
    // The offending lines, so a failure shows where the secret leaked.
    const offending = all.split('\n').filter((line) => secrets.some((secret) => line.includes(secret)));
    expect(offending).toEqual([]);
    // Any scheme://user:password@ whose password is not the mask.
    const leaked = all
      .split('\n')
      .filter((line) => /[a-z][a-z0-9+.-]*:\/\/[^\s:/@"]*:(?!\*\*\*@)[^\s@/"]+@/i.test(line));
    expect(leaked).toEqual([]);
  });
});
