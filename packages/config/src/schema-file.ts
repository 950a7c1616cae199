import { fileURLToPath } from 'node:url';
import { configJsonSchema } from './resources.ts';

/**
 * The committed JSON Schema of the config format (`packages/config/walcache.config.schema.json`),
 * for editors (`$schema` in a YAML or JSON config) and for teams that do not write TypeScript.
 * Generated from the zod schema by `npm run config-schema`; a test fails when it is stale.
 */
export const CONFIG_SCHEMA_FILE = fileURLToPath(new URL('../walcache.config.schema.json', import.meta.url));

/** The file's exact text: two-space JSON and a final newline, so a regeneration diffs cleanly. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
