import { run } from '@walcache/cli';
import { ConnectionConfigError } from '@walcache/config';
import { QUEUE_PREFIX } from '@walcache/core';
import { silentLogger } from '@walcache/observability';
import { generateCertificates, type RedisServer, startRedis, type TestCertificates } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { docsBlock } from '../support/roles.ts';
import { type Servers, startServers, startStack, testEnv } from '../support/stack.ts';
import { captureIo, expectWriteInvalidates } from './support.ts';

const ADMIN_PASSWORD = 'adm1n-s3cret-pw';
const APP_PASSWORD = 'app-s3cret-pw-42';
/** Why 120 s: these start the whole system; a loaded machine is slow and nothing here asserts speed. */
const STACK_TEST_MS = 120_000;

/** Each app's start must fail at once with this one-line error, not enter a reconnect loop. */
async function expectEveryAppRefuses(env: ReturnType<typeof testEnv>, message: RegExp): Promise<void> {
  for (const start of [
    () => startApi(env, silentLogger()),
    () => startInvalidator(env, silentLogger(), { auditor: false }),
    () => startCdc(env, silentLogger()),
  ]) {
    const error = await start().then(
      async (app) => {
        await app.close();
        return new Error('started');
      },
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(ConnectionConfigError);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
  }
}

describe('redis with requirepass and the documented ACL user', () => {
  let servers: Servers;
  let admin: Redis;
  const prefix = 'wcacl';

  beforeAll(async () => {
    servers = await startServers(undefined, { password: ADMIN_PASSWORD });
    admin = new Redis(servers.redis.url);
    // The ACL of docs/operations.md, with this test's cache prefix and password.
    const acl = docsBlock('redis-acl')
      .trim()
      .replace('>change-me', `>${APP_PASSWORD}`)
      .replace('~wc:*', `~${prefix}:*`);
    const [command, subcommand, ...args] = acl.split(/\s+/);
    expect(`${command} ${subcommand}`).toBe('ACL SETUSER');
    await admin.call('ACL', 'SETUSER', ...args);
  });

  afterAll(async () => {
    admin?.disconnect();
    await servers?.stop();
  });

  it('the default user with its password: every app serves and invalidates', {
    timeout: STACK_TEST_MS,
  }, async () => {
    const stack = await startStack(servers, {}, { heartbeatIntervalMs: 500 });
    try {
      expect(stack.env.REDIS_URL).toContain(`:${ADMIN_PASSWORD}@`);
      await expectWriteInvalidates(stack, servers.pg.url, 3);
    } finally {
      await stack.stop();
    }
  });

  it('the ACL user (user:password in the URL): every app serves, invalidates and shows /ops', {
    timeout: STACK_TEST_MS,
  }, async () => {
    const url = `redis://walcache:${APP_PASSWORD}@127.0.0.1:${servers.redis.port}`;
    const stack = await startStack(
      servers,
      { REDIS_URL: url, CACHE_PREFIX: prefix, OPS_TOKEN: 'ops-token-for-acl-test' },
      { heartbeatIntervalMs: 500 },
    );
    try {
      await expectWriteInvalidates(stack, servers.pg.url, 4);
      const status = await fetch(`${stack.api.url}/ops/status`, {
        headers: { authorization: 'Bearer ops-token-for-acl-test' },
      });
      expect(status.status).toBe(200);
      const text = await status.text();
      expect(text).not.toContain(APP_PASSWORD);
      expect(text).not.toContain(ADMIN_PASSWORD);
      // The ACL really confines it: a key outside its patterns is refused.
      const confined = new Redis(url);
      await expect(confined.get('elsewhere')).rejects.toThrow(/NOPERM/);
      await expect(confined.get(`${QUEUE_PREFIX}:x`)).resolves.toBeNull();
      confined.disconnect();
    } finally {
      await stack.stop();
    }
  });

  it('a wrong password: every app stops at once with one line naming REDIS_URL, without the password', async () => {
    const env = testEnv(servers, {
      REDIS_URL: `redis://walcache:not-the-password@127.0.0.1:${servers.redis.port}`,
    });
    await expectEveryAppRefuses(env, /^REDIS_URL: Redis refused the credentials \(WRONGPASS/);
    const { io, err } = captureIo();
    const code = await run(['inspect', 'article:1'], io, {
      DATABASE_URL: servers.pg.url,
      REDIS_URL: env.REDIS_URL,
      CACHE_PREFIX: prefix,
    });
    expect(code).toBe(78);
    expect(err.join('\n')).toMatch(/^walcache: REDIS_URL: Redis refused the credentials/);
    expect(err.join('\n')).not.toContain('not-the-password');
  });

  it('no password for a server that requires one: NOAUTH is a configuration error too', async () => {
    const env = testEnv(servers, { REDIS_URL: `redis://127.0.0.1:${servers.redis.port}` });
    await expectEveryAppRefuses(env, /^REDIS_URL: Redis refused the credentials \(NOAUTH/);
  });
});

describe('TLS-only redis (--port 0 --tls-port) with client certificates', () => {
  let certs: TestCertificates;
  let stranger: TestCertificates;
  let servers: Servers;
  let tlsRedis: RedisServer;

  beforeAll(async () => {
    [certs, stranger] = await Promise.all([
      generateCertificates({ name: 'walcache-test' }),
      generateCertificates({ name: 'someone-else' }),
    ]);
    servers = await startServers();
    tlsRedis = await startRedis({
      password: ADMIN_PASSWORD,
      tls: {
        certFile: certs.certFile,
        keyFile: certs.keyFile,
        caFile: certs.caFile,
        authClients: true,
        clientCertFile: certs.clientCertFile,
        clientKeyFile: certs.clientKeyFile,
      },
    });
  });

  afterAll(async () => {
    await tlsRedis?.stop();
    await servers?.stop();
    await certs?.remove();
    await stranger?.remove();
  });

  const tlsEnv = (files: Record<string, string>) => ({
    REDIS_URL: tlsRedis.url,
    ...files,
  });

  it('the server really refuses plain connections', async () => {
    expect(tlsRedis.url).toMatch(/^rediss:\/\//);
    const plain = new Redis({
      port: tlsRedis.port,
      host: '127.0.0.1',
      password: ADMIN_PASSWORD,
      lazyConnect: true,
      connectTimeout: 2_000,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    plain.on('error', () => undefined);
    await expect(plain.connect().then(() => plain.ping())).rejects.toThrow();
    plain.disconnect();
  });

  it('rediss:// with the CA and a client certificate: every app serves and invalidates', {
    timeout: STACK_TEST_MS,
  }, async () => {
    const stack = await startStack(
      servers,
      tlsEnv({
        REDIS_TLS_CA_FILE: certs.caFile,
        REDIS_TLS_CERT_FILE: certs.clientCertFile,
        REDIS_TLS_KEY_FILE: certs.clientKeyFile,
        OPS_TOKEN: 'ops-token-for-tls-test',
      }),
      { heartbeatIntervalMs: 500 },
    );
    try {
      await expectWriteInvalidates(stack, servers.pg.url, 5);
      const status = await fetch(`${stack.api.url}/ops/status`, {
        headers: { authorization: 'Bearer ops-token-for-tls-test' },
      });
      expect(status.status).toBe(200);
    } finally {
      await stack.stop();
    }
  });

  it('a server certificate from a CA the file does not hold: one line naming REDIS_TLS_CA_FILE', async () => {
    const env = testEnv(
      servers,
      tlsEnv({
        REDIS_TLS_CA_FILE: stranger.caFile,
        REDIS_TLS_CERT_FILE: certs.clientCertFile,
        REDIS_TLS_KEY_FILE: certs.clientKeyFile,
      }),
    );
    await expectEveryAppRefuses(
      env,
      /^REDIS_URL: the server's TLS certificate is not trusted .*set REDIS_TLS_CA_FILE/,
    );
  });

  it('no CA file: the system CAs do not know a private CA either', async () => {
    const env = testEnv(servers, tlsEnv({}));
    await expectEveryAppRefuses(env, /^REDIS_URL: the server's TLS certificate is not trusted/);
  });

  it('a client certificate the server does not trust: one line about the handshake', async () => {
    const env = testEnv(
      servers,
      tlsEnv({
        REDIS_TLS_CA_FILE: certs.caFile,
        REDIS_TLS_CERT_FILE: stranger.clientCertFile,
        REDIS_TLS_KEY_FILE: stranger.clientKeyFile,
      }),
    );
    await expectEveryAppRefuses(env, /^REDIS_URL: the TLS handshake failed/);
  });
});
