import { Writable } from 'node:stream';
import { parseEnv } from '@walcache/config';
import { createLogger, redactSecrets } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startCdc } from '../../apps/cdc/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';

/** A log destination that keeps every line. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { stream, lines };
}

const SECRET = 'Zq8-very-secret-pw';
const TOKEN = 'ops-token-never-logged-42';

describe('log redaction', () => {
  it('removes passwords from URLs and key=value strings, and censors secret fields', () => {
    expect(redactSecrets('connect to postgres://walcache:s3cr3t@db:5432/walcache failed')).toBe(
      'connect to postgres://walcache:***@db:5432/walcache failed',
    );
    expect(redactSecrets('redis://:s3cr3t@cache:6379/0')).toBe('redis://:***@cache:6379/0');
    expect(redactSecrets("host=db password='s3 cr3t' user=x")).toBe('host=db password=*** user=x');
    expect(redactSecrets('http://example.com/a@b')).toBe('http://example.com/a@b');

    const { stream, lines } = capture();
    const logger = createLogger('test', { destination: stream, level: 'debug' });
    const url = `postgres://walcache:${SECRET}@db:5432/walcache`;
    logger.info({ DATABASE_URL: url }, 'top-level field');
    logger.info({ env: { REDIS_URL: `redis://:${SECRET}@cache:6379`, OPS_TOKEN: SECRET } }, 'nested fields');
    logger.info({ target: url, list: [url] }, `message with ${url}`);
    logger.error({ err: new Error(`could not connect to ${url}`) }, 'an error quoting the URL');
    logger.warn({ req: { headers: { authorization: `Bearer ${SECRET}` } } }, 'a request');
    const at = new Date('2026-01-02T03:04:05.000Z');
    logger.info({ at, nested: { at } }, 'a date keeps its form');
    expect(lines).toHaveLength(6);
    expect(JSON.parse(lines[5]!)).toMatchObject({ at: at.toISOString(), nested: { at: at.toISOString() } });
    for (const line of lines) expect(line).not.toContain(SECRET);
    const err = JSON.parse(lines[3]!) as { err: { message: string; stack: string; type: string } };
    expect(err.err.type).toBe('Error');
    expect(err.err.message).toBe('could not connect to postgres://walcache:***@db:5432/walcache');
  });
});

describe('logs of the real apps', () => {
  let servers: Servers;
  beforeAll(async () => {
    servers = await startServers();
  });
  afterAll(async () => {
    await servers?.stop();
  });

  it('share the same base fields and never print the database password or the ops token', async () => {
    // A role whose password is distinctive, so any leak is found.
    const admin = new pg.Client({ connectionString: servers.pg.url });
    await admin.connect();
    await admin.query(`create role opslogger login superuser replication password '${SECRET}'`);
    const base = testEnv(servers);
    const dbUrl = new URL(servers.pg.url);
    dbUrl.username = 'opslogger';
    dbUrl.password = SECRET;
    const env = parseEnv({
      ...Object.fromEntries(Object.entries(base).map(([k, v]) => [k, String(v)])),
      DATABASE_URL: dbUrl.toString(),
      LOG_LEVEL: 'debug',
      OPS_TOKEN: TOKEN,
    });
    const logs = { api: capture(), cdc: capture(), invalidator: capture() };
    const api = await startApi(env, createLogger('api', { level: 'debug', destination: logs.api.stream }));
    const cdc = await startCdc(env, createLogger('cdc', { level: 'debug', destination: logs.cdc.stream }), {
      heartbeatIntervalMs: 500,
    });
    const invalidator = await startInvalidator(
      env,
      createLogger('invalidator', { level: 'debug', destination: logs.invalidator.stream }),
    );
    try {
      await waitFor(() => cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
      await fetch(`${api.url}/v1/articles/5`);
      await fetch(`${api.url}/ops/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      await admin.query("update articles set title = 'logged' where id = 5");
      await waitFor(async () => logs.invalidator.lines.some((l) => l.includes('"msg":"invalidated"')), {
        what: 'the invalidator to log a job',
      });
    } finally {
      await Promise.allSettled([api.close(), cdc.close(), invalidator.close()]);
      await admin.end();
    }
    for (const [app, { lines }] of Object.entries(logs)) {
      expect(lines.length, app).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line).not.toContain(SECRET);
        expect(line).not.toContain(TOKEN);
        const entry = JSON.parse(line) as Record<string, unknown>;
        expect(entry).toMatchObject({ app, pid: process.pid });
        expect(typeof entry.level).toBe('number');
        expect(typeof entry.msg).toBe('string');
        expect(Number.isNaN(Date.parse(String(entry.time)))).toBe(false);
      }
    }
    // The startup lines name the database without its password.
    expect(logs.api.lines.join('\n')).toContain('opslogger:***@');
  });
});
