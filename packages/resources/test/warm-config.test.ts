import { parseConfig, type WalcacheConfigInput } from '@walcache/config';
import { type PostgresServer, startPostgres } from '@walcache/testkit';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigMismatchError, compileConfig, type Db } from '../src/index.ts';

/** `warm` in a config: what it selects, and the message for each declaration that cannot work. */
let server: PostgresServer;
let pool: pg.Pool;
let db: Db;

beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on('error', () => undefined); // the server stops before the pool at the end
  db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  await pool.query(`
    create table crew (id bigint primary key, callsign text not null unique, on_duty boolean not null,
                       rank int not null);
    create table shifts (id bigint primary key, crew_id bigint not null references crew(id));
    insert into crew select i, 'cs-' || i, i % 3 <> 0, 100 - i from generate_series(0, 30) as i;
  `);
});

afterAll(async () => {
  await db?.destroy();
  await server?.stop();
});

async function problems(config: WalcacheConfigInput): Promise<string[]> {
  try {
    await compileConfig(parseConfig(config), pool);
  } catch (error) {
    if (error instanceof ConfigMismatchError) return error.problems;
    throw error;
  }
  throw new Error('the config compiled');
}

describe('warm', () => {
  it('a lookup warms the rows matching `where`, in `order`, at most `limit`, as canonical params', async () => {
    const compiled = await compileConfig(
      parseConfig({
        resources: {
          member: { table: 'crew', by: 'id', warm: { where: { on_duty: true }, order: ['rank'], limit: 4 } },
          'by-callsign': { table: 'crew', by: 'callsign', warm: true },
          roster: { table: 'crew', list: { order: ['id'] }, warm: true },
        },
      }),
      pool,
    );
    const member = compiled.byName('member')!.warm!;
    expect(member.what).toBe('rows where on_duty = true, at most 4');
    // rank = 100 - id: ascending rank is descending id; id 30 and 27 are off duty; id 0 is not a valid id.
    expect(await member.params(db)).toEqual([{ id: '29' }, { id: '28' }, { id: '26' }, { id: '25' }]);
    const byCallsign = await compiled.byName('by-callsign')!.warm!.params(db);
    expect(byCallsign).toHaveLength(31); // every row (up to 1000), by primary key
    expect(byCallsign[0]).toEqual({ callsign: 'cs-0' });
    expect(await compiled.byName('roster')!.warm!.params(db)).toEqual([{ limit: 20 }]);
    expect(compiled.byName('member')!.key({ id: '29' })).toBe('member:29');
  });

  it('a list with parameters, a list with where, an unknown column: each named with its fix', async () => {
    expect(
      await problems({
        resources: {
          shifts: {
            table: 'shifts',
            route: '/v1/crew/{id}/shifts',
            list: { parent: { table: 'crew', param: 'id' } },
            warm: true,
          },
          roster: { table: 'crew', list: {}, warm: { where: { on_duty: true } } },
          member: { table: 'crew', by: 'id', warm: { where: { onduty: true } } },
        },
      }),
    ).toEqual([
      'resource "shifts" warm: a list with parameters (id) has no one first page to fill; drop "warm"',
      'resource "roster" warm: a list warms its first page: "warm": true (where/order/limit are for lookups)',
      'resource "member" warm where: table crew has no column "onduty"; did you mean "on_duty"?',
    ]);
  });

  it('the format refuses what is not a warm declaration', () => {
    expect(() => parseConfig({ resources: { member: { table: 'crew', by: 'id', warm: 'yes' } } })).toThrow(
      /warm/,
    );
    expect(() =>
      parseConfig({ resources: { member: { table: 'crew', by: 'id', warm: { limit: 0 } } } }),
    ).toThrow(/warm/);
  });
});
