import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { loadConfigFile } from '@walcache/config';
import {
  type Catalog,
  type ColumnInfo,
  compileWithCatalog,
  isParamType,
  readCatalog,
  type TableInfo,
} from '@walcache/resources';
import type { Clients } from '../context.ts';
import { CliError, exitCodes, usageError } from '../errors.ts';
import type { Io } from '../io.ts';

export interface InitOptions {
  out: string;
  force: boolean;
  schemas: string[];
}

/**
 * `walcache init`: reads the catalog of DATABASE_URL and writes a starting config, an entity
 * per table by its primary key with its foreign keys embedded, and a page of its rows. The
 * file is compiled against the same catalog before it replaces anything: what init writes
 * starts.
 */
export async function initCommand(clients: Clients, io: Io, options: InitOptions): Promise<void> {
  const out = resolve(options.out);
  if (!['.yaml', '.yml'].includes(extname(out).toLowerCase()))
    throw usageError(`--out ${options.out}: init writes YAML; name a .yaml or .yml file`);
  if (existsSync(out) && !options.force)
    throw new CliError(
      `${options.out} already exists; nothing was written. Pass --force to overwrite it, or --out <file> to write elsewhere.`,
      exitCodes.refused,
    );
  const pool = await clients.pg();
  const { rows } = await pool.query<{ db: string }>('select current_database() as db');
  const database = rows[0]?.db ?? '?';
  const catalog = await readCatalog(pool, { schemas: options.schemas });
  if (catalog.tables.size === 0)
    throw new CliError(
      `database "${database}" has no tables in schema ${options.schemas.join(', ')}; pass --schema <name> for another schema`,
      exitCodes.notFound,
    );
  const written = writeStartingConfig(catalog, { database, schemas: options.schemas });
  if (written.resources === 0)
    throw new CliError(
      `no table of database "${database}" can be served:\n${written.skipped.map((s) => `  - ${s}`).join('\n')}`,
      exitCodes.failed,
    );

  // Written beside the target, loaded and compiled like any start would, then moved into
  // place: a failure leaves the old file (if any) untouched.
  const temp = `${out}.init-${process.pid}.yaml`;
  writeFileSync(temp, written.text);
  try {
    const compiled = compileWithCatalog(await loadConfigFile(temp), catalog);
    renameSync(temp, out);
    for (const warning of compiled.warnings) io.err(`note: ${warning}`);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new CliError(
      `init wrote a config that does not compile (a walcache bug, please report it): ${error instanceof Error ? error.message : String(error)}`,
      exitCodes.failed,
      { cause: error },
    );
  }
  for (const s of written.skipped) io.err(`skipped ${s}`);
  io.out(
    `wrote ${options.out}: ${written.resources} resources from ${written.tables} tables of database "${database}"` +
      (written.skipped.length
        ? ` (${written.skipped.length} skipped, each with the reason in the file)`
        : ''),
  );
  io.out(
    `next: edit it (docs/config.md), then prove it against a copy of this database:\n` +
      `  WALCACHE_CONFIG=${options.out} walcache verify --confirm-database <the copy's name>  (docs/cli.md)`,
  );
}

export interface StartingConfig {
  text: string;
  resources: number;
  tables: number;
  skipped: string[];
}

/** kysely, knex, Rails/Ecto, Prisma, Drizzle, Flyway, Liquibase, Alembic, TypeORM: not data a team serves. */
const MIGRATION_TOOL_TABLE =
  /^(kysely_migration(_lock)?|knex_migrations(_lock)?|schema_migrations|_prisma_migrations|__drizzle_migrations|flyway_schema_history|databasechangelog(lock)?|alembic_version|migrations|typeorm_metadata)$/i;

/** Names a list's order may be guessed from, best first: "newest first" is what pages usually want. */
const CREATED_COLUMNS = ['created_at', 'inserted_at', 'createdAt', 'created', 'created_on'];

/** The starting config as YAML text: deterministic for one catalog (a test diffs it). */
export function writeStartingConfig(
  catalog: Catalog,
  about: { database: string; schemas: string[] },
): StartingConfig {
  const lines: string[] = [
    `# walcache config for database "${about.database}" (schema ${about.schemas.join(', ')}), written by \`walcache init\`.`,
    '# A starting point, not a finished API: every table by its primary key with the rows its',
    '# foreign keys point to embedded, and a page of its rows. Keep what you serve, drop the rest,',
    '# add lookups by unique columns, to-many embeds and counts (docs/config.md). Then prove it',
    '# against a copy of the database with `walcache verify` (docs/cli.md).',
    'resources:',
  ];
  const skipped: string[] = [];
  let resources = 0;
  let tables = 0;
  const served = new Set<string>();
  const sorted = [...catalog.tables.values()].sort((a, b) => a.tagName.localeCompare(b.tagName));
  for (const t of sorted) {
    const why = unservable(t);
    if (why) skipped.push(`${t.tagName}: ${why}`);
    else served.add(t.tagName);
  }
  const names = resourceNames([...served]);
  for (const t of sorted) {
    if (!served.has(t.tagName)) {
      lines.push(`  # ${skipped.find((s) => s.startsWith(`${t.tagName}:`))}`);
      continue;
    }
    tables += 1;
    const name = names.get(t.tagName)!;
    const pk = t.primaryKey;
    lines.push(`  # ${t.tagName}: one row by its primary key (${pk.join(', ')})`);
    const otherUniques = t.uniques.filter(
      (u) => !(u.length === pk.length && u.every((c) => pk.includes(c))) && u.every((c) => t.columns.has(c)),
    );
    for (const u of otherUniques)
      lines.push(
        `  # also unique: (${u.join(', ')}); a lookup by it is a resource with by: ${u.length === 1 ? u[0] : `[${u.join(', ')}]`} and its own route`,
      );
    lines.push(`  ${name}:`, `    table: ${scalar(t.tagName)}`);
    lines.push(`    by: ${pk.length === 1 ? scalar(pk[0]!) : `[${pk.map(scalar).join(', ')}]`}`);
    const embeds = embedLines(t, catalog, served);
    if (embeds.length > 0) lines.push('    embed:', ...embeds);
    const children = sorted.filter(
      (c) => served.has(c.tagName) && c.foreignKeys.some((fk) => fk.references === t.tagName),
    );
    for (const c of children)
      lines.push(
        `    # rows of ${c.tagName} point here: embed them with { many: ${c.tagName} } or count them with { count: ${c.tagName} }`,
      );
    resources += 1;

    lines.push(`  ${name}-list:`, `    table: ${scalar(t.tagName)}`, `    route: ${scalar(`/v1/${name}`)}`);
    const created = CREATED_COLUMNS.map((c) => t.columns.get(c)).find(
      (c): c is ColumnInfo => !!c && !c.nullable && (c.type === 'timestamptz' || c.type === 'timestamp'),
    );
    if (created) {
      lines.push(
        `    # guessed: newest first by ${created.name} (the primary key breaks ties); change "order" to taste`,
        `    list: { order: [${scalar(`-${created.name}`)}] }`,
      );
    } else {
      lines.push(
        '    # in primary key order (no NOT NULL created_at-like column to guess from); set "order" for another',
        '    list: {}',
      );
    }
    resources += 1;
  }
  lines.push('defaults:', '  ttl: 3600', '  negativeTtl: 30', '');
  return { text: lines.join('\n'), resources, tables, skipped };
}

/** Why a table gets no resource, or undefined when it can be served. */
function unservable(t: TableInfo): string | undefined {
  if (MIGRATION_TOOL_TABLE.test(t.name))
    return "skipped: looks like a migration tool's bookkeeping; declare it by hand to serve it";
  if (t.primaryKey.length === 0)
    return `skipped: no primary key, and walcache names rows by it (ALTER TABLE ${t.tagName} ADD PRIMARY KEY (…))`;
  const bad = t.primaryKey.map((k) => t.columns.get(k)!).find((c) => !isParamType(c));
  if (bad)
    return `skipped: its primary key column ${bad.name} (${bad.sqlType}) cannot be taken from a URL or a cursor`;
  return undefined;
}

/** The embeds of a table's entity: one to-one per foreign key into a served table. */
function embedLines(t: TableInfo, catalog: Catalog, served: Set<string>): string[] {
  const lines: string[] = [];
  const taken = new Set(t.columnOrder);
  for (const fk of t.foreignKeys) {
    const target = catalog.tables.get(fk.references);
    const arrow = `${fk.columns.join(', ')} → ${fk.references}(${fk.referencedColumns.join(', ')})`;
    if (!target || !served.has(target.tagName)) {
      lines.push(`      # not embedded: ${arrow}; ${fk.references} is not served here`);
      continue;
    }
    const sameTarget = t.foreignKeys.filter((f) => f.references === fk.references).length;
    if (fk.columns.length > 1 && sameTarget > 1) {
      lines.push(
        `      # not embedded: ${arrow} has several columns and ${fk.references} has other foreign keys from here ("via" names one column)`,
      );
      continue;
    }
    const base =
      fk.columns.length === 1 ? fk.columns[0]!.replace(/(_(id|code|key|ref|uuid|fk)|Id)$/, '') : target.name;
    let field = /^[A-Za-z_][A-Za-z0-9_]*$/.test(base) && base !== '' ? base : `${target.name}_row`;
    if (taken.has(field)) field = `${field}_row`;
    while (taken.has(field)) field = `${field}_`;
    taken.add(field);
    const via = fk.columns.length === 1 ? `, via: ${scalar(fk.columns[0]!)}` : '';
    lines.push(
      `      # to-one by ${arrow}: every column of ${fk.references} unless you list "columns"`,
      `      ${field}: { one: ${scalar(fk.references)}${via} }`,
    );
  }
  return lines;
}

/** Resource names follow the key-prefix rule (lower case, digits, _ and -); `lib.x` → `lib-x`. */
function resourceNames(tables: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const table of tables) {
    let name = table
      .toLowerCase()
      .replace(/\./g, '-')
      .replace(/[^a-z0-9_-]/g, '_');
    if (!/^[a-z]/.test(name)) name = `t${name}`;
    name = name.slice(0, 57);
    let unique = name;
    for (let i = 2; used.has(unique) || used.has(`${unique}-list`); i++) unique = `${name}${i}`;
    used.add(unique);
    used.add(`${unique}-list`);
    out.set(table, unique);
  }
  return out;
}

/** A YAML scalar: plain when it is a simple name, else JSON's double-quoted form (valid YAML). */
function scalar(text: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(text) && !/^(true|false|null|yes|no|on|off|y|n)$/i.test(text)
    ? text
    : JSON.stringify(text);
}
