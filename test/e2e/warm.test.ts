/**
 * Warm-up: the agents example declares `warm` on the active agents (by id) and on the first
 * page of the active-agents list. After a start and after a namespace flush, the invalidator
 * fills them, so the first request for each is a HIT holding what Postgres holds; values not
 * declared stay cold. `walcache warm` does the same on demand.
 */

import { Writable } from 'node:stream';
import { loadConfigFile } from '@walcache/config';
import { flushNamespace, keyspace, ReadThroughCache } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import { createLogger } from '@walcache/observability';
import { type CompiledConfig, compileConfig, type Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Warmer } from '../../apps/invalidator/src/warm.ts';
import { agentsExample } from '../../examples/agents/index.ts';
import type { Io } from '../../packages/cli/src/io.ts';
import { run } from '../../packages/cli/src/main.ts';
import { type ExampleSystem, startExample } from '../examples/support.ts';

let sys: ExampleSystem;
let redis: Redis;
let db: Db;
let compiled: CompiledConfig;

beforeAll(async () => {
  sys = await startExample(agentsExample);
  redis = new Redis(sys.stack.env.REDIS_URL);
  const pool = createPool({ connectionString: sys.stack.env.DATABASE_URL, max: 2 });
  db = createDb(pool);
  compiled = await compileConfig(await loadConfigFile(agentsExample.configPath), pool);
});

afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await sys?.stop();
});

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

const keys = () => keyspace(sys.stack.env.CACHE_PREFIX);
const warmer = () => sys.stack.invalidator.warmer!;

/** Until this invalidator's last warm-up ran for the namespace's current flush marker. */
async function warmed(afterRuns = 0): Promise<void> {
  await waitFor(
    async () => warmer().runs > afterRuns && warmer().warmedFor === (await redis.get(keys().flushed)),
    { what: 'the warm-up to run for the current flush', timeoutMs: 30_000 },
  );
}

async function activeIds(): Promise<string[]> {
  const { rows } = await sys.writer.query<{ id: string }>('select id from agents where active order by id');
  return rows.map((r) => r.id);
}

/** The first request for every declared value is a HIT and equals a fresh load from Postgres. */
async function expectWarm(): Promise<void> {
  const agent = compiled.byName('agent')!;
  const ids = await activeIds();
  expect(ids.length).toBeGreaterThan(100);
  for (const id of ids) {
    const res = await fetch(`${sys.stack.api.url}/v1/agents/${id}`);
    expect(res.headers.get('x-cache'), `agent ${id}`).toBe('HIT');
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(await agent.load(db, { id }))));
  }
  const list = compiled.byName('active-agents')!;
  const page = await fetch(`${sys.stack.api.url}/v1/agents`);
  expect(page.headers.get('x-cache')).toBe('HIT');
  expect(await page.json()).toEqual(JSON.parse(JSON.stringify(await list.load(db, list.params.parse({})))));
}

describe('warm-up of what the config declares', () => {
  it('after the start, every active agent and the first page of the active list are cached', async () => {
    await warmed();
    await expectWarm();
    const report = warmer().lastReports.find((r) => r.resource === 'agent')!;
    expect(report.total).toBe((await activeIds()).length);
    const metrics = await (
      await fetch(`http://127.0.0.1:${sys.stack.invalidator.metricsPort}/metrics`)
    ).text();
    expect(metrics).toMatch(/walcache_invalidator_warmups_total\{[^}]*outcome="done"[^}]*\} [1-9]/);
    expect(metrics).toMatch(
      /walcache_invalidator_warm_values_total\{[^}]*resource="agent",outcome="loaded"[^}]*\} [1-9]/,
    );
    // Only what is declared: an inactive agent, another page size and another resource stay cold.
    const { rows } = await sys.writer.query<{ id: string }>('select id from agents where not active limit 1');
    expect((await fetch(`${sys.stack.api.url}/v1/agents/${rows[0]!.id}`)).headers.get('x-cache')).toBe(
      'MISS',
    );
    expect((await fetch(`${sys.stack.api.url}/v1/agents?limit=7`)).headers.get('x-cache')).toBe('MISS');
    expect((await fetch(`${sys.stack.api.url}/v1/channels/1`)).headers.get('x-cache')).toBe('MISS');
  });

  it('after a namespace flush, the declared values are filled again, as Postgres holds them now', async () => {
    const runs = warmer().runs;
    // A change, its invalidation seen through (else it could drop a warmed value after the
    // warm-up, correctly), then the flush an operator's `walcache flush --all` (or a lost
    // slot) makes: the warm-up loads what Postgres holds now.
    await sys.writer.query("update agents set role = 'warmed after the flush' where id = 2");
    const role = 'warmed after the flush';
    await sys.eventually('/v1/agents/2', (r) => r.body.role === role, 'the new role by id');
    await sys.eventually(
      '/v1/agents',
      (r) => (r.body.items as { id: string; role: string }[]).some((a) => a.id === '2' && a.role === role),
      'the new role in the list',
    );
    await flushNamespace(redis, keys());
    await warmed(runs);
    await expectWarm();
    const agent2 = (await (await fetch(`${sys.stack.api.url}/v1/agents/2`)).json()) as { role: string };
    expect(agent2.role).toBe('warmed after the flush');
  });

  it('walcache warm fills them on demand, and reports what it did', async () => {
    // Drop the agents' values only (what `walcache flush agent` does): no flush marker, so no
    // automatic warm-up; the command does it.
    const doomed: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${keys().prefix}:{agent:*`, 'COUNT', 1000);
      cursor = next;
      doomed.push(...batch);
    } while (cursor !== '0');
    await redis.unlink(...doomed);
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      interactive: false,
      ask: async () => '',
    };
    // What an operator's shell holds: the same variables the apps run with.
    const e = sys.stack.env;
    const env = {
      DATABASE_URL: e.DATABASE_URL,
      REDIS_URL: e.REDIS_URL,
      CACHE_PREFIX: e.CACHE_PREFIX,
      WALCACHE_CONFIG: agentsExample.configPath,
    };
    const code = await run(['warm', 'agent', '--json'], io, env);
    expect(code, err.join('\n')).toBe(0);
    const reported = JSON.parse(out[0]!) as {
      reports: { resource: string; total: number; loaded: number }[];
    };
    const ids = await activeIds();
    expect(reported.reports).toEqual([
      expect.objectContaining({ resource: 'agent', total: ids.length, loaded: ids.length }),
    ]);
    expect(err.some((line) => line.includes(`agent: ${ids.length}/${ids.length}`))).toBe(true);
    await expectWarm();

    expect(await run(['warm', 'channel'], io, env)).toBe(2);
    expect(err.at(-1)).toContain('"channel" declares no "warm"');
  });

  it('logs a start line, progress and a summary; one invalidator per flush warms, the others skip', async () => {
    // A namespace of their own: the stack's invalidator does not compete for these claims.
    const own = keyspace(`${sys.stack.env.CACHE_PREFIX}w`);
    const make = () => {
      const { stream, lines } = capture();
      const logger = createLogger('invalidator', { destination: stream, level: 'debug' });
      const cache = new ReadThroughCache({ redis, db, prefix: own.prefix });
      const resources = compiled.resources;
      return { lines, warmer: new Warmer({ cache, db, redis, keys: own, resources, logger, pollMs: 50 }) };
    };
    // As the invalidator does at start: the namespace's generation is recorded before any warm-up
    // (a first use would flush it, and the new flush marker start another warm-up).
    expect(await new ReadThroughCache({ redis, db, prefix: own.prefix }).verifyGeneration()).toBe(true);
    await flushNamespace(redis, own);
    const first = make();
    const second = make();
    await flushNamespace(redis, keys());
    first.warmer.start();
    await waitFor(() => first.warmer.runs > 0, { what: 'the first warmer to warm' });
    second.warmer.start();
    await waitFor(() => second.lines.some((l) => l.includes('another invalidator warms')), {
      what: 'the second warmer to see the claim',
    });
    await Promise.all([first.warmer.close(), second.warmer.close()]);
    const messages = first.lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(messages).toContain('warm-up started');
    expect(messages.some((m) => /^warming agent: \d+\/\d+$/.test(m))).toBe(true);
    expect(messages).toContain('warming active-agents: 1/1');
    expect(messages.at(-1)).toBe('warm-up done');
    expect(first.warmer.runs).toBe(1);
    expect(second.warmer.runs).toBe(0);
    expect(await redis.exists(own.value('agent:2'))).toBe(1);
  });
});
