import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_SCHEMA_FILE, configJsonSchemaText, parseConfig } from '../src/index.ts';

describe('walcache.config.schema.json', () => {
  it('is the JSON Schema generated from the zod schema (regenerate with `npm run config-schema`)', () => {
    const committed = readFileSync(CONFIG_SCHEMA_FILE, 'utf8');
    // A plain equality would print 400 lines of diff; the hint is what a reader needs.
    if (committed !== configJsonSchemaText()) {
      expect.fail(
        `${CONFIG_SCHEMA_FILE} is out of date with packages/config/src/resources.ts: run \`npm run config-schema\` and commit the file`,
      );
    }
  });

  it('describes the format: a draft 2020-12 schema that allows $schema and refuses unknown fields', () => {
    const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_FILE, 'utf8')) as {
      $schema: string;
      properties: Record<string, unknown>;
      required?: string[];
      additionalProperties: boolean;
    };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(Object.keys(schema.properties).sort()).toEqual([
      '$schema',
      'custom',
      'defaults',
      'openapi',
      'resources',
    ]);
    // `resources` may be empty when `custom` declares the resources (the zod schema checks that).
    expect(schema.required).toBeUndefined();
    expect(schema.additionalProperties).toBe(false);
  });

  it('can be referenced from a config: `$schema` is a field of the format', () => {
    const yaml = `$schema: ../packages/config/walcache.config.schema.json
resources:
  film: { table: film, by: film_id }
`;
    expect(parseConfig(parseYaml(yaml)).$schema).toBe('../packages/config/walcache.config.schema.json');
  });
});
