import { ConnectionConfigError, permanentConnectionFailure } from '@walcache/config';
import type pg from 'pg';

/** The one method these checks need from a pg Pool or Client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/** Quotes an SQL identifier, for the statements the error messages suggest. */
export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/**
 * One query at startup: `ok`, or `unreachable` (down, starting, network) when retrying may
 * help. A failure retrying cannot fix (wrong password, untrusted certificate, no pg_hba
 * entry) throws a ConnectionConfigError, so the process stops with one line instead of
 * reconnecting forever.
 */
export async function probePostgres(db: Queryable, variable = 'DATABASE_URL'): Promise<'ok' | 'unreachable'> {
  try {
    await db.query('select 1');
    return 'ok';
  } catch (error) {
    const permanent = permanentConnectionFailure(error, variable, 'postgres');
    if (permanent) throw permanent;
    return 'unreachable';
  }
}

/** The connected role, and whether it is a superuser (who bypasses every check below). */
export async function currentRole(
  db: Queryable,
): Promise<{ role: string; superuser: boolean; replication: boolean }> {
  const { rows } = await db.query<{ role: string; rolsuper: boolean; rolreplication: boolean }>(
    'select current_user as role, rolsuper, rolreplication from pg_roles where rolname = current_user',
  );
  const row = rows[0];
  return {
    role: row?.role ?? 'unknown',
    superuser: row?.rolsuper ?? false,
    replication: row?.rolreplication ?? false,
  };
}

/**
 * Stops with the GRANT that fixes it when the role cannot SELECT one of `tables`: the API and the invalidator load from them, the CDC needs them readable too
 * (docs/operations.md, "Least privilege"). Tables that do not exist are the migrations'
 * business and are not reported here.
 */
/**
 * A table's name as the config and the tags name it (`orders` in schema public, else
 * `lib.books`), in SQL over `pg_class c join pg_namespace n`.
 */
export const TABLE_TAG_NAME_SQL =
  "(case when n.nspname = 'public' then c.relname::text else n.nspname || '.' || c.relname end)";

export async function assertCanRead(
  db: Queryable,
  tables: readonly string[],
  variable = 'DATABASE_URL',
): Promise<void> {
  const { rows } = await db.query<{ nspname: string; relname: string }>(
    `select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where ${TABLE_TAG_NAME_SQL} = any($1::text[])
       and not has_table_privilege(c.oid, 'SELECT')
     order by n.nspname, c.relname`,
    [[...tables]],
  );
  if (rows.length === 0) return;
  const { role } = await currentRole(db);
  const list = rows
    .map((r) => `${r.nspname === 'public' ? 'public' : quoteIdent(r.nspname)}.${quoteIdent(r.relname)}`)
    .join(', ');
  throw new ConnectionConfigError(
    variable,
    `role ${role} lacks SELECT on ${list}; fix: GRANT SELECT ON ${list} TO ${quoteIdent(role)};`,
  );
}

/**
 * The startup check of an app that reads `tables`: a permanent connection problem or a
 * missing SELECT stops it; Postgres merely down does not (the app degrades and reconnects).
 */
export async function verifyPostgres(db: Queryable, tables: readonly string[]): Promise<void> {
  if ((await probePostgres(db)) === 'ok') await assertCanRead(db, tables);
}
