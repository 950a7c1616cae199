#!/usr/bin/env node
// The `walcache` command. Runs the bundle (dist/walcache.mjs at the repository root, from
// `npm run build`); on a clean clone that has not built it yet, runs the TypeScript sources
// through tsx instead, so the command works either way.
import { existsSync } from 'node:fs';

const bundle = new URL('../../../dist/walcache.mjs', import.meta.url);
let cli;
if (existsSync(bundle)) {
  cli = await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(new URL('../src/main.ts', import.meta.url).href);
}
process.exitCode = await cli.run(process.argv.slice(2));
