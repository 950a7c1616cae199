import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import {
  ConfigFileError,
  configArgs,
  loadConfigFile,
  parseConfig,
  type WalcacheConfigInput,
} from '../src/index.ts';

/**
 * The config loader, pure (no servers): every format gives the same parsed config, a
 * TypeScript config works from a folder outside the checkout, and a bad config is a
 * message that names the field and the fix.
 */

// Outside the checkout, like a team's own repository: nothing there resolves walcache's packages.
const dir = mkdtempSync(join(tmpdir(), 'walcache-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string): string => {
  const path = join(dir, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
};

const sample: WalcacheConfigInput = {
  resources: {
    film: {
      table: 'catalog.film',
      by: 'film_id',
      columns: { id: 'film_id', title: 'title' },
      embed: {
        director: { one: 'person', via: 'director_id', columns: ['person_id', 'name'] },
        actors: { many: 'person', through: 'film_actor', pluck: 'name', order: ['-name'], limit: 10 },
        reviewCount: { count: 'review', where: { hidden: false } },
      },
      openapi: { name: 'Film', tag: 'films' },
    },
    films: {
      table: 'catalog.film',
      list: {
        filter: { released: true, genre: { param: 'genre' } },
        order: [['rating', 'desc'], 'film_id'],
        pageSize: { default: 10, max: 50 },
      },
      exclude: ['search_vector'],
      ttl: 60,
    },
  },
  defaults: { ttl: 1200, policy: 'refresh' },
  openapi: { title: 'films' },
};

/** What every file below should load to: the sample with the defaults filled in. */
const expected = parseConfig(sample);

/** The problems of a config that must not load (the ConfigFileError's list). */
async function problemsOf(load: () => Promise<unknown> | unknown): Promise<string[]> {
  try {
    await load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigFileError);
    return (error as ConfigFileError).problems;
  }
  throw new Error('the config loaded; expected a ConfigFileError');
}

describe('loadConfigFile: every format', () => {
  it('fills in the defaults', () => {
    expect(expected.defaults).toEqual({ ttl: 1200, negativeTtl: 30, policy: 'refresh' });
    expect(expected.resources.films?.list?.paginate).toBe(true);
  });

  it('YAML (.yaml and .yml), JSON, .mjs, .js and .ts load to the same config', async () => {
    const files = [
      write('walcache.config.yaml', toYaml(sample)),
      write('walcache.config.yml', toYaml(sample)),
      write('walcache.config.json', JSON.stringify(sample, null, 2)),
      write('walcache.config.mjs', `export default ${JSON.stringify(sample)};\n`),
      write('js/package.json', '{"type":"module"}'),
      write('js/walcache.config.js', `export const config = ${JSON.stringify(sample)};\n`),
      write('walcache.config.ts', `export default ${JSON.stringify(sample)};\n`),
    ].filter((f) => !f.endsWith('package.json'));
    for (const file of files) expect(await loadConfigFile(file), file).toEqual(expected);
  });

  it('resolves a relative path against the given directory', async () => {
    write('relative.json', JSON.stringify(sample));
    expect(await loadConfigFile('relative.json', dir)).toEqual(expected);
  });

  it('a hand-written YAML file with comments, flow maps and a $schema line', async () => {
    const file = write(
      'hand.yaml',
      `# what the film site serves
$schema: ./walcache.config.schema.json
resources:
  film:
    table: catalog.film
    by: film_id
    columns: { id: film_id, title: title }
`,
    );
    const config = await loadConfigFile(file);
    expect(config.$schema).toBe('./walcache.config.schema.json');
    expect(config.resources.film).toEqual({
      table: 'catalog.film',
      by: 'film_id',
      columns: { id: 'film_id', title: 'title' },
    });
  });
});

describe('loadConfigFile: a TypeScript config outside the checkout', () => {
  it('with `export default {...}` and TypeScript syntax', async () => {
    const file = write(
      'plain/walcache.config.ts',
      `const ttl: number = 1200;
export default {
  resources: ${JSON.stringify(sample.resources)},
  defaults: { ttl, policy: 'refresh' as const },
  openapi: { title: 'films' },
} satisfies Record<string, unknown>;
`,
    );
    expect(await loadConfigFile(file)).toEqual(expected);
  });

  it('with a type-only import of walcache (erased: it needs no walcache install)', async () => {
    const file = write(
      'typed/walcache.config.ts',
      `import type { WalcacheConfigInput } from '@walcache/config';
const config: WalcacheConfigInput = ${JSON.stringify(sample)};
export default config;
`,
    );
    expect(await loadConfigFile(file)).toEqual(expected);
  });

  it('a value import of walcache that does not resolve there says how to do without it', () => {
    const file = write(
      'value-import/walcache.config.ts',
      "import { defineConfig } from '@walcache/config';\nexport default defineConfig({ resources: {} });\n",
    );
    // In a plain node process, as the apps run, without the NODE_PATH that pnpm's bin shim
    // gives vitest: through it the workspace package resolves from anywhere, which would hide
    // what a team's repository sees.
    const withoutNodePath = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => k !== 'NODE_PATH'),
    );
    const loader = pathToFileURL(join(import.meta.dirname, '..', 'src', 'index.ts')).href;
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { loadConfigFile } from ${JSON.stringify(loader)};
         try { await loadConfigFile(${JSON.stringify(file)}); } catch (e) { console.log(JSON.stringify(e.problems)); }`,
      ],
      { encoding: 'utf8', cwd: join(import.meta.dirname, '..'), env: withoutNodePath },
    );
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual([
      `imports @walcache/config, which does not resolve from ${join(dir, 'value-import')}: export plain data (\`export default {...}\`, types with \`import type\`), or make @walcache/config a dependency there`,
    ]);
  });

  it('imports its own TypeScript helpers, each with its own import.meta.url', async () => {
    write('helpers/sample.json', JSON.stringify(sample));
    write(
      'helpers/lib/read.ts',
      "import { readFileSync } from 'node:fs';\nexport const read = (name: string): unknown =>\n  JSON.parse(readFileSync(new URL('../' + name, import.meta.url), 'utf8'));\n",
    );
    const file = write(
      'helpers/walcache.config.ts',
      "import { read } from './lib/read.ts';\nexport default read('sample.json');\n",
    );
    expect(await loadConfigFile(file)).toEqual(expected);
  });

  it('a module exporting no config says what to export', async () => {
    const file = write('none/walcache.config.ts', 'export const other = 1;\n');
    const [problem] = await problemsOf(() => loadConfigFile(file));
    expect(problem).toMatch(/exports no config: use `export default defineConfig\(\{\.\.\.\}\)`/);
  });

  it('with `export const config` instead of a default export, as CommonJS or as ESM', async () => {
    const body = `export const config = ${JSON.stringify(sample)};\nexport const unrelated = 1;\n`;
    expect(await loadConfigFile(write('named/walcache.config.ts', body))).toEqual(expected);
    write('named-esm/package.json', '{"type":"module"}');
    expect(await loadConfigFile(write('named-esm/walcache.config.ts', body))).toEqual(expected);
  });

  it('a default export with a typo is named by the schema, not taken for a missing export', async () => {
    for (const folder of ['typo-cjs', 'typo-esm']) {
      if (folder === 'typo-esm') write(`${folder}/package.json`, '{"type":"module"}');
      const file = write(`${folder}/walcache.config.ts`, 'export default { resource: {} };\n');
      expect((await problemsOf(() => loadConfigFile(file))).sort()).toEqual([
        '(top level): unknown field "resource" (see docs/config.md for the fields)',
        'resources: declare at least one resource',
      ]);
    }
  });
});

describe('bad configs: the message names the field and the fix', () => {
  const base = { table: 'film', by: 'film_id' };

  it('an unknown field (a typo of a real one)', async () => {
    const file = write(
      'typo.yaml',
      'resources:\n  film:\n    table: film\n    by: film_id\n    colums: [title]\n',
    );
    const problems = await problemsOf(() => loadConfigFile(file));
    expect(problems).toEqual(['resources.film: unknown field "colums" (see docs/config.md for the fields)']);
  });

  it('an unknown field at the top level and in an embed', async () => {
    const problems = await problemsOf(() =>
      parseConfig({
        resources: { film: { ...base, embed: { director: { one: 'person', join: 'x' } } } },
        resource: {},
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        '(top level): unknown field "resource" (see docs/config.md for the fields)',
        'resources.film.embed.director: unknown field "join" (see docs/config.md for the fields)',
      ]),
    );
  });

  it('a resource with both `by` and `list`, or neither', async () => {
    expect(
      await problemsOf(() => parseConfig({ resources: { film: { ...base, list: { order: ['title'] } } } })),
    ).toEqual(['resources.film: a resource has exactly one of "by" (a lookup) or "list"']);
    expect(await problemsOf(() => parseConfig({ resources: { film: { table: 'film' } } }))).toEqual([
      'resources.film: a resource has exactly one of "by" (a lookup) or "list"',
    ]);
  });

  it('an embed with two kinds, or none', async () => {
    const two = await problemsOf(() =>
      parseConfig({ resources: { film: { ...base, embed: { cast: { many: 'person', count: 'person' } } } } }),
    );
    expect(two).toEqual([
      'resources.film.embed.cast: an embed names exactly one of "one", "many" or "count"',
    ]);
    const none = await problemsOf(() =>
      parseConfig({ resources: { film: { ...base, embed: { cast: { via: 'film_id' } } } } }),
    );
    expect(none).toEqual([
      'resources.film.embed.cast: an embed names exactly one of "one", "many" or "count"',
    ]);
  });

  it('options that do not fit the embed kind', async () => {
    const problems = await problemsOf(() =>
      parseConfig({
        resources: {
          film: {
            ...base,
            embed: {
              director: { one: 'person', limit: 3 },
              reviewCount: { count: 'review', columns: ['id'] },
              actors: { many: 'person', pluck: 'name', columns: ['name'] },
            },
          },
        },
      }),
    );
    expect(problems).toEqual([
      'resources.film.embed.director: "one" embeds take no "through", "where", "order" or "limit"',
      'resources.film.embed.reviewCount: "count" embeds take only "via", "through" and "where"',
      'resources.film.embed.actors: "pluck" serves one column: drop "columns" and "embed"',
    ]);
  });

  it('a bad table name, in a resource and in an embed', async () => {
    const problems = await problemsOf(() =>
      parseConfig({
        resources: {
          film: { table: 'catalog.film.x', by: 'film_id', embed: { d: { one: 'per son' } } },
        },
      }),
    );
    expect(problems).toEqual([
      'resources.film.table: a table name, "table" or "schema.table"',
      'resources.film.embed.d.one: a table name, "table" or "schema.table"',
    ]);
  });

  it('a bad resource name (it is the cache key prefix) and an empty config', async () => {
    expect(await problemsOf(() => parseConfig({ resources: { 'Film:1': base } }))).toEqual([
      'resources.Film:1: lower-case letters, digits, _ and - (it is the cache key prefix)',
    ]);
    expect(await problemsOf(() => parseConfig({ resources: {} }))).toEqual([
      'resources: declare at least one resource',
    ]);
  });

  it('a value of the wrong shape says which shapes the field takes', async () => {
    const problems = await problemsOf(() =>
      parseConfig({
        resources: {
          film: {
            table: 'film',
            by: ['film_id', 'bad name'],
            columns: 5,
            embed: { d: { one: 'p', via: 7 } },
          },
          films: { table: 'film', list: { order: [5], filter: { genre: { from: 'genre' } } } },
        },
      }),
    );
    expect(problems).toEqual([
      'resources.film.by[1]: an SQL identifier (letters, digits, _; at most 63 characters)',
      'resources.film.columns: a list of column names, or { "field": "column" } to rename',
      'resources.film.embed.d.via: Invalid input: expected string, received number',
      'resources.films.list.filter.genre: a fixed value (string, number, boolean, null) or { "param": "name" }',
      'resources.films.list.order[0]: "column" (ascending), "-column" (descending) or ["column", "asc" | "desc"]',
    ]);
  });

  it('a page size whose default exceeds its max', async () => {
    expect(
      await problemsOf(() =>
        parseConfig({
          resources: { films: { table: 'film', list: { pageSize: { default: 50, max: 10 } } } },
        }),
      ),
    ).toEqual(['resources.films.list.pageSize: default must not exceed max']);
  });

  it('the problem names the file it is in', async () => {
    const file = write('both.json', JSON.stringify({ resources: { film: { ...base, list: {} } } }));
    await expect(loadConfigFile(file)).rejects.toThrow(
      `config ${file}:\n  - resources.film: a resource has exactly one of "by" (a lookup) or "list"`,
    );
  });

  it('a missing file says which variable names it', async () => {
    const file = join(dir, 'nowhere', 'walcache.config.yaml');
    expect(await problemsOf(() => loadConfigFile(file))).toEqual([
      'file not found (set WALCACHE_CONFIG or --config to an existing file)',
    ]);
  });

  it('an unsupported extension lists the supported ones', async () => {
    const file = write('walcache.config.toml', 'resources = {}\n');
    expect(await problemsOf(() => loadConfigFile(file))).toEqual([
      'unsupported extension ".toml": use one of .ts, .mts, .mjs, .js, .json, .yaml, .yml',
    ]);
  });

  it('a file that does not parse gives the parser message', async () => {
    const yaml = write('broken.yaml', 'resources:\n  film: [unclosed\n');
    const [yamlProblem] = await problemsOf(() => loadConfigFile(yaml));
    expect(yamlProblem).toMatch(/^cannot be read: /);
    const json = write('broken.json', '{"resources": ');
    const [jsonProblem] = await problemsOf(() => loadConfigFile(json));
    expect(jsonProblem).toMatch(/^cannot be read: .*JSON/);
  });
});

describe('configArgs', () => {
  it('parses --config x, --config=x and --example blog', () => {
    expect(configArgs(['--config', 'x.yaml'])).toEqual({ WALCACHE_CONFIG: 'x.yaml' });
    expect(configArgs(['--config=/abs/walcache.config.ts'])).toEqual({
      WALCACHE_CONFIG: '/abs/walcache.config.ts',
    });
    expect(configArgs(['--example', 'blog'])).toEqual({ WALCACHE_EXAMPLE: 'blog' });
    expect(configArgs(['--example=blog', '--config', 'c.json'])).toEqual({
      WALCACHE_EXAMPLE: 'blog',
      WALCACHE_CONFIG: 'c.json',
    });
  });

  it('ignores other arguments and a flag without its value', () => {
    expect(configArgs(['status', '--json', '--config'])).toEqual({});
    expect(configArgs([])).toEqual({});
  });
});
