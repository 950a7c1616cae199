import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The project's own tool folder (gitignored), where `npm` also keeps its pinned pnpm. */
const toolsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '.tools');

function works(path: string, versionArgs: string[]): boolean {
  return spawnSync(path, versionArgs, { stdio: 'ignore' }).status === 0;
}

export interface DebianToolOptions {
  /** The Debian package that ships the binary, e.g. `prometheus` for `promtool`. */
  debianPackage: string;
  /** Its path inside the package; default `/usr/bin/<command>`. */
  pathInPackage?: string;
  /** Arguments that make the binary exit 0 without side effects; default `--version`. */
  versionArgs?: string[];
}

/**
 * The path of `command`: from PATH, else from `.tools/bin`, else fetched from Debian's
 * archive (`apt-get update`, `apt-get download`) and unpacked there. The package is unpacked,
 * not installed: `apt-get install prometheus` would also start a Prometheus daemon on a
 * systemd machine, and a test suite must not leave services behind. Suits self-contained
 * binaries (Go's are static); throws with the manual install command when it cannot.
 */
export async function ensureDebianTool(command: string, options: DebianToolOptions): Promise<string> {
  const versionArgs = options.versionArgs ?? ['--version'];
  if (works(command, versionArgs)) return command;
  const local = join(toolsDir, 'bin', command);
  if (existsSync(local) && works(local, versionArgs)) return local;
  const hint = `${command} is missing: install it with \`apt-get install ${options.debianPackage}\``;
  if (!works('apt-get', ['--version'])) throw new Error(`${hint} (no apt-get on this machine)`);
  const work = await mkdtemp(join(toolsDir, `.${command}-`)).catch(async () => {
    await mkdir(toolsDir, { recursive: true });
    return mkdtemp(join(toolsDir, `.${command}-`));
  });
  try {
    // Why 10 minutes: a first `apt-get update` plus a download of a Go binary's package
    // (tens of MB) on a slow mirror; past that, the error below names the manual fix.
    const timeout = 600_000;
    // Stale package lists name versions the mirror no longer has: refresh them first. As a
    // non-root user this fails; the download may still work from the lists already there.
    await run('apt-get', ['update', '-qq'], { timeout }).catch(() => undefined);
    await run('apt-get', ['download', '-qq', options.debianPackage], { cwd: work, timeout });
    const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${options.debianPackage} produced no .deb`);
    await run('dpkg-deb', ['-x', join(work, deb), join(work, 'root')], { timeout });
    const inPackage = join(work, 'root', options.pathInPackage ?? `/usr/bin/${command}`);
    await mkdir(dirname(local), { recursive: true });
    // rename() is atomic: a concurrent test file sees either no binary or a whole one.
    await rename(inPackage, local);
  } catch (error) {
    throw new Error(`${hint}; fetching it failed: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  if (!works(local, versionArgs)) throw new Error(`${hint}; the unpacked ${local} does not run`);
  return local;
}

/**
 * The path of `command`, installing the Debian package that ships it when it is missing
 * (`apt-get install`, as root). For tools that need their libraries installed with them
 * (Chromium), where unpacking one binary (ensureDebianTool) is not enough. Throws with the
 * reason when installing is impossible (not root, no apt-get) or fails: only then may a test
 * skip, printing that reason.
 */
export async function ensureDebianPackage(
  command: string,
  options: DebianToolOptions & { path?: string },
): Promise<string> {
  const path = options.path ?? `/usr/bin/${command}`;
  const versionArgs = options.versionArgs ?? ['--version'];
  if (works(path, versionArgs)) return path;
  const hint = `${command} is missing: install it with \`apt-get install -y ${options.debianPackage}\``;
  if (!works('apt-get', ['--version'])) throw new Error(`${hint} (no apt-get on this machine)`);
  if (process.getuid?.() !== 0) throw new Error(`${hint} (installing needs root)`);
  // Why 15 minutes: a first `apt-get update` plus Chromium and its libraries (~150 MB) on a
  // slow mirror; past that, the error below names the manual fix.
  const timeout = 900_000;
  // Why a lock timeout: two test files may install at once; dpkg allows one at a time.
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await run('apt-get', [...lock, 'update', '-qq'], { timeout, env }).catch(() => undefined);
    await run(
      'apt-get',
      [...lock, 'install', '-y', '-qq', '--no-install-recommends', options.debianPackage],
      {
        timeout,
        env,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (error) {
    throw new Error(`${hint}; installing it failed: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  }
  if (!works(path, versionArgs)) throw new Error(`${hint}; after installing, ${path} does not run`);
  return path;
}
