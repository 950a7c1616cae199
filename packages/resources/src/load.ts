import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_EXTENSIONS, ConfigFileError, loadConfigFile } from '@walcache/config';
import { probePostgres, type Queryable } from '@walcache/db';
import { type CompiledConfig, compileConfig } from './compile.ts';

const DEFAULT_EXAMPLE_NAME = 'blog';

/** The bundled sample systems (examples/<name>/walcache.config.<ext>); the blog is the default. */
const examplesDir = findExamplesDir(dirname(fileURLToPath(import.meta.url)));

/** From the sources or from a bundle (packages/cli/dist, apps/x/dist): the checkout's examples/. */
function findExamplesDir(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'examples', DEFAULT_EXAMPLE_NAME, 'walcache.config.ts')))
      return `${join(dir, 'examples')}/`;
    if (dirname(dir) === dir) return `${join(from, 'examples')}/`;
  }
}
export const DEFAULT_EXAMPLE = DEFAULT_EXAMPLE_NAME;

/** An example's config file, in whichever format it is written (the first of CONFIG_EXTENSIONS found). */
export function exampleConfigPath(name: string, dir = examplesDir): string {
  const base = `${dir}${name}/walcache.config`;
  const path = /^[a-z][a-z0-9-]*$/.test(name)
    ? CONFIG_EXTENSIONS.map((ext) => `${base}${ext}`).find((p) => existsSync(p))
    : undefined;
  if (!path)
    throw new ConfigFileError(`${base}.*`, [`no example named "${name}" (see the folders under examples/)`]);
  return path;
}

export interface ConfigChoice {
  /** WALCACHE_CONFIG or --config. */
  config?: string | undefined;
  /** WALCACHE_EXAMPLE or --example; used only without a config file. */
  example?: string | undefined;
}

/** The config file a process serves: the named file, else the named example, else the blog. */
export function chosenConfigPath(choice: ConfigChoice): string {
  return choice.config ?? exampleConfigPath(choice.example ?? DEFAULT_EXAMPLE);
}

/**
 * Loads the chosen config file and compiles it against the database's catalog. Throws a
 * ConfigFileError or ConfigMismatchError whose message names every field to fix.
 */
export async function loadCompiledConfig(
  choice: ConfigChoice,
  db: Queryable,
  onWarning: (message: string) => void = () => {},
): Promise<CompiledConfig> {
  const config = await loadConfigFile(chosenConfigPath(choice));
  // A role that cannot connect at all (no CONNECT, a wrong password) is named with its fix
  // before the catalog read fails on it less clearly.
  await probePostgres(db);
  const compiled = await compileConfig(config, db);
  for (const warning of compiled.warnings) onWarning(warning);
  return compiled;
}
