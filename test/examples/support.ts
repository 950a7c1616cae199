import { readFileSync } from 'node:fs';
import { createDb, createPool } from '@walcache/db';
import { startPostgres, startRedis, waitFor } from '@walcache/testkit';
import pg from 'pg';
import { expect } from 'vitest';
import type { Example } from '../../examples/index.ts';
import { type Servers, type Stack, startStack } from '../support/stack.ts';

export interface ExampleSystem {
  stack: Stack;
  /** A plain pg client that knows nothing of walcache. */
  writer: pg.Client;
  read(path: string): Promise<{ status: number; cache: string | null; body: Record<string, unknown> }>;
  /** Reads until a HIT, so what follows proves an invalidation, not a cold miss. */
  cached(path: string): Promise<Record<string, unknown>>;
  /** Polls until the answer satisfies `ok`. */
  eventually(
    path: string,
    ok: (r: { status: number; body: Record<string, unknown> }) => boolean,
    what: string,
  ): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Private Postgres + Redis, the example's schema and seed put in through its own setup (as
 * `npm start -- --example NAME` does), and the three apps serving its config file.
 */
export async function startExample(example: Example): Promise<ExampleSystem> {
  return startSystem(async (url) => {
    const db = createDb(createPool({ connectionString: url }));
    const first = await example.setup(db);
    expect(first.seeded).toBe(true);
    // Idempotent: a second setup on the same database neither re-creates nor re-seeds.
    expect(await example.setup(db)).toEqual({ applied: [], seeded: false });
    await db.destroy();
  }, example.configPath);
}

/** A `load` for startSystem: runs one SQL file (a schema, a seed) with a plain client. */
export function sqlFile(file: string): (url: string) => Promise<void> {
  return async (url) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(readFileSync(file, 'utf8'));
    } finally {
      await client.end();
    }
  };
}

/**
 * Private Postgres + Redis, a schema put in by `load` (given the database URL), a plain
 * writer and the three apps serving `configPath`.
 */
export async function startSystem(
  load: (url: string) => Promise<void>,
  configPath: string,
): Promise<ExampleSystem> {
  const [pgServer, redis] = await Promise.all([startPostgres(), startRedis()]);
  const servers: Servers = {
    pg: pgServer,
    redis,
    async stop() {
      await Promise.allSettled([pgServer.stop(), redis.stop()]);
    },
  };
  await load(pgServer.url);
  const writer = new pg.Client({ connectionString: pgServer.url });
  await writer.connect();
  const stack = await startStack(servers, { WALCACHE_CONFIG: configPath });
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  const read = async (path: string) => {
    const res = await fetch(`${stack.api.url}${path}`);
    return {
      status: res.status,
      cache: res.headers.get('x-cache'),
      body: (await res.json()) as Record<string, unknown>,
    };
  };
  return {
    stack,
    writer,
    read,
    async cached(path) {
      // Polled, not assumed: an invalidation still in flight from an earlier write may drop
      // the value just filled, and a HIT that follows it is what proves the next change.
      let body: Record<string, unknown> = {};
      await waitFor(
        async () => {
          const r = await read(path);
          body = r.body;
          return r.cache === 'HIT';
        },
        { what: `a HIT on ${path}`, timeoutMs: 15_000 },
      );
      return body;
    },
    async eventually(path, ok, what) {
      // Why 15 s: the invalidation bound on a loaded 2-core machine, with margin; the
      // usual path is well under a second.
      await waitFor(async () => ok(await read(path)), { what, timeoutMs: 15_000 });
    },
    async stop() {
      await writer.end().catch(() => undefined);
      await stack.stop();
      await servers.stop();
    },
  };
}
