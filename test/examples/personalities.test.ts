import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { personalitiesExample } from '../../examples/personalities/index.ts';
import { type ExampleSystem, startExample } from './support.ts';

/** examples/personalities from its config alone: every change made with plain pg reaches the API. */
let sys: ExampleSystem;

beforeAll(async () => {
  sys = await startExample(personalitiesExample);
});
afterAll(async () => {
  await sys?.stop();
});

describe('the personalities example', () => {
  it('serves a personality by name and by id, jsonb as JSON', async () => {
    const byName = await sys.read('/v1/personalities/persona-7');
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({
      id: '7',
      name: 'persona-7',
      archetype: 'trickster',
      traits: { warmth: 9, humor: 1, tags: ['t3', 't7'] },
      config: { model: 'medium', temperature: 0.7 },
    });
    const byId = await sys.read('/v1/personalities/by-id/7');
    expect(byId.body).toEqual(byName.body);
    expect((await sys.read('/v1/personalities?limit=2')).body.items).toHaveLength(2);
  });

  it('UPDATE of a jsonb column: fresh by name and by id', async () => {
    await sys.cached('/v1/personalities/persona-12');
    await sys.cached('/v1/personalities/by-id/12');
    await sys.writer.query(
      `update personalities set traits = traits || '{"warmth": 42}' where name = 'persona-12'`,
    );
    await sys.eventually(
      '/v1/personalities/persona-12',
      (r) => (r.body.traits as { warmth: number }).warmth === 42,
      'the new traits by name',
    );
    await sys.eventually(
      '/v1/personalities/by-id/12',
      (r) => (r.body.traits as { warmth: number }).warmth === 42,
      'the new traits by id',
    );
  });

  it('a rename: the old name 404s, the new one resolves, the id follows', async () => {
    await sys.cached('/v1/personalities/persona-30');
    await sys.cached('/v1/personalities/by-id/30');
    expect((await sys.read('/v1/personalities/athena')).status).toBe(404);
    expect((await sys.read('/v1/personalities/athena')).cache).toBe('HIT'); // the 404 is cached
    await sys.writer.query(`update personalities set name = 'athena' where name = 'persona-30'`);
    await sys.eventually('/v1/personalities/persona-30', (r) => r.status === 404, 'the old name to 404');
    await sys.eventually(
      '/v1/personalities/athena',
      (r) => r.status === 200 && r.body.id === '30',
      'the new name to resolve',
    );
    await sys.eventually(
      '/v1/personalities/by-id/30',
      (r) => r.body.name === 'athena',
      'the id to show the name',
    );
  });

  it('INSERT ends a cached 404; DELETE makes both lookups 404', async () => {
    expect((await sys.read('/v1/personalities/newcomer')).status).toBe(404);
    await sys.read('/v1/personalities/newcomer');
    const { rows } = await sys.writer.query<{ id: string }>(
      `insert into personalities (name, archetype) values ('newcomer', 'rebel') returning id`,
    );
    await sys.eventually(
      '/v1/personalities/newcomer',
      (r) => r.status === 200 && r.body.id === rows[0]!.id,
      'the new personality',
    );
    await sys.cached('/v1/personalities/persona-40');
    await sys.cached('/v1/personalities/by-id/40');
    await sys.writer.query('delete from personalities where id = 40');
    await sys.eventually('/v1/personalities/persona-40', (r) => r.status === 404, 'the deleted name');
    await sys.eventually('/v1/personalities/by-id/40', (r) => r.status === 404, 'the deleted id');
  });
});
