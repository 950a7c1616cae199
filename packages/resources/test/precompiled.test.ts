import { createDb, createPool } from '@walcache/db';
import { type PostgresServer, startPostgres } from '@walcache/testkit';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { placeholderValues, precompiled } from '../src/sql.ts';

/**
 * A lookup's query is compiled once and then bound to each call's values: the same rows as
 * compiling it every time, for text and array parameters, beside constants the shape binds
 * itself; a shape that binds a value twice is compiled per call, still right. A prepared
 * one is parsed and planned once per connection.
 */
let server: PostgresServer;
let pool: pg.Pool;
let db: Kysely<unknown>;

beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on('error', () => undefined); // the server stops before the pool at the end
  db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  await pool.query(`create table ships (id bigint primary key, name text not null, fleet text not null);
    insert into ships select i, 'ship-' || i, case when i % 2 = 0 then 'blue' else 'red' end
    from generate_series(1, 20) as i`);
});

afterAll(async () => {
  await db?.destroy();
  await server?.stop();
});

it('binds each call to the query compiled once, with the constants it binds itself', async () => {
  let built = 0;
  const build = ([id, fleet]: string[]) => {
    built += 1;
    return sql`select name from ships where id = cast(${id} as bigint) and fleet = ${fleet} and name <> ${'none'}`;
  };
  const query = precompiled(build, placeholderValues(2), (values) => values);
  expect((await query(db, ['4', 'blue'])).rows).toEqual([{ name: 'ship-4' }]);
  expect((await query(db, ['4', 'red'])).rows).toEqual([]);
  expect((await query(db, ['7', 'red'])).rows).toEqual([{ name: 'ship-7' }]);
  expect(built).toBe(1);
});

it('binds an array parameter', async () => {
  const build = (ids: string[]) =>
    sql`select name from ships where id = any(cast(${ids} as bigint[])) order by id`;
  const query = precompiled(build, placeholderValues(1), (ids) => [ids]);
  expect((await query(db, ['3', '5'])).rows).toEqual([{ name: 'ship-3' }, { name: 'ship-5' }]);
  expect((await query(db, ['9'])).rows).toEqual([{ name: 'ship-9' }]);
});

it('compiles per call a shape that binds a value twice', async () => {
  let built = 0;
  const build = ([id]: string[]) => {
    built += 1;
    return sql`select name from ships where id = cast(${id} as bigint) or id = cast(${id} as bigint) + 100`;
  };
  const query = precompiled(build, placeholderValues(1), (values) => values);
  expect((await query(db, ['2'])).rows).toEqual([{ name: 'ship-2' }]);
  expect((await query(db, ['3'])).rows).toEqual([{ name: 'ship-3' }]);
  expect(built).toBe(3);
});

it('a prepared lookup is parsed once per connection, under a name of its own text', async () => {
  // One connection, so pg_prepared_statements (per session) sees every call.
  const own = createPool({ connectionString: server.url, max: 1 });
  const ownDb = createDb(own);
  try {
    const byId = precompiled(
      ([id]: string[]) => sql`select name from ships where id = cast(${id} as bigint)`,
      placeholderValues(1),
      (values) => values,
      { prepared: true },
    );
    const byName = precompiled(
      ([name]: string[]) => sql`select id::text from ships where name = ${name}`,
      placeholderValues(1),
      (values) => values,
      { prepared: true },
    );
    const unprepared = precompiled(
      ([fleet]: string[]) => sql`select count(*)::int as n from ships where fleet = ${fleet}`,
      placeholderValues(1),
      (values) => values,
    );
    for (const id of ['1', '2', '3'])
      expect((await byId(ownDb, [id])).rows).toEqual([{ name: `ship-${id}` }]);
    expect((await byName(ownDb, ['ship-5'])).rows).toEqual([{ id: '5' }]);
    expect((await unprepared(ownDb, ['red'])).rows).toEqual([{ n: 10 }]);
    const { rows } = await own.query<{ name: string; statement: string }>(
      'select name, statement from pg_prepared_statements order by statement',
    );
    expect(rows.map((r) => r.statement.replace(/^\/\* walcache:\w+ \*\/ /, ''))).toEqual([
      'select id::text from ships where name = $1',
      'select name from ships where id = cast($1 as bigint)',
    ]);
    expect(new Set(rows.map((r) => r.name)).size).toBe(2);
    expect(rows.every((r) => r.name.startsWith('walcache-'))).toBe(true);
    // On a client that does not prepare (the plain pool above), the mark is only a comment.
    expect((await byId(db, ['4'])).rows).toEqual([{ name: 'ship-4' }]);
  } finally {
    await ownDb.destroy();
  }
});
