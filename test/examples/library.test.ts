import { join } from 'node:path';
import { loadConfigFile } from '@walcache/config';
import { compileConfig } from '@walcache/resources';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiProblems } from '../support/openapi-valid.ts';
import { type ExampleSystem, sqlFile, startSystem } from './support.ts';

/**
 * A schema no walcache code mentions (schema lib: a composite-key join table, an enum, a
 * domain, numeric, arrays, jsonb, tsvector, a partitioned table), served purely from a YAML
 * config. Every kind of change, made with plain pg, reaches the API.
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'library');
const configPath = join(fixture, 'walcache.config.yaml');

let system: ExampleSystem;
let writer: pg.Client;

beforeAll(async () => {
  system = await startSystem(sqlFile(join(fixture, 'schema.sql')), configPath);
  writer = system.writer;
});

afterAll(async () => {
  await system?.stop();
});

const read = (path: string) => system.read(path);

/** Reads until cached (a HIT), so what follows proves an invalidation, not a cold miss. */
async function cached(path: string) {
  await read(path);
  const second = await read(path);
  expect(second.cache).toBe('HIT');
  return second.body;
}

/** Polls until the answer satisfies `ok` (the invalidation bound is the test's timeout). */
const eventually: ExampleSystem['eventually'] = (path, ok, what) => system.eventually(path, ok, what);

describe('the library schema, from its config alone', () => {
  it('answers with the catalog types: bigint and numeric as strings, arrays, jsonb, ISO timestamps, enums', async () => {
    const { body } = await read('/v1/book/7');
    expect(body).toMatchObject({
      id: '7',
      isbn: '978-000000007',
      title: 'Book 7',
      price: '7.99',
      keywords: ['k2', 'k0'],
      meta: { pages: 107, tags: ['t1'] },
      published_at: '2020-01-01T07:00:00.000Z',
      author: { id: '50', name: 'Author 50' },
    });
    expect(typeof body.search).toBe('string'); // tsvector: its Postgres text form
    expect(body.genres).toEqual(expect.arrayContaining([expect.stringMatching(/^Genre \d+$/)]));
    const loans = await read('/v1/members/1/loans?limit=3');
    expect(loans.status).toBe(200);
    const items = loans.body.items as { status: string; loanedAt: string; book: { id: string } }[];
    expect(items).toHaveLength(3);
    expect(['active', 'returned', 'lost']).toContain(items[0]!.status);
    expect(loans.body.nextCursor).toEqual(expect.any(String));
  });

  it('warns once about a type with no JSON form', async () => {
    const compiled = await compileConfig(await loadConfigFile(configPath), writer);
    expect(compiled.warnings).toEqual([
      expect.stringContaining('lib.books.search (tsvector) has no JSON form'),
    ]);
    expect(compiled.tables).toEqual([
      'lib.authors',
      'lib.book_genres',
      'lib.books',
      'lib.genres',
      'lib.loans',
      'lib.members',
    ]);
  });

  it('INSERT: a new book is found, where a 404 was cached', async () => {
    expect((await read('/v1/books/isbn/978-999999999')).status).toBe(404);
    expect((await read('/v1/books/isbn/978-999999999')).cache).toBe('HIT');
    await writer.query(
      "insert into lib.books (author_id, isbn, title, price) values (3, '978-999999999', 'Fresh', 1.50)",
    );
    await eventually(
      '/v1/books/isbn/978-999999999',
      (r) => r.status === 200 && r.body.title === 'Fresh',
      'the new book',
    );
  });

  it('UPDATE of every embedded column: author name, genre label, loan status', async () => {
    const book = await cached('/v1/book/11');
    const authorId = (book.author as { id: string }).id;
    await writer.query("update lib.authors set name = 'Renamed' where id = $1", [authorId]);
    await eventually(
      '/v1/book/11',
      (r) => (r.body.author as { name: string }).name === 'Renamed',
      'the author name',
    );

    const genres = book.genres as string[];
    const { rows } = await writer.query<{ code: string }>(
      'select genre_code as code from lib.book_genres where book_id = 11 order by 1 limit 1',
    );
    await cached('/v1/book/11');
    await writer.query("update lib.genres set label = 'Relabelled' where code = $1", [rows[0]!.code]);
    await eventually(
      '/v1/book/11',
      (r) => (r.body.genres as string[]).includes('Relabelled'),
      'the genre label',
    );
    expect(genres).not.toContain('Relabelled');

    const loaned = await writer.query<{ book_id: string }>(
      "select book_id from lib.loans where status = 'active' and book_id <> 11 order by book_id limit 1",
    );
    const path = `/v1/book/${loaned.rows[0]!.book_id}`;
    const active = (await cached(path)).activeLoans as { id: string }[];
    expect(active.length).toBeGreaterThan(0);
    await writer.query("update lib.loans set status = 'returned' where id = $1", [active[0]!.id]);
    await eventually(
      path,
      (r) => !(r.body.activeLoans as { id: string }[]).some((l) => l.id === active[0]!.id),
      'the returned loan to leave the active loans',
    );
  });

  it('UPDATE of a listed column reorders the list; DELETE removes the row', async () => {
    await cached('/v1/books?limit=3');
    await writer.query("update lib.books set title = 'AAA first' where id = 500");
    await eventually(
      '/v1/books?limit=3',
      (r) => (r.body.items as { id: string }[])[0]?.id === '500',
      'the renamed book to lead the list',
    );
    await cached('/v1/book/600');
    await writer.query('delete from lib.book_genres where book_id = 600');
    await writer.query('delete from lib.loans where book_id = 600');
    await writer.query('delete from lib.books where id = 600');
    await eventually('/v1/book/600', (r) => r.status === 404, 'the deleted book to 404');
  });

  it('a foreign key moved to another parent: both parents are fresh', async () => {
    const { rows } = await writer.query<{ author_id: string }>(
      'select author_id from lib.books where id = 42',
    );
    const from = rows[0]!.author_id;
    const to = from === '1' ? '2' : '1';
    const before = (await cached(`/v1/author/${from}`)).bookCount as number;
    const beforeTo = (await cached(`/v1/author/${to}`)).bookCount as number;
    await writer.query('update lib.books set author_id = $1 where id = 42', [to]);
    await eventually(
      `/v1/author/${from}`,
      (r) => r.body.bookCount === before - 1,
      'the old author to lose the book',
    );
    await eventually(
      `/v1/author/${to}`,
      (r) => r.body.bookCount === beforeTo + 1,
      'the new author to gain it',
    );
  });

  it('a unique lookup value renamed: the old one 404s, the new one resolves', async () => {
    await cached('/v1/books/isbn/978-000000077');
    await cached('/v1/members/by-email/member5@example.org');
    expect((await read('/v1/books/isbn/978-111111111')).status).toBe(404);
    await writer.query("update lib.books set isbn = '978-111111111' where id = 77");
    await writer.query(
      "update lib.members set email = 'renamed5@example.org' where email = 'member5@example.org'",
    );
    await eventually('/v1/books/isbn/978-000000077', (r) => r.status === 404, 'the old isbn to 404');
    await eventually(
      '/v1/books/isbn/978-111111111',
      (r) => r.status === 200 && r.body.id === '77',
      'the new isbn',
    );
    await eventually(
      '/v1/members/by-email/member5@example.org',
      (r) => r.status === 404,
      'the old email to 404',
    );
    expect((await read('/v1/members/by-email/renamed5@example.org')).body.name).toBe('Member 5');
  });

  it('TRUNCATE of a join table empties what embeds it', async () => {
    const genre = await cached('/v1/genre/g3');
    expect(genre.bookCount).toBeGreaterThan(0);
    await writer.query('truncate lib.book_genres');
    await eventually(
      '/v1/genre/g3',
      (r) => r.body.bookCount === 0 && (r.body.titles as string[]).length === 0,
      'an empty genre',
    );
  });

  it('a write to a partition invalidates what reads the partitioned table', async () => {
    const page = await cached('/v1/members/2/loans?limit=5');
    const count = ((await cached('/v1/book/2')).loanCount as number) ?? 0;
    const { rows } = await writer.query<{ id: string }>(
      "insert into lib.loans_2026 (member_id, book_id, status, loaned_at) values (2, 2, 'active', '2026-11-30') returning id",
    );
    await eventually(
      '/v1/members/2/loans?limit=5',
      (r) => (r.body.items as { id: string }[])[0]?.id === rows[0]!.id,
      'the new loan first in the member page',
    );
    await eventually('/v1/book/2', (r) => r.body.loanCount === count + 1, 'the book loan count');
    expect(page.items).not.toContainEqual(expect.objectContaining({ id: rows[0]!.id }));
  });

  it('serves a valid OpenAPI 3.1 document with the catalog types', async () => {
    const raw: unknown = await (await fetch(`${system.stack.api.url}/openapi.json`)).json();
    expect(await openApiProblems(raw)).toEqual([]);
    const doc = raw as {
      paths: Record<string, unknown>;
      components: {
        schemas: Record<string, { properties?: Record<string, { type?: unknown; enum?: unknown }> }>;
      };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/book/{id}',
        '/v1/books/isbn/{isbn}',
        '/v1/members/{member}/loans',
        '/v1/genre/{code}',
      ]),
    );
    const book = doc.components.schemas.Book!.properties!;
    expect(book.price?.type).toBe('string');
    expect(book.keywords?.type).toBe('array');
    const loanItem = doc.components.schemas.LoansItem!.properties!;
    expect(loanItem.status?.enum).toEqual(['active', 'returned', 'lost']);
  });
});
