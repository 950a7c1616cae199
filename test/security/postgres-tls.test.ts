import { chmodSync, chownSync, copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConnectionConfigError } from '@walcache/config';
import { createDb, createPool, pgConnectionConfig } from '@walcache/db';
import { silentLogger } from '@walcache/observability';
import {
  generateCertificates,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
  type TestCertificates,
  waitFor,
} from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { blogExample } from '../../examples/blog/index.ts';
import { compileBlog } from '../support/blog.ts';
import { createLeastPrivilegeRole } from '../support/roles.ts';
import { type Servers, startStack, testEnv } from '../support/stack.ts';
import { cdcFailure, expectWriteInvalidates } from './support.ts';

// Postgres with ssl=on and a generated certificate; pg_hba.conf admits TLS connections only.
let certs: TestCertificates;
let stranger: TestCertificates;
let postgres: PostgresServer;
let redis: RedisServer;
let servers: Servers;

beforeAll(async () => {
  [certs, stranger] = await Promise.all([
    generateCertificates({ name: 'walcache-test' }),
    generateCertificates({ name: 'someone-else' }),
  ]);
  [postgres, redis] = await Promise.all([
    startPostgres({
      ssl: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile, only: true },
    }),
    startRedis(),
  ]);
  const pool = createPool({ connectionString: postgres.url });
  const db = createDb(pool);
  await blogExample.setup(db, { users: 20, articles: 40, tags: 5, commentsPerArticle: 1 });
  await compileBlog(pool);
  await db.destroy();
  servers = { pg: postgres, redis, stop: async () => undefined };
});

afterAll(async () => {
  await Promise.allSettled([postgres?.stop(), redis?.stop()]);
  await certs?.remove();
  await stranger?.remove();
});

/** The URL of the server with other query parameters (sslmode, sslrootcert). */
function urlWith(params: Record<string, string>, base = postgres.url): string {
  const url = new URL(base);
  url.search = '';
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

async function refusal(start: () => Promise<{ close(): Promise<void> }>): Promise<Error> {
  return start().then(
    async (app) => {
      await app.close();
      return new Error('started');
    },
    (e: unknown) => e as Error,
  );
}

describe('PostgreSQL over TLS', () => {
  // Why 120 s: the whole system starts over TLS in this test; a loaded machine is slow, and
  // nothing here asserts speed.
  it('sslmode=verify-full: the pools and the CDC replication connection are encrypted, and a write invalidates', {
    timeout: 120_000,
  }, async () => {
    expect(postgres.url).toContain('sslmode=verify-full');
    // As the documented role too: TLS and least privilege together, as production runs.
    const role = await createLeastPrivilegeRole(postgres.url, {
      role: 'walcache_tls',
      password: 'tls-role-password-1',
      publication: 'walcache_tls',
    });
    const stack = await startStack(
      servers,
      { DATABASE_URL: role.url, PUBLICATION_NAME: 'walcache_tls' },
      { heartbeatIntervalMs: 500 },
    );
    try {
      await expectWriteInvalidates(stack, postgres.url, 6);
      const observer = new pg.Client({ connectionString: postgres.url });
      await observer.connect();
      try {
        const { rows } = await observer.query<{
          application_name: string;
          backend_type: string;
          ssl: boolean;
        }>(
          `select a.application_name, a.backend_type, s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid)
           where a.usename = 'walcache_tls' order by 1, 2`,
        );
        const walsender = rows.find((r) => r.backend_type === 'walsender');
        expect(walsender).toMatchObject({ application_name: 'walcache-cdc', ssl: true });
        expect(rows.map((r) => r.application_name)).toEqual(
          expect.arrayContaining(['walcache-api', 'walcache-cdc-admin']),
        );
        expect(rows.every((r) => r.ssl)).toBe(true);
      } finally {
        await observer.end();
      }
    } finally {
      await stack.stop();
    }
  });

  it('sslmode=require means what libpq says: encrypted, certificate not checked', {
    timeout: 120_000,
  }, async () => {
    const config = pgConnectionConfig(urlWith({ sslmode: 'require' }));
    const client = new pg.Client(config);
    await client.connect();
    const { rows } = await client.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    expect(rows[0]).toEqual({ ssl: true });
    await client.end();
    // The CDC's replication connection reads the URL the same way (node-postgres alone would
    // treat require as verify-full and refuse this private CA).
    const cdc = await startCdc(
      testEnv(servers, { DATABASE_URL: urlWith({ sslmode: 'require' }) }),
      silentLogger(),
    );
    try {
      await waitFor(() => cdc.stream.state === 'streaming', {
        what: 'the CDC to stream over sslmode=require',
      });
    } finally {
      await cdc.close();
    }
  });

  it('an untrusted certificate: every app stops with one line naming sslrootcert, the CDC included', async () => {
    const env = testEnv(servers, {
      DATABASE_URL: urlWith({ sslmode: 'verify-full', sslrootcert: stranger.caFile }, postgres.url),
    });
    for (const start of [
      () => startApi(env, silentLogger()),
      () => startInvalidator(env, silentLogger(), { auditor: false }),
    ]) {
      const error = await refusal(start);
      expect(error).toBeInstanceOf(ConnectionConfigError);
      expect(error.message).toMatch(
        /^DATABASE_URL: the server's TLS certificate is not trusted .*add sslrootcert=/,
      );
      expect(error.message).not.toContain('\n');
    }
    const error = await cdcFailure(env);
    expect(error).toBeInstanceOf(ConnectionConfigError);
    expect(error.message).toMatch(/^DATABASE_URL: the server's TLS certificate is not trusted/);
  });

  it('no sslmode against a TLS-only server: the pg_hba.conf refusal is one line, not a retry loop', async () => {
    const env = testEnv(servers, { DATABASE_URL: urlWith({}) });
    const error = await refusal(() => startApi(env, silentLogger()));
    expect(error).toBeInstanceOf(ConnectionConfigError);
    expect(error.message).toMatch(
      /^DATABASE_URL: PostgreSQL refused the login \(no pg_hba.conf entry .*no encryption/,
    );
    expect(error.message).not.toContain('walcache:walcache');
  });

  it('an sslrootcert that cannot be read is named at startup', () => {
    expect(() =>
      pgConnectionConfig(urlWith({ sslmode: 'verify-full', sslrootcert: '/nonexistent/ca.pem' })),
    ).toThrow(/^DATABASE_URL: cannot read the sslrootcert\/sslcert\/sslkey file: ENOENT/);
    expect(() => pgConnectionConfig(urlWith({ sslmode: 'verify-ca' }))).toThrow(
      /^DATABASE_URL: SECURITY WARNING: Using sslmode=verify-ca requires specifying a CA/,
    );
  });

  it('verify-ca checks the chain only, verify-full the host name too (a certificate for another name)', async () => {
    // The server's certificate is swapped (a reload, as a rotation would) for one that names
    // db.internal only, signed by a CA of its own.
    const other = await generateCertificates({ hosts: ['db.internal'], name: 'walcache-other' });
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    const owner = statSync(postgres.dataDir);
    for (const [from, to] of [
      [other.certFile, 'other.crt'],
      [other.keyFile, 'other.key'],
    ] as const) {
      copyFileSync(from, join(postgres.dataDir, to));
      chownSync(join(postgres.dataDir, to), owner.uid, owner.gid);
      chmodSync(join(postgres.dataDir, to), 0o600);
    }
    const connects = async (mode: string) => {
      const client = new pg.Client(pgConnectionConfig(urlWith({ sslmode: mode, sslrootcert: other.caFile })));
      try {
        await client.connect();
        await client.end();
        return 'connected';
      } catch (error) {
        return (error as Error & { code?: string }).code ?? (error as Error).message;
      }
    };
    try {
      await admin.query("alter system set ssl_cert_file = 'other.crt'");
      await admin.query("alter system set ssl_key_file = 'other.key'");
      await admin.query('select pg_reload_conf()');
      await waitFor(async () => (await connects('verify-ca')) === 'connected', {
        what: 'the new certificate',
      });
      expect(await connects('verify-full')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      const env = testEnv(servers, {
        DATABASE_URL: urlWith({ sslmode: 'verify-full', sslrootcert: other.caFile }),
      });
      const error = await refusal(() => startApi(env, silentLogger()));
      expect(error.message).toMatch(/^DATABASE_URL: the server's TLS certificate does not name this host/);
    } finally {
      await admin.query('alter system reset ssl_cert_file');
      await admin.query('alter system reset ssl_key_file');
      await admin.query('select pg_reload_conf()');
      await admin.end();
      await other.remove();
    }
  });
});
