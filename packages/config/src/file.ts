import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { type WalcacheConfig, walcacheConfigSchema } from './resources.ts';
import { importTypeScript } from './ts-config.ts';

export const CONFIG_EXTENSIONS = ['.ts', '.mts', '.mjs', '.js', '.json', '.yaml', '.yml'] as const;

/** A config file that cannot be used: the message names the file, the field and the fix. */
export class ConfigFileError extends Error {
  readonly code = 'WALCACHE_CONFIG_FILE';
  constructor(
    readonly file: string,
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(`config ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, options);
  }
}

/** Validates a config object (from any source); throws a ConfigFileError naming each field. */
export function parseConfig(raw: unknown, file = '(inline config)'): WalcacheConfig {
  const result = walcacheConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ConfigFileError(file, result.error.issues.map(describeIssue));
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`))
    .join('');
  if (issue.code === 'invalid_key') {
    // A record key (a resource or field name) that breaks its rule: zod's own message is
    // only "Invalid key in record"; the key's check says what a valid one looks like.
    return `${path}: ${issue.issues.map((i) => i.message).join('; ')}`;
  }
  if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
    return `${path}: is required (${issue.expected === 'record' ? 'an object' : `a ${issue.expected}`}); see docs/config.md`;
  }
  if (issue.code === 'unrecognized_keys') {
    return `${path || '(top level)'}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys
      .map((k) => JSON.stringify(k))
      .join(', ')} (see docs/config.md for the fields)`;
  }
  return `${path || '(top level)'}: ${issue.message}`;
}

/**
 * Reads and validates a config file. TypeScript configs are compiled by esbuild
 * (importTypeScript) so a team's `walcache.config.ts` works from its own repository, outside
 * this checkout, in the bundles as from the sources; a `.ts` file may export its config as
 * `default` or as `config`.
 */
export async function loadConfigFile(path: string, cwd = process.cwd()): Promise<WalcacheConfig> {
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  const ext = extname(file).toLowerCase();
  if (!(CONFIG_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new ConfigFileError(file, [
      `unsupported extension "${ext}": use one of ${CONFIG_EXTENSIONS.join(', ')}`,
    ]);
  }
  if (!existsSync(file)) {
    throw new ConfigFileError(file, ['file not found (set WALCACHE_CONFIG or --config to an existing file)']);
  }
  let raw: unknown;
  try {
    if (ext === '.json') raw = JSON.parse(readFileSync(file, 'utf8'));
    // yaml loads only for a YAML config: every app parses its environment with this module
    // before it takes its port (bin.ts), and most configs are TypeScript.
    else if (ext === '.yaml' || ext === '.yml')
      raw = (await import('yaml')).parse(readFileSync(file, 'utf8'));
    else raw = await importModule(file, ext);
  } catch (error) {
    if (error instanceof ConfigFileError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    if (/Cannot find (module|package) '@walcache\/config'/.test(message)) {
      throw new ConfigFileError(
        file,
        [
          `imports @walcache/config, which does not resolve from ${dirname(file)}: export plain data (\`export default {...}\`, types with \`import type\`), or make @walcache/config a dependency there`,
        ],
        { cause: error },
      );
    }
    throw new ConfigFileError(
      file,
      [`cannot be read: ${error instanceof Error ? error.message : String(error)}`],
      {
        cause: error,
      },
    );
  }
  return parseConfig(raw, file);
}

async function importModule(file: string, ext: string): Promise<unknown> {
  const url = pathToFileURL(file).href;
  let mod: Record<string, unknown>;
  if (ext === '.ts' || ext === '.mts') {
    mod = await importTypeScript(file, () => import('./index.ts'));
  } else {
    mod = (await import(url)) as Record<string, unknown>;
  }
  // A CommonJS module compiled from ES syntax (a .js config built by tsc) comes back as a
  // namespace whose `default` is the whole exports object, marked `__esModule`: the config's
  // own `default`/`config` are one level down.
  const wrapped = mod.default as { __esModule?: unknown } | undefined;
  const exports =
    typeof wrapped === 'object' && wrapped !== null && wrapped.__esModule === true
      ? (wrapped as Record<string, unknown>)
      : mod;
  const exported = exports.default ?? exports.config;
  if (exported === undefined)
    throw new Error('exports no config: use `export default defineConfig({...})` or `export const config`');
  return exported;
}
