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
  api: 'apps/api/src/main.ts',
  cdc: 'apps/cdc/src/main.ts',
  invalidator: 'apps/invalidator/src/main.ts',
  walcache: 'packages/cli/src/main.ts',
  migrate: 'scripts/migrate.ts',
} as const;
export type Target = keyof typeof TARGETS;
export const TARGET_NAMES = Object.keys(TARGETS) as Target[];

export const bundlePath = (target: Target): string => join(DIST_DIR, `${target}.mjs`);

/** What runs: the bundle `npm run build` made, or the TypeScript sources through tsx. */
export type RunFrom = 'bundle' | 'sources';

/**
 * node's arguments to run a program: `node dist/<name>.mjs` (npm start, the image, the bench),
 * or `node --import tsx <entry>` (the tests). Either way one process, the program itself, so
 * a signal sent to its PID reaches it (the tsx CLI would sit in between).
 */
export function programArgs(target: Target, from: RunFrom): string[] {
  return from === 'bundle' ? [bundlePath(target)] : ['--import', 'tsx', join(root, TARGETS[target])];
}
const metaPath = (target: Target): string => join(DIST_DIR, `${target}.meta.json`);

/** Files whose change makes every bundle stale besides its own inputs: this script and the manifest. */
const BUILD_INPUTS = [fileURLToPath(import.meta.url), join(root, 'package.json')];

/** `pg` → pg, `@scope/pkg/sub` → @scope/pkg. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? specifier);
}

/**
 * npm packages stay imports (the workspace's own packages are sources and get bundled);
 * the names are collected for the check against the root package's dependencies.
 */
function externalNpmPackages(seen: Set<string>): Plugin {
  return {
    name: 'external-npm-packages',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('node:') || args.path.startsWith('@walcache/')) return undefined;
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

/** Builds the named bundles (default: all) into dist/, with a metafile beside each. */
export async function build(targets: readonly Target[] = TARGET_NAMES): Promise<void> {
  await mkdir(DIST_DIR, { recursive: true });
  const dependencies = rootDependencies();
  const problems: string[] = [];
  await Promise.all(
    targets.map(async (target) => {
      const imported = new Set<string>();
      const result = await esbuild({
        absWorkingDir: root,
        entryPoints: [join(root, TARGETS[target])],
        outfile: bundlePath(target),
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
        banner: { js: `// ${TARGETS[target]}, bundled by scripts/build.ts (npm run build). Do not edit.` },
      });
      const missing = [...imported].filter((name) => !dependencies.has(name)).sort();
      if (missing.length > 0) problems.push(`dist/${target}.mjs imports ${missing.join(', ')}`);
      // No metafile for a bundle that failed the check: it stays stale and is built again.
      else await writeFile(metaPath(target), JSON.stringify(result.metafile));
    }),
  );
  if (problems.length > 0) {
    throw new Error(
      `${problems.join('; ')}: not in the root package.json "dependencies"; add them there (the production image installs only those)`,
    );
  }
}

/** A bundle is stale when missing, or older than one of its inputs or than the build itself. */
export function isStale(target: Target): boolean {
  const bundle = bundlePath(target);
  if (!existsSync(bundle) || !existsSync(metaPath(target))) return true;
  const builtAt = statSync(bundle).mtimeMs;
  const meta = JSON.parse(readFileSync(metaPath(target), 'utf8')) as Metafile;
  const inputs = [...Object.keys(meta.inputs).map((input) => join(root, input)), ...BUILD_INPUTS];
  return inputs.some((input) => !existsSync(input) || statSync(input).mtimeMs > builtAt);
}

/** Rebuilds the stale bundles among `targets`; returns the ones it built. */
export async function ensureBuilt(targets: readonly Target[] = TARGET_NAMES): Promise<Target[]> {
  const stale = targets.filter(isStale);
  if (stale.length > 0) await build(stale);
  return stale;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !(name in TARGETS));
  if (unknown.length > 0) {
    process.stderr.write(
      `build: unknown target ${unknown.join(', ')}; targets: ${TARGET_NAMES.join(', ')}\n`,
    );
    process.exit(2);
  }
  const targets = asked.length > 0 ? (asked as Target[]) : TARGET_NAMES;
  const started = performance.now();
  await build(targets);
  process.stderr.write(
    `built ${targets.map((t) => `dist/${t}.mjs`).join(', ')} in ${Math.round(performance.now() - started)} ms\n`,
  );
}
