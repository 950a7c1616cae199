import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import type { Plugin } from 'esbuild';

/** Where importTypeScript hands the running @walcache/config to the config it compiles. */
const SELF = Symbol.for('walcache.config.module');
const SELF_NAMESPACE = 'walcache-config-self';

/** esbuild's service process is stopped once no compile is in flight (it holds ~10 MiB). */
let inFlight = 0;

/**
 * Compiles a TypeScript config file (and the TypeScript files it imports) into one ES module
 * with esbuild and imports it, with no loader hooks left in the process (tsx's would keep a
 * loader thread, ~35 MiB and half a second of start-up, for the process's whole life).
 * Packages it imports load from where they are installed next to the config, as a plain
 * import would; `@walcache/config` is the running process's own copy (one instance of the
 * schema, not a second compile of it), provided only where it would resolve anyway.
 */
export async function importTypeScript(
  file: string,
  self: () => Promise<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const { build, stop } = await import('esbuild');
  (globalThis as Record<symbol, unknown>)[SELF] = await self();
  inFlight += 1;
  let code: string;
  try {
    const result = await build({
      entryPoints: [file],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'silent',
      plugins: [packagesWhereInstalled, ownLocation],
    });
    code = result.outputFiles[0]?.text ?? '';
  } finally {
    inFlight -= 1;
    if (inFlight === 0) await stop();
  }
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as Record<
    string,
    unknown
  >;
}

const packagesWhereInstalled: Plugin = {
  name: 'packages-where-installed',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'resolving') return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'resolving',
      });
      const name = args.path
        .split('/')
        .slice(0, args.path.startsWith('@') ? 2 : 1)
        .join('/');
      if (resolved.errors.length > 0) {
        // Node's wording, which loadConfigFile turns into the fix for an unresolvable walcache.
        return { errors: [{ text: `Cannot find package '${name}' imported from ${args.importer}` }] };
      }
      if (resolved.external) return { path: args.path, external: true };
      if (name === '@walcache/config') return { path: name, namespace: SELF_NAMESPACE };
      // A TypeScript package (a workspace's sources) is compiled in; a JavaScript one is
      // imported from its installed file, by absolute URL (the module runs from a data: URL).
      if (/\.[cm]?tsx?$/.test(resolved.path)) return { path: resolved.path };
      return { path: pathToFileURL(resolved.path).href, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: SELF_NAMESPACE }, () => ({
      contents: `const self = globalThis[Symbol.for('walcache.config.module')];\nexport const { ${Object.keys(
        (globalThis as Record<symbol, Record<string, unknown>>)[SELF] ?? {},
      ).join(', ')} } = self;\n`,
      loader: 'js',
    }));
  },
};

/** import.meta.url (and dirname, filename) of each compiled file stay its own, not the data: URL's. */
const ownLocation: Plugin = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta')) return undefined;
      const url = pathToFileURL(args.path);
      return {
        contents: source
          .replaceAll('import.meta.url', JSON.stringify(url.href))
          .replaceAll('import.meta.dirname', JSON.stringify(new URL('.', url).pathname.replace(/\/$/, '')))
          .replaceAll('import.meta.filename', JSON.stringify(args.path)),
        loader: /\.[cm]?tsx?$/.test(args.path) ? (args.path.endsWith('x') ? 'tsx' : 'ts') : 'js',
      };
    });
  },
};
