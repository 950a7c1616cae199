#!/usr/bin/env node
// Bundles the CLI and the workspace packages it uses (source-only TypeScript) into one ESM
// file, dist/walcache.mjs, that plain `node` runs with no TypeScript loader and no
// node_modules: fast to start, and it can be copied to any machine with Node 20+.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
const started = Date.now();
await build({
  entryPoints: [join(here, 'src/main.ts')],
  outfile: join(here, 'dist/walcache.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Everything is bundled, npm packages included: the file runs from anywhere with plain node.
  // Optional native/transport modules the CLI never loads stay external.
  // tsx loads a team's TypeScript config at run time and must stay a real package.
  external: ['pg-native', 'pino-pretty', 'tsx', 'tsx/esm/api'],
  // Bundled CommonJS packages call require(); give the ESM bundle one.
  banner: {
    js: [
      `// walcache CLI ${pkg.version}, bundled by packages/cli/scripts/build.mjs. Do not edit.`,
      "import { createRequire as __walcacheCreateRequire } from 'node:module';",
      'const require = __walcacheCreateRequire(import.meta.url);',
    ].join('\n'),
  },
});
process.stderr.write(`built packages/cli/dist/walcache.mjs in ${Date.now() - started} ms\n`);
