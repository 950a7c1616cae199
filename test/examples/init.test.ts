import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Io, run } from '@walcache/cli';
import { loadConfigFile } from '@walcache/config';
import { createDb, createPool } from '@walcache/db';
import { startPostgres, startRedis, waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { examples } from '../../examples/index.ts';
import { type Servers, startStack } from '../support/stack.ts';
import { verify } from './verify-support.ts';

/**
 * `walcache init` on each example's database, loaded without its config: the file it writes
 * is the checked-in expectation (test/examples/init/<name>.walcache.config.yaml; rewrite
 * them with WALCACHE_UPDATE_INIT=1 after a deliberate change), the three apps start on it and
 * answer a GET of every resource it declares, and `walcache verify` (12 writes, seed 1) finds
 * no stale value in it.
 */
const expectations = join(import.meta.dirname, 'init');
const dir = mkdtempSync(join(tmpdir(), 'walcache-init-'));
let servers: Servers;

beforeAll(async () => {
  const [pgServer, redis] = await Promise.all([startPostgres(), startRedis()]);
  servers = {
    pg: pgServer,
    redis,
    async stop() {
      await Promise.allSettled([pgServer.stop(), redis.stop()]);
    },
  };
});
afterAll(async () => {
  await servers?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    interactive: false,
    ask: async () => '',
  };
}

/** A database of its own per example, on the one server: `init_<name>`. */
async function exampleDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: servers.pg.url });
  await admin.connect();
  await admin.query(`create database init_${name}`);
  await admin.end();
  const url = new URL(servers.pg.url);
  url.pathname = `/init_${name}`;
  const pool = createPool({ connectionString: url.toString() });
  const db = createDb(pool);
  const example = examples[name]!;
  // The blog's default seed is thousands of rows; a GET per resource needs a few.
  if (name === 'blog')
    await examples.blog!.setup(
      db as never,
      { users: 20, articles: 40, tags: 5, commentsPerArticle: 1 } as never,
    );
  else await example.setup(db);
  await db.destroy();
  return url.toString();
}

describe('walcache init on a schema of its own (the library fixture, --schema lib)', () => {
  it('skips nothing it can serve, keys a partitioned table by its composite key, and starts', async () => {
    const admin = new pg.Client({ connectionString: servers.pg.url });
    await admin.connect();
    await admin.query('create database init_library');
    await admin.end();
    const url = new URL(servers.pg.url);
    url.pathname = '/init_library';
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    await client.query(
      readFileSync(join(import.meta.dirname, '..', 'fixtures', 'library', 'schema.sql'), 'utf8'),
    );
    await client.end();
    const out = join(dir, 'library.walcache.config.yaml');
    const io = captureIo();
    expect(await run(['init', '--schema', 'lib', '--out', out], io, { DATABASE_URL: url.toString() })).toBe(
      0,
    );
    const written = readFileSync(out, 'utf8');
    const expected = join(expectations, 'library.walcache.config.yaml');
    if (process.env.WALCACHE_UPDATE_INIT === '1' || !existsSync(expected)) writeFileSync(expected, written);
    expect(written).toBe(readFileSync(expected, 'utf8'));
    const stack = await startStack(servers, { DATABASE_URL: url.toString(), WALCACHE_CONFIG: out });
    try {
      await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
      const config = await loadConfigFile(out);
      for (const [name, r] of Object.entries(config.resources)) {
        if (!r.list) continue;
        const res = await fetch(`${stack.api.url}${r.route}`);
        expect({ name, status: res.status }).toEqual({ name, status: 200 });
      }
    } finally {
      await stack.stop();
    }
  }, 60_000);
});

describe('walcache init on each example database', () => {
  for (const name of Object.keys(examples).sort()) {
    it(`${name}: writes the expected config, which starts, serves every resource and verifies clean`, async () => {
      const url = await exampleDatabase(name);
      const out = join(dir, `${name}.walcache.config.yaml`);
      const io = captureIo();
      expect(await run(['init', '--out', out], io, { DATABASE_URL: url })).toBe(0);
      expect(io.stdout.join('\n')).toMatch(/^wrote .*: \d+ resources from \d+ tables/);
      const written = readFileSync(out, 'utf8');
      const expected = join(expectations, `${name}.walcache.config.yaml`);
      if (process.env.WALCACHE_UPDATE_INIT === '1' || !existsSync(expected)) writeFileSync(expected, written);
      expect(written).toBe(readFileSync(expected, 'utf8'));

      // Never over an existing file without --force (exit 3, the flag named), then with it.
      const again = captureIo();
      expect(await run(['init', '--out', out], again, { DATABASE_URL: url })).toBe(3);
      expect(again.stderr.join('\n')).toMatch(/already exists.*--force/);
      expect(await run(['init', '--out', out, '--force'], captureIo(), { DATABASE_URL: url })).toBe(0);

      const config = await loadConfigFile(out);
      const stack = await startStack(servers, { DATABASE_URL: url, WALCACHE_CONFIG: out });
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
        const entries = Object.entries(config.resources);
        expect(entries.length).toBeGreaterThan(0);
        for (const [resource, r] of entries) {
          let path: string;
          if (r.by !== undefined) {
            const by = Array.isArray(r.by) ? r.by : [r.by];
            const { rows } = await client.query<Record<string, string>>(
              `select ${by.map((c) => `${c}::text as "${c}"`).join(', ')} from ${r.table} order by 1 limit 1`,
            );
            const row = rows[0];
            if (!row) throw new Error(`${r.table} is empty: the example's seed should fill every table`);
            path = `/v1/${resource}/${by.map((c) => encodeURIComponent(row[c]!)).join('/')}`;
          } else {
            path = r.route!;
          }
          const res = await fetch(`${stack.api.url}${path}`);
          const body = (await res.json()) as Record<string, unknown>;
          expect({ path, status: res.status }).toEqual({ path, status: 200 });
          if (r.list) expect(Array.isArray(body.items), path).toBe(true);
        }
        // The README's next step on what init wrote: verify finds nothing stale.
        const checked = await verify({ stack }, [
          '--confirm-database',
          `init_${name}`,
          '--seed',
          '1',
          '--mutations',
          '12',
        ]);
        expect(checked.stdout).toContain('verdict: ok');
        expect(checked.code).toBe(0);
      } finally {
        await client.end();
        await stack.stop();
      }
    }, 60_000);
  }
});
