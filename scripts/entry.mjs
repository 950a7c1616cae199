#!/usr/bin/env node
// The npm entry point for `npm start`, `npm test`, `npm run bench`, `npm run check`.
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
const commands = {
  start: ['exec', 'tsx', 'scripts/start.ts'],
  test: ['exec', 'vitest', 'run'],
  bench: ['exec', 'tsx', 'scripts/bench/main.ts'],
  walcache: ['exec', 'tsx', 'packages/cli/src/main.ts'],
  check: ['run', '-r', '--if-present', 'noop'],
};
if (!command || !(command in commands)) {
  log(`usage: node scripts/entry.mjs <${Object.keys(commands).join('|')}> [args]`);
  process.exit(2);
}

ensurePnpm();
ensureDeps();

let args = [...commands[command], ...rest];
if (command === 'check') args = ['exec', 'sh', '-c', 'biome check . && tsc -p tsconfig.json'];
const child = spawn(process.execPath, [pnpmBin, ...args], { stdio: 'inherit', cwd: root });
// Forward the signals so Ctrl-C or SIGTERM reaches the start script, which stops what it
// started; this process only waits for it.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
