import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  parseEnv,
  permanentConnectionFailure,
  redactSecrets,
  redisConnectionOptions,
  redisTarget,
  redisUrlVariable,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'walcache-config-test-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const base = { DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db', REDIS_URL: 'rediss://127.0.0.1:6380' };
const issues = (source: Record<string, string>) => {
  try {
    parseEnv(source);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
};

describe('redisConnectionOptions', () => {
  it('reads user, password, db and TLS files; a cluster can reuse it per node', () => {
    const ca = file('ca.pem', 'CA PEM');
    const options = redisConnectionOptions('rediss://app:p%40ss@cache.internal:6380/2', {
      REDIS_TLS_CA_FILE: ca,
    });
    expect(options).toEqual({
      host: 'cache.internal',
      port: 6380,
      username: 'app',
      password: 'p@ss',
      db: 2,
      tls: { ca: 'CA PEM', servername: 'cache.internal' },
    });
    // No SNI for an IP literal; no TLS at all for redis://.
    expect(redisConnectionOptions('rediss://127.0.0.1:6380').tls).toEqual({});
    expect(redisConnectionOptions('redis://:pw@127.0.0.1').tls).toBeUndefined();
    expect(redisConnectionOptions('redis://:pw@127.0.0.1')).toMatchObject({ port: 6379, password: 'pw' });
  });

  it('names the variable a queue failure is about: QUEUE_REDIS_URL only when it was set', () => {
    expect(redisUrlVariable({ REDIS_URL: 'a', QUEUE_REDIS_URL: 'a' }, 'queue')).toBe('REDIS_URL');
    expect(redisUrlVariable({ REDIS_URL: 'a', QUEUE_REDIS_URL: 'b' }, 'queue')).toBe('QUEUE_REDIS_URL');
  });
});

describe('Redis Cluster URLs', () => {
  it('seed nodes, credentials and TLS as in a plain URL; no SNI pinned to the first seed', () => {
    const ca = file('cluster-ca.pem', 'CA PEM');
    expect(
      redisTarget('rediss+cluster://app:p%40ss@node-a.internal:7000,10.0.0.2:7001,[::1]', {
        REDIS_TLS_CA_FILE: ca,
      }),
    ).toEqual({
      kind: 'cluster',
      seeds: [
        { host: 'node-a.internal', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 6379 },
      ],
      nodeOptions: { username: 'app', password: 'p@ss', tls: { ca: 'CA PEM' } },
    });
    expect(redisTarget('redis+cluster://127.0.0.1:7000/')).toEqual({
      kind: 'cluster',
      seeds: [{ host: '127.0.0.1', port: 7000 }],
      nodeOptions: {},
    });
    expect(redisTarget('redis://127.0.0.1:6380/1')).toEqual({
      kind: 'node',
      options: { host: '127.0.0.1', port: 6380, db: 1 },
    });
  });

  it('the environment accepts them for both variables; TLS files go with rediss+cluster://', () => {
    const pem = file('c.pem', 'PEM');
    expect(
      parseEnv({
        ...base,
        REDIS_URL: 'rediss+cluster://a:7000,b:7001',
        QUEUE_REDIS_URL: 'redis+cluster://:pw@q:7000',
        REDIS_TLS_CA_FILE: pem,
      }),
    ).toMatchObject({
      REDIS_URL: 'rediss+cluster://a:7000,b:7001',
      QUEUE_REDIS_URL: 'redis+cluster://:pw@q:7000',
    });
  });

  it('a malformed cluster URL is refused naming the variable, the problem and the fix, without its password', () => {
    expect(issues({ ...base, REDIS_URL: 'redis+cluster://:s3cr3t@a:7000,,b:7001' })).toEqual([
      'REDIS_URL: an empty seed node: list host:port pairs separated by commas, without spaces (got "redis+cluster://:***@a:7000,,b:7001")',
    ]);
    expect(issues({ ...base, QUEUE_REDIS_URL: 'redis+cluster://a:7000,b:99999' })).toEqual([
      expect.stringMatching(/^QUEUE_REDIS_URL: "b:99999" is not host:port \(a port from 1 to 65535/),
    ]);
    expect(issues({ ...base, REDIS_URL: 'redis+cluster://a:7000/2' })).toEqual([
      expect.stringMatching(/^REDIS_URL: a Redis Cluster has only database 0: remove the path/),
    ]);
    expect(issues({ ...base, REDIS_URL: 'redis+cluster://' })).toEqual([
      expect.stringMatching(/^REDIS_URL: an empty seed node/),
    ]);
    expect(issues({ ...base, REDIS_URL: 'redis+cluster://a:7000?x=1' })).toEqual([
      expect.stringMatching(/^REDIS_URL: expected redis\+cluster:\/\/\[user:password@\]host:port/),
    ]);
  });
});

describe('the environment', () => {
  it('OPS_TOKEN_FILE: the token without its trailing newline; not with OPS_TOKEN; at least 8 characters', () => {
    expect(parseEnv({ ...base, OPS_TOKEN_FILE: file('token', 'from-a-secret-file\n') }).OPS_TOKEN).toBe(
      'from-a-secret-file',
    );
    expect(issues({ ...base, OPS_TOKEN: 'abcdefgh', OPS_TOKEN_FILE: file('t2', 'abcdefghij') })).toEqual([
      expect.stringMatching(/^OPS_TOKEN_FILE: set either OPS_TOKEN or OPS_TOKEN_FILE, not both/),
    ]);
    expect(issues({ ...base, OPS_TOKEN_FILE: file('t3', 'short\n') })).toEqual([
      expect.stringMatching(/^OPS_TOKEN_FILE: the token in this file must be at least 8 characters/),
    ]);
    expect(issues({ ...base, OPS_TOKEN_FILE: join(dir, 'missing') })).toEqual([
      expect.stringMatching(/^OPS_TOKEN_FILE: cannot read this file/),
    ]);
  });

  it('TLS files: readable, cert with key, and only with a rediss:// URL', () => {
    const pem = file('x.pem', 'PEM');
    expect(
      parseEnv({ ...base, REDIS_TLS_CA_FILE: pem, REDIS_TLS_CERT_FILE: pem, REDIS_TLS_KEY_FILE: pem }),
    ).toMatchObject({
      REDIS_TLS_CA_FILE: pem,
    });
    expect(issues({ ...base, REDIS_TLS_CERT_FILE: pem })).toEqual([
      expect.stringMatching(/^REDIS_TLS_KEY_FILE: a client certificate needs both/),
    ]);
    expect(issues({ ...base, REDIS_URL: 'redis://127.0.0.1', REDIS_TLS_CA_FILE: pem })).toEqual([
      expect.stringMatching(/^REDIS_TLS_CA_FILE: is set but no Redis URL uses TLS: write rediss:\/\//),
    ]);
    expect(issues({ ...base, REDIS_TLS_CA_FILE: join(dir, 'nope.pem') })).toEqual([
      expect.stringMatching(/^REDIS_TLS_CA_FILE: cannot read this file/),
    ]);
  });

  it('a bad URL is quoted without its password', () => {
    expect(issues({ ...base, REDIS_URL: 'http://:s3cr3t@127.0.0.1' })).toEqual([
      'REDIS_URL: expected a redis:// or rediss:// (TLS) URL, or redis+cluster://host:port,… for a Redis Cluster (got "http://:***@127.0.0.1")',
    ]);
  });
});

describe('redactSecrets', () => {
  it('masks URL passwords, password= and sslpassword= parameters, bearer and basic credentials', () => {
    expect(redactSecrets('rediss://app:s3cr3t@cache:6380')).toBe('rediss://app:***@cache:6380');
    expect(redactSecrets('postgres://db/x?sslmode=require&password=s3cr3t&x=1')).toBe(
      'postgres://db/x?sslmode=require&password=***&x=1',
    );
    expect(redactSecrets('sslpassword=k3y-pass host=db')).toBe('sslpassword=*** host=db');
    expect(redactSecrets('Authorization: Bearer abc.def-123')).toBe('Authorization: Bearer ***');
    expect(redactSecrets('authorization: Basic bWU6czNjcjN0')).toBe('authorization: Basic ***');
  });
});

describe('permanentConnectionFailure', () => {
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  it('credentials, certificates and privileges are permanent; refused, reset and timeouts are not', () => {
    expect(
      permanentConnectionFailure(err('WRONGPASS invalid username-password pair'), 'REDIS_URL', 'redis')
        ?.message,
    ).toMatch(/^REDIS_URL: Redis refused the credentials/);
    expect(
      permanentConnectionFailure(
        err('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'),
        'DATABASE_URL',
        'postgres',
      )?.message,
    ).toMatch(/add sslrootcert=<CA certificate file> to DATABASE_URL$/);
    expect(
      permanentConnectionFailure(
        err('password authentication failed for user "x"', '28P01'),
        'DATABASE_URL',
        'postgres',
      ),
    ).toBeDefined();
    for (const [message, code] of [
      ['connect ECONNREFUSED 127.0.0.1:6379', 'ECONNREFUSED'],
      ['read ECONNRESET', 'ECONNRESET'],
      ['Connection terminated due to connection timeout', undefined],
      ['the database system is starting up', '57P03'],
      ['terminating connection due to administrator command', '57P01'],
    ] as const) {
      expect(permanentConnectionFailure(err(message, code), 'DATABASE_URL', 'postgres')).toBeUndefined();
      expect(permanentConnectionFailure(err(message, code), 'REDIS_URL', 'redis')).toBeUndefined();
    }
  });
});
