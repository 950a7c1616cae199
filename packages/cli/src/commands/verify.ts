import { pipelinePassed, readSlot } from '@walcache/auditor';
import { HEARTBEAT_PREFIX } from '@walcache/cdc';
import { loadConfigFile, type WalcacheConfig } from '@walcache/config';
import { bodyOf, decodeEntry, ReadThroughCache } from '@walcache/core';
import {
  type CompiledResource,
  canonicalTableName,
  chosenConfigPath,
  type Params,
  readCatalog,
  type TableInfo,
} from '@walcache/resources';
import type { Clients } from '../context.ts';
import { CliError, type ExitCode, exitCodes } from '../errors.ts';
import type { Io } from '../io.ts';
import { describeWrite, seededRandom, type Write, WriteMaker, windowCount } from './verify-writes.ts';

export interface VerifyOptions {
  confirmDatabase: string | undefined;
  mutations: number;
  seed: number | undefined;
  json: boolean;
}

/**
 * Keys filled per resource: the first rows in key order (the ones the writes favour) and a
 * few elsewhere. 8 × a dozen resources is about a hundred loads after each write: seconds
 * for a whole run, yet every resource is checked on rows that the writes do hit.
 */
const FOCUS_KEYS = 5;
const SPREAD_KEYS = 3;
/**
 * How long one write may take to be invalidated before verify gives up. The CDC acknowledges
 * a heartbeat as soon as it reads it and a job runs in milliseconds; 30 s is a stalled pipeline.
 */
const PIPELINE_TIMEOUT_MS = 30_000;
/** How often the slot and the queue are re-read while waiting: a few cheap queries. */
const PIPELINE_POLL_MS = 20;
/** Attempts to find a write the database accepts before a turn is given up. */
const WRITE_ATTEMPTS = 5;

interface Sample {
  key: string;
  params: Params;
}

interface Finding {
  key: string;
  write: string;
  cached: string;
  fresh: string;
}

interface ResourceReport {
  resource: string;
  kind: CompiledResource['kind'];
  keys: number;
  mutations: number;
  stale: Finding[];
  note?: string;
}

/**
 * `walcache verify --confirm-database NAME`: the proof that a config is right for a schema.
 * Fills every resource, then makes random writes to every table the config reads, one at a
 * time; after each, waits until the running CDC and invalidator have processed it and
 * compares every cached value with a fresh load. A value still cached but different is
 * stale: the config (a custom resource's tags, usually) misses a dependency.
 */
export async function verifyCommand(clients: Clients, io: Io, options: VerifyOptions): Promise<ExitCode> {
  const env = clients.env;
  const pool = await clients.pg();
  const { rows } = await pool.query<{ db: string }>('select current_database() as db');
  const database = rows[0]?.db ?? '';
  if (options.confirmDatabase !== database) {
    throw new CliError(
      `verify writes random rows into every table the config reads, so it runs only on a database you name: ` +
        `DATABASE_URL is database "${database}"${options.confirmDatabase === undefined ? '' : `, not "${options.confirmDatabase}"`}. ` +
        `Point DATABASE_URL at a copy you may change, then pass --confirm-database <its name> ` +
        `(here: --confirm-database ${database}). Nothing was written.`,
      exitCodes.refused,
    );
  }
  const seed = options.seed ?? Math.floor(Math.random() * 1_000_000);
  const compiled = await clients.resources();
  const config = await loadConfigFile(
    chosenConfigPath({ config: env.WALCACHE_CONFIG, example: env.WALCACHE_EXAMPLE }),
  );
  const db = await clients.db();
  const queue = await clients.queue();
  const redis = await clients.cache();

  const slot = await readSlot(db, env.SLOT_NAME);
  if (!slot.active)
    throw new CliError(
      `no CDC streams from replication slot "${env.SLOT_NAME}"${slot.exists ? '' : ' (it does not exist)'}: ` +
        'verify checks the invalidations of the running system. Start walcache on this database with the ' +
        'same environment (npm start, or the cdc and invalidator apps), then run verify again.',
      exitCodes.unavailable,
    );
  const waitInvalidated = async (what: string) => {
    const { rows: beat } = await pool.query<{ lsn: string }>(
      'select pg_logical_emit_message(false, $1, $2)::text as lsn',
      [HEARTBEAT_PREFIX, String(Date.now())],
    );
    const mark = beat[0]!.lsn;
    const deadline = Date.now() + PIPELINE_TIMEOUT_MS;
    while (!(await pipelinePassed(db, queue, env.SLOT_NAME, mark))) {
      if (Date.now() > deadline)
        throw new CliError(
          `${what} was not invalidated within ${PIPELINE_TIMEOUT_MS / 1000} s: is the CDC streaming from slot ` +
            `"${env.SLOT_NAME}" and an invalidator working queue "${env.QUEUE_NAME}" (walcache status)?`,
          exitCodes.unavailable,
        );
      await new Promise((r) => setTimeout(r, PIPELINE_POLL_MS));
    }
  };
  await waitInvalidated('the pipeline check before any write');

  const catalog = await readCatalog(pool, compiled.tables);
  const tables = compiled.tables.map((t) => catalog.tables.get(t)).filter((t): t is TableInfo => !!t);
  const random = seededRandom(seed);
  const cache = new ReadThroughCache({
    redis,
    db,
    prefix: env.CACHE_PREFIX,
    maxTtlSeconds: env.CACHE_TTL_SECONDS,
    maxNegativeTtlSeconds: env.NEGATIVE_TTL_SECONDS,
  });

  const reports = new Map<string, ResourceReport>();
  const samples = new Map<string, Sample[]>();
  for (const resource of compiled.resources) {
    const found = await sampleParams(resource, config, catalog.tables, pool, random);
    const unique = new Map<string, Sample>();
    for (const params of found.params) {
      const parsed = resource.params.safeParse(params);
      if (parsed.success)
        unique.set(resource.key(parsed.data), { key: resource.key(parsed.data), params: parsed.data });
    }
    samples.set(resource.name, [...unique.values()]);
    reports.set(resource.name, {
      resource: resource.name,
      kind: resource.kind,
      keys: unique.size,
      mutations: 0,
      stale: [],
      ...(found.note ? { note: found.note } : {}),
    });
  }
  const fill = async () => {
    for (const resource of compiled.resources)
      for (const s of samples.get(resource.name)!) await cache.get(resource, s.params);
  };
  await fill();
  const keyCount = [...samples.values()].reduce((n, s) => n + s.length, 0);
  io.err(
    `verify: database "${database}", ${compiled.resources.length} resources, ${keyCount} keys filled, ` +
      `${options.mutations} writes on ${tables.length} tables (seed ${seed})`,
  );

  const linking = new Set(compiled.watched.map((w) => `${w.table}.${w.column}`));
  const maker = new WriteMaker(pool, tables, catalog.tables, random, seed, FOCUS_KEYS, linking);
  const rejected = new Map<string, number>();
  const written = new Set<string>();
  const writable = tables.flatMap((t) =>
    t.columnOrder.filter((c) => !t.columns.get(c)!.generatedAlways).map((c) => `${t.tagName}.${c}`),
  );
  let applied = 0;
  let staleTotal = 0;
  const every = Math.max(1, Math.floor(options.mutations / 10));
  for (let i = 0; i < options.mutations; i++) {
    let write: Write | undefined;
    for (let attempt = 0; attempt < WRITE_ATTEMPTS && !write; attempt++) {
      const candidate = await maker.next(attempt > 0);
      if (!candidate) continue;
      try {
        const result = await pool.query(candidate.sql, candidate.values);
        if ((result.rowCount ?? 0) > 0) write = candidate;
      } catch (error) {
        // The schema refused it (a constraint the catalog does not describe): not a finding.
        // Anything else (a lost connection, a permission) ends the run.
        if (!isConstraintRefusal(error)) throw error;
        rejected.set(candidate.table, (rejected.get(candidate.table) ?? 0) + 1);
      }
    }
    if (!write) continue;
    applied += 1;
    for (const c of write.columns) written.add(`${write.table}.${c}`);
    const text = describeWrite(write);
    await waitInvalidated(`write ${i + 1} (${text})`);
    for (const resource of compiled.resources) {
      const report = reports.get(resource.name)!;
      if (resource.reads.includes(canonicalTableName(write.table))) report.mutations += 1;
      for (const s of samples.get(resource.name)!) {
        const redisKey = cache.keys.value(s.key);
        const raw = await redis.getBuffer(redisKey);
        if (!raw) continue; // invalidated (or expired): the next fill reloads it
        const value = await resource.load(db, s.params);
        const fresh = bodyOf(value);
        const cached = decodeEntry(raw).body;
        if (cached.equals(fresh)) continue;
        report.stale.push({ key: s.key, write: text, cached: clip(cached), fresh: clip(fresh) });
        staleTotal += 1;
        // Dropped so the next write is judged on a fresh value, not blamed for this one.
        await redis.unlink(redisKey);
      }
    }
    await fill();
    if ((i + 1) % every === 0 || i + 1 === options.mutations)
      io.err(`  … ${i + 1}/${options.mutations} writes · ${applied} applied · ${staleTotal} stale values`);
  }

  const list = [...reports.values()];
  const unwritten = writable.filter((c) => !written.has(c));
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          database,
          seed,
          mutations: applied,
          rejected: Object.fromEntries(rejected),
          columns: { writable: writable.length, written: writable.length - unwritten.length, unwritten },
          resources: list,
        },
        null,
        2,
      ),
    );
  } else {
    printReport(io, list, { seed, requested: options.mutations, applied, rejected, writable, unwritten });
  }
  return staleTotal > 0 ? exitCodes.failed : exitCodes.ok;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
function isConstraintRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

function clip(body: Buffer): string {
  const text = body.toString('utf8');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function verdict(r: ResourceReport): string {
  if (r.stale.length > 0) return 'STALE';
  if (r.keys === 0 || r.mutations === 0) return 'not exercised';
  return 'ok';
}

function printReport(
  io: Io,
  list: ResourceReport[],
  run: {
    seed: number;
    requested: number;
    applied: number;
    rejected: Map<string, number>;
    writable: string[];
    unwritten: string[];
  },
): void {
  const width = Math.max(8, ...list.map((r) => r.resource.length));
  io.out(`${'resource'.padEnd(width)}  keys  writes  stale  verdict`);
  for (const r of list) {
    io.out(
      `${r.resource.padEnd(width)}  ${String(r.keys).padStart(4)}  ${String(r.mutations).padStart(6)}  ${String(
        r.stale.length,
      ).padStart(5)}  ${verdict(r)}${r.note ? ` (${r.note})` : ''}`,
    );
    for (const f of r.stale) {
      io.out(`    ${f.key} stale after: ${f.write}`);
      io.out(`      cached ${f.cached}`);
      io.out(`      fresh  ${f.fresh}`);
    }
  }
  const rejected = [...run.rejected].map(([t, n]) => `${t} ${n}`).join(', ');
  io.out(
    `${run.applied} of ${run.requested} writes applied${rejected ? ` (refused by the schema and replaced: ${rejected})` : ''}; ` +
      `replay with --seed ${run.seed} --mutations ${run.requested} on the same data`,
  );
  io.out(
    `columns written: ${run.writable.length - run.unwritten.length} of ${run.writable.length}` +
      (run.unwritten.length ? ` (not yet: ${run.unwritten.join(', ')}; more --mutations reach them)` : ''),
  );
  const bad = list.filter((r) => r.stale.length > 0);
  if (bad.length === 0) {
    const idle = list.filter((r) => verdict(r) === 'not exercised').map((r) => r.resource);
    io.out(
      `verdict: ok, no stale value in ${list.length} resources` +
        (idle.length ? ` (not exercised, so not proven: ${idle.join(', ')})` : ''),
    );
    return;
  }
  io.out(`verdict: STALE, ${bad.map((r) => r.resource).join(', ')} kept values a write had changed`);
  if (bad.some((r) => r.kind === 'custom'))
    io.out(
      '  a custom resource depends on more than its "tags" (or "reads") say: add what the write touched',
    );
  if (bad.some((r) => r.kind !== 'custom'))
    io.out(
      '  a declared resource went stale: its tags derive from the catalog, so this is a walcache bug or a ' +
        'database change the stream cannot see; please report it with the write above',
    );
}

/** Parameters to fill a resource with, from rows of its own tables. */
async function sampleParams(
  resource: CompiledResource,
  config: WalcacheConfig,
  tables: Map<string, TableInfo>,
  pool: {
    query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  },
  random: () => number,
): Promise<{ params: Params[]; note?: string }> {
  const declared = config.resources[resource.name];
  const pathParams = resource.routeParams.filter((p) => p.required);
  if (pathParams.length === 0) return { params: [{}] };
  // Which table and columns give each required parameter.
  let source: { table: TableInfo; columns: string[] } | undefined;
  if (declared?.by !== undefined) {
    const table = tables.get(canonicalTableName(declared.table));
    if (table) source = { table, columns: Array.isArray(declared.by) ? declared.by : [declared.by] };
  } else if (declared?.list) {
    const parent = declared.list.parent;
    const filtered = Object.entries(declared.list.filter ?? {}).filter(
      ([, v]) => v !== null && typeof v === 'object',
    );
    if (parent && filtered.length === 0) {
      const table = tables.get(canonicalTableName(parent.table));
      if (table?.primaryKey.length === 1) source = { table, columns: table.primaryKey };
      return source ? { params: await rowsAs(source, [parent.param], pool, random) } : { params: [] };
    }
    if (!parent && filtered.length === 1) {
      const table = tables.get(canonicalTableName(declared.table));
      const [column, value] = filtered[0]!;
      if (table) {
        const name = (value as { param: string }).param;
        const { rows } = await pool.query<{ v: string }>(
          `select distinct ${quote(column)}::text as v from ${quoteTable(table)} where ${quote(column)} is not null order by 1 limit ${FOCUS_KEYS + SPREAD_KEYS}`,
        );
        return { params: rows.map((r) => ({ [name]: r.v })) };
      }
    }
  } else if (resource.kind === 'custom') {
    // A custom resource's parameters are its own; when they are columns of the first table
    // it reads, its rows give them.
    const table = tables.get(resource.reads[0] ?? '');
    const names = pathParams.map((p) => p.name);
    if (table && names.every((n) => table.columns.has(n))) source = { table, columns: names };
  }
  if (!source)
    return { params: [], note: `cannot sample its parameters ${pathParams.map((p) => p.name).join(', ')}` };
  return {
    params: await rowsAs(
      source,
      pathParams.map((p) => p.name),
      pool,
      random,
    ),
  };
}

/** The first rows of a table in key order and a few random ones, as parameter objects. */
async function rowsAs(
  source: { table: TableInfo; columns: string[] },
  names: string[],
  pool: {
    query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  },
  random: () => number,
): Promise<Params[]> {
  const { table, columns } = source;
  const order = (table.primaryKey.length ? table.primaryKey : columns).map(quote).join(', ');
  const select = `select ${columns.map((c, i) => `${quote(c)}::text as v${i}`).join(', ')} from ${quoteTable(table)}
    where ${columns.map((c) => `${quote(c)} is not null`).join(' and ')} order by ${order}`;
  const { rows: first } = await pool.query<Record<string, string>>(`${select} limit ${FOCUS_KEYS}`);
  const { rows: counted } = await pool.query<{ n: string }>(windowCount(quoteTable(table)));
  const n = Number(counted[0]?.n ?? 0);
  const spread: Record<string, string>[] = [];
  for (let i = 0; i < SPREAD_KEYS && n > 0; i++) {
    const { rows } = await pool.query<Record<string, string>>(`${select} offset $1 limit 1`, [
      Math.floor(random() * n),
    ]);
    spread.push(...rows);
  }
  const params = [...first, ...spread].map((row) =>
    Object.fromEntries(names.map((name, i) => [name, row[`v${i}`]!])),
  );
  // One key no row has yet (the next id): a cached 404 that an insert must invalidate.
  const key = table.columns.get(columns[0]!);
  if (columns.length === 1 && key && ['int2', 'int4', 'int8'].includes(key.type)) {
    const { rows } = await pool.query<{ v: string }>(
      `select (coalesce(max(${quote(columns[0]!)}), 0) + 1)::text as v from ${quoteTable(table)}`,
    );
    if (rows[0]) params.push({ [names[0]!]: rows[0].v });
  }
  return params;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteTable = (t: TableInfo) => `${quote(t.schema)}.${quote(t.name)}`;
