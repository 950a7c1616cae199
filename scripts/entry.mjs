#!/usr/bin/env node
// The npm entry point for `npm start`, `npm run build`, `npm test`, `npm run bench`, `npm run check`.
// It must work on a fresh clone with only Node and npm: it brings a pinned pnpm into a
// project-local folder (no global install, no corepack download prompt), installs the
// workspace when the lockfile changed, then hands over to the real command.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = rootPkg.packageManager.split('@')[1];
const toolsDir = join(root, '.tools');
const pnpmBin = join(toolsDir, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');

function log(msg) {
  process.stderr.write(`[walcache] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.status !== 0) {
    log(`command failed (${res.status ?? res.signal}): ${cmd} ${args.join(' ')}`);
    process.exit(res.status ?? 1);
  }
}

function ensurePnpm() {
  if (existsSync(pnpmBin)) {
    const installed = JSON.parse(
      readFileSync(join(toolsDir, 'node_modules', 'pnpm', 'package.json'), 'utf8'),
    );
    if (installed.version === pnpmVersion) return;
  }
  log(`installing pnpm ${pnpmVersion} into .tools/ (once)`);
  mkdirSync(toolsDir, { recursive: true });
  writeFileSync(join(toolsDir, 'package.json'), '{"private":true}\n');
  run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `pnpm@${pnpmVersion}`], {
    cwd: toolsDir,
  });
}

function ensureDeps() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  const lock = join(root, 'pnpm-lock.yaml');
  const stamp = join(root, 'node_modules', '.walcache-installed');
  const fresh =
    existsSync(marker) &&
    existsSync(stamp) &&
    existsSync(lock) &&
    statSync(stamp).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  log('installing dependencies (pnpm install)');
  const args = ['install', '--prefer-offline'];
  if (process.env.CI) args.push('--frozen-lockfile');
  run(process.execPath, [pnpmBin, ...args]);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

const [command, ...rest] = process.argv.slice(2);
// Programs run straight from node_modules/.bin (no `pnpm exec` in between), and TypeScript
// entry points as `node --import tsx` (no tsx CLI in between): tsx's CLI escalates a signal
// its child does not acknowledge within 30 ms to SIGKILL, which cut `npm start`'s orderly
// shutdown short on Ctrl-C and left the apps running.
const commands = {
  start: ['node', 'scripts/start.ts'],
  build: ['node', 'scripts/build.ts'],
  test: ['vitest', 'run'],
  bench: ['node', 'scripts/bench/main.ts'],
  walcache: ['node', 'packages/cli/src/main.ts'],
  'config-schema': ['node', 'scripts/config-schema.ts'],
  setup: ['true'],
  check: ['sh', '-c', 'node_modules/.bin/biome check . && node_modules/.bin/tsc -p tsconfig.json'],
};
if (!command || !(command in commands)) {
  log(`usage: node scripts/entry.mjs <${Object.keys(commands).join('|')}> [args]`);
  process.exit(2);
}

ensurePnpm();
ensureDeps();

const [bin, ...args] = commands[command];
if (bin === 'true') process.exit(0); // `setup`: install only
// `npm test` is what CI runs (.ci/run): it checks what a reviewer checks (lint, format, types)
// before the tests, so nothing passes CI that `npm run check` rejects.
if (command === 'test') {
  log('checking lint, format and types first (npm run check)');
  run(commands.check[0], commands.check.slice(1));
}
const [executable, programArgs] =
  bin === 'node'
    ? [process.execPath, ['--import', 'tsx', ...args]]
    : [bin === 'sh' ? 'sh' : join(root, 'node_modules', '.bin', bin), args];
const child = spawn(executable, [...programArgs, ...rest], { stdio: 'inherit', cwd: root });
// SIGTERM sent to this process alone (e.g. by a supervisor) must reach the program; a
// terminal's Ctrl-C reaches the whole process group anyway and the program tolerates both.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
// npm forwards a SIGTERM to the `sh -c` running this script, and sh dies without passing it
// on: this process is then orphaned (reparented). Treat that as the SIGTERM it was.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) child.kill('SIGTERM');
}, 500).unref();
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
