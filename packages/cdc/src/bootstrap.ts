import type { SourceIdentity, WatchedColumn } from '@walcache/core';
import {
  assertCanRead,
  currentRole,
  quoteIdent as quoteName,
  TABLE_TAG_NAME_SQL as TAG_NAME,
} from '@walcache/db';
import type pg from 'pg';

/** Fatal setup problems: the CDC refuses to start and says exactly what to change. */
export class CdcSetupError extends Error {
  readonly code = 'WALCACHE_CDC_SETUP';
  constructor(
    message: string,
    readonly fix?: string,
  ) {
    super(fix ? `${message}\n  fix: ${fix}` : message);
  }
}

export interface BootstrapOptions {
  slotName: string;
  publicationName: string;
  /** Tables whose changes can affect a cached value (the publication's tables). */
  tables: readonly string[];
  watched: readonly WatchedColumn[];
}

export interface BootstrapResult {
  slotCreated: boolean;
  publicationCreated: boolean;
  /** Where the slot stands: the first LSN that will be streamed. */
  confirmedFlushLsn: string | null;
  /** Primary key columns of every published table. */
  primaryKeys: Map<string, string[]>;
  /** pg_class oid of every published table: a table renamed later is still recognised. */
  relationOids: Map<string, number>;
  /** The cluster and timeline the slot streams from. */
  identity: SourceIdentity;
}

/** The one method the CDC needs from pg's Client or Pool (a Pool reconnects by itself). */
export interface SqlClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

type Queryable = SqlClient;

/** Checks wal_level and replica identities; creates the publication and the slot if missing. */
export async function bootstrapReplication(
  db: Queryable,
  options: BootstrapOptions,
): Promise<BootstrapResult> {
  const { rows: level } = await db.query<{ wal_level: string }>('show wal_level');
  if (level[0]?.wal_level !== 'logical') {
    throw new CdcSetupError(
      `wal_level is ${level[0]?.wal_level ?? 'unknown'}, logical replication needs "logical"`,
      "ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL",
    );
  }

  // Least privilege (docs/operations.md): a REPLICATION login that can read the published
  // tables; the publication may be created ahead of time by the tables' owner.
  const role = await currentRole(db);
  if (!role.superuser && !role.replication) {
    throw new CdcSetupError(
      `role ${role.role} lacks the REPLICATION attribute, which creating and reading a replication slot needs`,
      `ALTER ROLE ${quoteName(role.role)} REPLICATION;`,
    );
  }
  await assertCanRead(db, options.tables);

  // Watched columns are read from the old row on UPDATE/DELETE: only REPLICA IDENTITY FULL
  // puts non-key old values into the WAL.
  const watchedTables = [...new Set(options.watched.map((w) => w.table))];
  if (watchedTables.length > 0) {
    const { rows } = await db.query<{ relname: string; relreplident: string }>(
      `select ${TAG_NAME} as relname, c.relreplident from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where ${TAG_NAME} = any($1::text[])`,
      [watchedTables],
    );
    for (const table of watchedTables) {
      const row = rows.find((r) => r.relname === table);
      if (!row)
        throw new CdcSetupError(
          `table ${qualified(table)} does not exist`,
          'create it, or fix the config that names it',
        );
      const keyOnly = await primaryKeyColumns(db, table);
      const needsFull = options.watched.some((w) => w.table === table && !keyOnly.includes(w.column));
      if (needsFull && row.relreplident !== 'f') {
        throw new CdcSetupError(
          `table ${qualified(table)} has watched columns (${options.watched
            .filter((w) => w.table === table)
            .map((w) => w.column)
            .join(', ')}) but not REPLICA IDENTITY FULL, so their old values are missing from the WAL`,
          `ALTER TABLE ${qualified(table)} REPLICA IDENTITY FULL;`,
        );
      }
    }
  }

  let publicationCreated = false;
  const { rowCount: pubExists } = await db.query('select 1 from pg_publication where pubname = $1', [
    options.publicationName,
  ]);
  const tableList = options.tables.map(qualified).join(', ');
  const pubName = quoteName(options.publicationName);
  if (!pubExists) {
    if (!role.superuser) await assertCanCreatePublication(db, role.role, options, tableList);
    // Via the root: a change to a partition is published as a change of the partitioned table
    // the config names, so what reads the parent is invalidated.
    await db.query(
      `create publication ${quoteIdent(options.publicationName)} for table ${tableList} with (publish_via_partition_root = true)`,
    );
    publicationCreated = true;
  } else {
    // Add tables a newer release depends on; never drop tables an operator added.
    const { rows } = await db.query<{ tablename: string }>(
      `select case when schemaname = 'public' then tablename::text else schemaname || '.' || tablename end as tablename
         from pg_publication_tables where pubname = $1`,
      [options.publicationName],
    );
    const missing = options.tables.filter((t) => !rows.some((r) => r.tablename === t));
    if (missing.length > 0 && !role.superuser) {
      const { rows: owned } = await db.query<{ ok: boolean }>(
        `select pg_has_role(p.pubowner, 'USAGE') and coalesce(bool_and(pg_has_role(c.relowner, 'USAGE')), true) as ok
         from pg_publication p
         left join (pg_class c join pg_namespace n on n.oid = c.relnamespace) on ${TAG_NAME} = any($2::text[])
         where p.pubname = $1 group by p.pubowner`,
        [options.publicationName, missing],
      );
      if (!owned[0]?.ok) {
        throw new CdcSetupError(
          `publication ${options.publicationName} lacks tables walcache reads (${missing.join(', ')}) and role ${role.role} may not add them (that needs ownership of the publication and the tables)`,
          `as the owner: ALTER PUBLICATION ${pubName} ADD TABLE ${missing.map(qualified).join(', ')};`,
        );
      }
    }
    if (missing.length > 0) {
      await db.query(
        `alter publication ${quoteIdent(options.publicationName)} add table ${missing.map(qualified).join(', ')}`,
      );
    }
  }

  let slotCreated = false;
  const { rows: slots } = await db.query<{
    plugin: string;
    confirmed_flush_lsn: string | null;
    wal_status: string | null;
  }>('select plugin, confirmed_flush_lsn, wal_status from pg_replication_slots where slot_name = $1', [
    options.slotName,
  ]);
  const slot = slots[0];
  if (slot && slot.plugin !== 'pgoutput') {
    throw new CdcSetupError(
      `replication slot ${options.slotName} uses plugin ${slot.plugin}, walcache needs pgoutput`,
      `SELECT pg_drop_replication_slot('${options.slotName}'); or set SLOT_NAME to another name`,
    );
  }
  let confirmedFlushLsn = slot?.confirmed_flush_lsn ?? null;
  if (!slot) {
    const { rows: created } = await db.query<{ lsn: string }>(
      "select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')",
      [options.slotName],
    );
    confirmedFlushLsn = created[0]?.lsn ?? null;
    slotCreated = true;
  }
  const primaryKeys = new Map<string, string[]>();
  for (const table of options.tables) primaryKeys.set(table, await primaryKeyColumns(db, table));
  const { rows: oids } = await db.query<{ relname: string; oid: string }>(
    `select ${TAG_NAME} as relname, c.oid::int8::text as oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where ${TAG_NAME} = any($1::text[])`,
    [[...options.tables]],
  );
  const relationOids = new Map(oids.map((r) => [r.relname, Number(r.oid)]));
  const identity = await sourceIdentity(db);
  return { slotCreated, publicationCreated, confirmedFlushLsn, primaryKeys, relationOids, identity };
}

/**
 * CREATE PUBLICATION … FOR TABLE needs CREATE on the database and ownership of every table.
 * A least-privilege walcache role owns neither: the operator creates the publication ahead
 * of time and walcache only checks it; the message says both ways out.
 */
async function assertCanCreatePublication(
  db: Queryable,
  role: string,
  options: BootstrapOptions,
  tableList: string,
): Promise<void> {
  const { rows } = await db.query<{ can_create: boolean; database: string; not_owned: string[] }>(
    `select has_database_privilege(current_database(), 'CREATE') as can_create, current_database() as database,
       coalesce((select array_agg(${TAG_NAME} order by ${TAG_NAME}) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where ${TAG_NAME} = any($1::text[])
                   and not pg_has_role(c.relowner, 'USAGE')), '{}') as not_owned`,
    [[...options.tables]],
  );
  const check = rows[0];
  if (!check || (check.can_create && check.not_owned.length === 0)) return;
  const create = `CREATE PUBLICATION ${quoteName(options.publicationName)} FOR TABLE ${tableList};`;
  const lacks = [
    check.can_create ? undefined : `CREATE on database ${check.database}`,
    check.not_owned.length > 0 ? `ownership of ${check.not_owned.map(qualified).join(', ')}` : undefined,
  ].filter((x) => x !== undefined);
  throw new CdcSetupError(
    `publication ${options.publicationName} does not exist and role ${role} cannot create it: it lacks ${lacks.join(' and ')}`,
    check.not_owned.length > 0
      ? `as the tables' owner, create it ahead of time: ${create}`
      : `GRANT CREATE ON DATABASE ${quoteName(check.database)} TO ${quoteName(role)}; or, as an owner: ${create}`,
  );
}

/**
 * The cluster's system identifier and its current WAL timeline (the first 8 hex digits of
 * the current WAL file's name: the timeline WAL is inserted on now, right after a
 * promotion too, unlike pg_control_checkpoint()'s, which waits for the next checkpoint).
 */
export async function sourceIdentity(db: Queryable): Promise<SourceIdentity> {
  const { rows } = await db.query<{ system_id: string; wal_file: string }>(
    `select (select system_identifier::text from pg_control_system()) as system_id,
            pg_walfile_name(pg_current_wal_lsn()) as wal_file`,
  );
  const row = rows[0];
  const timeline = Number.parseInt(row?.wal_file.slice(0, 8) ?? '', 16);
  if (!row?.system_id || !Number.isInteger(timeline))
    throw new Error(`could not read the database identity (got ${JSON.stringify(row)})`);
  return { systemId: row.system_id, timeline };
}

async function primaryKeyColumns(db: Queryable, table: string): Promise<string[]> {
  const { rows } = await db.query<{ attname: string }>(
    `select a.attname from pg_index i
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
     where i.indrelid = $1::regclass and i.indisprimary
     order by array_position(i.indkey::int2[], a.attnum)`,
    [qualified(table)],
  );
  return rows.map((r) => r.attname);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `orders` → public.orders; `lib.books` → lib.books: schema-qualified, quoted where SQL needs it. */
function qualified(table: string): string {
  const dot = table.indexOf('.');
  return dot < 0
    ? `public.${quoteName(table)}`
    : `${quoteName(table.slice(0, dot))}.${quoteName(table.slice(dot + 1))}`;
}
