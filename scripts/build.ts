/**
 * `npm run build`: one ESM bundle per program in dist/ (api, cdc, invalidator, the walcache
 * CLI, the migrator), run with plain `node dist/<name>.mjs`. The workspace packages are
 * TypeScript sources and are bundled in; npm packages stay external and resolve from the root
 * package's `dependencies` at run time: those, and only those, are what the production image
 * installs, so the build fails when a bundle imports a package that is not listed there.
 *
 * esbuild, because it is the bundler the anchors ship with (hono builds with it, tsup is a
 * wrapper over it), compiles the whole workspace in about a second, and is already the
 * transform tsx runs in development: the bundles get the same TypeScript semantics as `npm test`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild, type Metafile, type Plugin } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST_DIR = join(root, 'dist');

/** Each program, by the name of its bundle, and its entry point. */
export const TARGETS = {
  api: 'apps/api/src/bin.ts',
  cdc: 'apps/cdc/src/bin.ts',
  invalidator: 'apps/invalidator/src/bin.ts',
  walcache: 'packages/cli/src/main.ts',
  migrate: 'scripts/migrate.ts',
} as const;
export type Target = keyof typeof TARGETS;
export const TARGET_NAMES = Object.keys(TARGETS) as Target[];

export const bundlePath = (target: Target): string => join(DIST_DIR, `${target}.mjs`);

/** What runs: the bundle `npm run build` made, or the TypeScript sources through tsx. */
export type RunFrom = 'bundle' | 'sources';

/**
 * node's own flags for each program, wherever it runs (npm start, the bench, the tests that
 * spawn it; docker-compose.yml's commands, which test/ops/compose.test.ts holds to this).
 * The CDC and the invalidator cap V8's young generation at 4 MiB per semi-space: 8–10 MiB
 * less RSS at rest (cdc 106–108 → 96–98 MiB, invalidator 100 → 93–95) and no measurable CPU
 * per commit at any rate of `npm run bench -- --quick --only invalidation` (two runs each way).
 * The API at 8 MiB, not 4: at 4 its hits paid for the extra scavenges (40–44 against 33–37
 * µs per hit); at 8 the young generation under the mixed load is 16 MiB where it was 32, and
 * the API's peak RSS there 108–122 MiB against 128–135, with no difference in CPU per hit
 * or per mixed read beyond this machine's noise (docs/operations.md, "Memory", has the runs).
 */
export const NODE_FLAGS: Record<Target, readonly string[]> = {
  api: ['--max-semi-space-size=8'],
  cdc: ['--max-semi-space-size=4'],
  invalidator: ['--max-semi-space-size=4'],
  walcache: [],
  migrate: [],
};

/**
 * node's arguments to run a program: `node dist/<name>.mjs` (npm start, the image, the bench),
 * or `node --import tsx <entry>` (the tests). Either way one process, the program itself, so
 * a signal sent to its PID reaches it (the tsx CLI would sit in between).
 */
export function programArgs(target: Target, from: RunFrom): string[] {
  const program = from === 'bundle' ? [bundlePath(target)] : ['--import', 'tsx', join(root, TARGETS[target])];
  return [...NODE_FLAGS[target], ...program];
}
const META_PATH = join(DIST_DIR, 'meta.json');

/** Files whose change makes every bundle stale besides its own inputs: this script and the manifest. */
const BUILD_INPUTS = [fileURLToPath(import.meta.url), join(root, 'package.json')];

/** `pg` → pg, `@scope/pkg/sub` → @scope/pkg. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? specifier);
}

/**
 * npm packages bundled all the same. kysely ships as some 260 ES modules, and Node's loader
 * costs about 8–10 MiB of RSS to load them one by one, against ~1.3 MiB for the same code as
 * one module (measured importing each after zod, ioredis and pg, three runs each): in every
 * app, whose RSS target is 100 MiB. Safe because no npm package the bundles keep external
 * imports kysely itself, so there is still one copy of its classes in a process. Not zod (it
 * is as costly): @hono/zod-openapi imports it too, and two copies of zod would not know each
 * other's schemas.
 */
const INLINED_NPM_PACKAGES: ReadonlySet<string> = new Set(['kysely']);

/**
 * npm packages stay imports (the workspace's own packages are sources and get bundled), but
 * for INLINED_NPM_PACKAGES; the names are collected for the check against the root package's
 * dependencies.
 */
function externalNpmPackages(seen: Set<string>): Plugin {
  return {
    name: 'external-npm-packages',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('node:') || args.path.startsWith('@walcache/')) return undefined;
        if (INLINED_NPM_PACKAGES.has(packageName(args.path))) return undefined;
        seen.add(packageName(args.path));
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * The examples find their SQL files and config next to their sources (`new URL('./',
 * import.meta.url)`); bundled, import.meta.url would be the bundle's. Their import.meta.url
 * becomes the source file's own, relative to the bundle, so it holds in the checkout and in
 * the image (which ships examples/ beside dist/). Only there: an app's entry compares
 * import.meta.url with argv[1] to know it is the program being run.
 */
const examplesKeepTheirLocation: Plugin = {
  name: 'examples-keep-their-location',
  setup(b) {
    const examples = `${join(root, 'examples')}${sep}`;
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(examples)) return undefined;
      const source = await readFile(args.path, 'utf8');
      const fromBundle = relative(DIST_DIR, args.path).split(sep).join('/');
      return {
        contents: source.replaceAll(
          'import.meta.url',
          `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`,
        ),
        loader: 'ts',
      };
    });
  },
};

function rootDependencies(): Set<string> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  return new Set(Object.keys(pkg.dependencies ?? {}));
}

/**
 * Builds every bundle into dist/ in one pass, with one metafile (dist/meta.json). Code
 * splitting: what a program imports only on demand (the API's ops routes) is a chunk of its
 * own in dist/, loaded when first imported, as from the sources; code the programs
 * share is one chunk too.
 */
export async function build(): Promise<void> {
  await mkdir(DIST_DIR, { recursive: true });
  const imported = new Set<string>();
  const result = await esbuild({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(TARGET_NAMES.map((t) => [t, join(root, TARGETS[t])])),
    outdir: DIST_DIR,
    outExtension: { '.js': '.mjs' },
    // Chunks beside the entries, not in a subfolder: the examples' import.meta.url is
    // rewritten relative to dist/ (examplesKeepTheirLocation), whichever file they land in.
    chunkNames: '[name]-[hash]',
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Linked maps: stack traces map back to the sources with `node --enable-source-maps`,
    // at no cost to a process that does not ask for it.
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    plugins: [externalNpmPackages(imported), examplesKeepTheirLocation],
    banner: { js: '// Bundled by scripts/build.ts (npm run build). Do not edit.' },
  });
  const dependencies = rootDependencies();
  const missing = [...imported].filter((name) => !dependencies.has(name)).sort();
  if (missing.length > 0) {
    throw new Error(
      `the bundles import ${missing.join(', ')}, not in the root package.json "dependencies": add ${missing.length > 1 ? 'them' : 'it'} there (the production image installs only those)`,
    );
  }
  // Written last: a build that failed the check leaves the bundles stale, and built again.
  await writeFile(META_PATH, JSON.stringify(result.metafile));
}

/** A bundle is stale when missing, or older than one of the build's inputs or than the build itself. */
export function isStale(target: Target): boolean {
  const bundle = bundlePath(target);
  if (!existsSync(bundle) || !existsSync(META_PATH)) return true;
  const builtAt = statSync(bundle).mtimeMs;
  const meta = JSON.parse(readFileSync(META_PATH, 'utf8')) as Metafile;
  const inputs = [...Object.keys(meta.inputs).map((input) => join(root, input)), ...BUILD_INPUTS];
  return inputs.some((input) => !existsSync(input) || statSync(input).mtimeMs > builtAt);
}

/** Rebuilds (all of them) when one of `targets` is stale; returns the stale ones. */
export async function ensureBuilt(targets: readonly Target[] = TARGET_NAMES): Promise<Target[]> {
  const stale = targets.filter(isStale);
  if (stale.length > 0) await build();
  return stale;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  await build();
  process.stderr.write(
    `built ${TARGET_NAMES.map((t) => `dist/${t}.mjs`).join(', ')} in ${Math.round(performance.now() - started)} ms\n`,
  );
}
