import { bootstrapReplication } from '@walcache/cdc';
import { parseConfig, type WalcacheConfigInput } from '@walcache/config';
import { type PostgresServer, startPostgres } from '@walcache/testkit';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type CompiledConfig, ConfigMismatchError, compileConfig, type Db } from '../src/index.ts';

/**
 * A config that does not match the database stops the process with the resource, the field
 * and the fix. Each message a user can meet is asserted here, against a real catalog.
 */
let server: PostgresServer;
let db: pg.Pool;

beforeAll(async () => {
  server = await startPostgres();
  db = new pg.Pool({ connectionString: server.url, max: 2 });
  db.on('error', () => undefined); // the server stops before the pool at the end
  await db.query(`
    create table film (id bigint primary key, title text not null, rating int);
    create table agents (id bigint primary key, name text not null, active boolean not null default true);
    create table writers (id bigint primary key, name text not null);
    create table articles (id bigint primary key, writer bigint not null, title text not null);
    create table reviews (id bigint primary key, film_id bigint not null references film(id),
                          second_film bigint references film(id), body text);
    create table notes (body text);
  `);
});

afterAll(async () => {
  await db?.end();
  await server?.stop();
});

async function problems(config: WalcacheConfigInput): Promise<string[]> {
  try {
    await compileConfig(parseConfig(config), db);
  } catch (error) {
    if (error instanceof ConfigMismatchError) return error.problems;
    throw error;
  }
  throw new Error('the config compiled');
}

describe('a config that does not match the database names the fix', () => {
  it('a misspelt column: "did you mean"', async () => {
    expect(
      await problems({ resources: { film: { table: 'film', by: 'id', columns: ['id', 'titel'] } } }),
    ).toEqual(['resource "film" columns: table film has no column "titel"; did you mean "title"?']);
  });

  it('a table that does not exist, with a suggestion', async () => {
    expect(await problems({ resources: { film: { table: 'films', by: 'id' } } })).toEqual([
      'resource "film": table films does not exist; did you mean "film"?',
    ]);
  });

  it('an embed with no foreign key: name the column with "via"', async () => {
    const found = await problems({
      resources: { article: { table: 'articles', by: 'id', embed: { author: { one: 'writers' } } } },
    });
    expect(found).toEqual([
      'resource "article" embed "author": no foreign key from articles to writers; name the column with "via"',
    ]);
  });

  it('two foreign keys to one table: pick one with "via"', async () => {
    const found = await problems({
      resources: { film: { table: 'film', by: 'id', embed: { reviews: { many: 'reviews' } } } },
    });
    expect(found[0]).toMatch(
      /2 foreign keys from reviews to film \(film_id; second_film\); pick one with "via"/,
    );
  });

  it('a lookup by a column without a unique index', async () => {
    const found = await problems({ resources: { agent: { table: 'agents', by: 'name' } } });
    expect(found).toEqual([
      'resource "agent": lookup "by: name" on agents: no unique index on (name); CREATE UNIQUE INDEX ON agents (name); or look up by the primary key',
    ]);
  });

  it('a table without a primary key', async () => {
    const found = await problems({ resources: { notes: { table: 'notes', list: { paginate: false } } } });
    expect(found).toContain(
      'resource "notes": table notes has no primary key; walcache needs one to name its rows',
    );
  });

  it('every problem at once, not one per start', async () => {
    const found = await problems({
      resources: {
        film: { table: 'film', by: 'id', columns: ['titel'] },
        agent: { table: 'agents', by: 'name' },
      },
    });
    expect(found).toHaveLength(2);
  });

  it('"via" without a foreign key joins the named column to the primary key', async () => {
    const compiled = await compileConfig(
      parseConfig({
        resources: {
          article: { table: 'articles', by: 'id', embed: { author: { one: 'writers', via: 'writer' } } },
        },
      }),
      db,
    );
    expect(compiled.resources[0]!.reads).toEqual(['articles', 'writers']);
  });
});

describe('a table whose watched columns lack REPLICA IDENTITY FULL', () => {
  let compiled: CompiledConfig;
  beforeAll(async () => {
    compiled = await compileConfig(
      parseConfig({
        resources: {
          film: { table: 'film', by: 'id', embed: { reviewCount: { count: 'reviews', via: 'film_id' } } },
        },
      }),
      db,
    );
  });

  it('knows which columns each table has read: an UPDATE of any other changes no cached value', () => {
    // film: every column (no column list); reviews: only what the count joins on, and its keys.
    expect(compiled.readColumns).toEqual({
      film: ['id', 'rating', 'title'],
      reviews: ['film_id', 'id', 'second_film'],
    });
  });

  it('is derived from the config (reviews.film_id is watched) and stops the CDC with the ALTER TABLE', async () => {
    expect(compiled.needsFullIdentity).toEqual(['reviews']);
    await expect(
      bootstrapReplication(db, {
        slotName: 'walcache_startup_errors',
        publicationName: 'walcache_startup_errors',
        tables: compiled.tables,
        watched: compiled.watched,
      }),
    ).rejects.toThrow(
      /table public\.reviews has watched columns \(film_id\)[\s\S]*ALTER TABLE public\.reviews REPLICA IDENTITY FULL;/,
    );
  });
});

describe('a custom resource (the escape hatch)', () => {
  const config = (tags?: (p: Record<string, unknown>, v: unknown) => string[]) =>
    parseConfig({
      custom: {
        'film-count': {
          route: '/v1/film-count/{rating}',
          reads: ['film', 'public.reviews'],
          params: z.object({ rating: z.string().regex(/^\d+$/) }),
          load: async (d: Db, p: { rating: string }) => {
            const { rows } = await sql<{
              n: number;
            }>`select count(*)::int as n from film where rating = ${Number(p.rating)}`.execute(d);
            return { rating: p.rating, films: rows[0]!.n };
          },
          ...(tags ? { tags } : {}),
        },
      },
    });

  it('without tags depends on every change of every table it reads; its tables are published', async () => {
    const compiled = await compileConfig(config(), db);
    const resource = compiled.byName('film-count')!;
    expect(resource.tags({ rating: '3' }, { films: 0 })).toEqual(['table:film', 'table:reviews']);
    expect(compiled.tables).toEqual(['film', 'reviews']);
    const key = resource.key(resource.params.parse({ rating: '3' }));
    expect(key).toBe('film-count:3');
    expect(resource.paramsFromKey?.(key)).toEqual({ rating: '3' });
    const kysely = new Kysely({ dialect: new PostgresDialect({ pool: db }) });
    await db.query('insert into film (id, title, rating) values (1, $1, 3), (2, $2, 3)', ['A', 'B']);
    expect(await resource.load(kysely, { rating: '3' })).toEqual({ rating: '3', films: 2 });
    expect(resource.routeParams).toEqual([
      expect.objectContaining({ name: 'rating', in: 'path', required: true }),
    ]);
  });

  it('with its own tags uses them; reading a table that does not exist stops the start', async () => {
    const compiled = await compileConfig(
      config(() => ['row:film:1']),
      db,
    );
    expect(compiled.byName('film-count')!.tags({ rating: '3' }, null)).toEqual(['row:film:1']);
    await expect(
      compileConfig(
        parseConfig({ custom: { x: { route: '/v1/x', reads: ['nope'], load: async () => null } } }),
        db,
      ),
    ).rejects.toThrow('custom resource "x": reads nope, which does not exist');
  });

  it('is refused in a data-only config (a load must be a function)', () => {
    expect(() =>
      parseConfig({ custom: { x: { route: '/v1/x', reads: ['film'], load: 'select 1' } } }),
    ).toThrow(/load must be a function/);
  });
});
