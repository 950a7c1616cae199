import { defineConfig } from '@walcache/config';

/**
 * Personalities (examples/personalities): one by its unique name, one by its id, and the
 * list by name. A rename moves the lookup: the old name answers 404, the new one the row.
 */
export default defineConfig({
  $schema: '../../packages/config/walcache.config.schema.json',
  resources: {
    personality: {
      table: 'personalities',
      by: 'name',
      route: '/v1/personalities/{name}',
      columns: ['id', 'name', 'archetype', 'traits', 'config', 'updated_at'],
    },
    'personality-by-id': {
      table: 'personalities',
      by: 'id',
      route: '/v1/personalities/by-id/{id}',
      columns: ['id', 'name', 'archetype', 'traits', 'config', 'updated_at'],
    },
    personalities: {
      table: 'personalities',
      list: { order: ['name'], pageSize: { default: 20, max: 100 } },
      columns: ['id', 'name', 'archetype'],
    },
  },
  openapi: { title: 'Personalities read API' },
});
