/**
 * `npm run config-schema`: writes packages/config/walcache.config.schema.json from the zod
 * schema of the config format. Run it after changing packages/config/src/resources.ts and
 * commit the result (packages/config/test/schema-file.test.ts fails until then).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { CONFIG_SCHEMA_FILE, configJsonSchemaText } from '@walcache/config';

const text = configJsonSchemaText();
let current: string | undefined;
try {
  current = readFileSync(CONFIG_SCHEMA_FILE, 'utf8');
} catch {
  current = undefined;
}
const shown = relative(process.cwd(), CONFIG_SCHEMA_FILE);
if (current === text) {
  process.stdout.write(`${shown} is up to date\n`);
} else {
  writeFileSync(CONFIG_SCHEMA_FILE, text);
  process.stdout.write(`wrote ${shown}\n`);
}
