import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@walcache/testkit';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { startOrExit } from '../../packages/observability/src/index.ts';
import { ConfigMismatchError } from '../../packages/resources/src/index.ts';

/**
 * A config that cannot be served stops every app with its list of problems and EX_CONFIG
 * (78), like a bad environment variable: one message a person can act on, no stack trace.
 */

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'walcache-config-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runApp(app: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'apps', app, 'src', 'main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk));
    child.stderr?.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('a config file that is not the format', () => {
  const file = join(dir, 'walcache.config.yaml');
  writeFileSync(file, 'resources:\n  film:\n    table: film\n    by: film_id\n    colums: [title]\n');

  for (const app of ['api', 'cdc', 'invalidator']) {
    it(`${app}: exits 78 with the field and the fix, no stack trace`, async () => {
      // Nothing listens on these ports: the file is rejected before any connection is needed.
      const [pgPort, redisPort] = [await freePort(), await freePort()];
      const { code, output } = await runApp(app, {
        WALCACHE_CONFIG: file,
        DATABASE_URL: `postgres://nobody:nothing@127.0.0.1:${pgPort}/none`,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        PORT: '0',
        CDC_METRICS_PORT: '0',
        INVALIDATOR_METRICS_PORT: '0',
      });
      expect(output).toContain(
        'resources.film: unknown field \\"colums\\" (see docs/config.md for the fields)',
      );
      expect(output).toContain(`"code":"WALCACHE_CONFIG_FILE"`);
      expect(output).not.toMatch(/\n\s+at /);
      expect(code).toBe(78);
    });
  }
});

describe('startOrExit', () => {
  it('a config that does not match the database: its problems and EX_CONFIG', async () => {
    const lines: string[] = [];
    const logger = { fatal: (_fields: unknown, message: string) => lines.push(message) };
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => {
      throw new Error('exited');
    }) as never);
    try {
      await expect(
        startOrExit(logger as never, async () => {
          throw new ConfigMismatchError([
            'resource "film": table film has no column "titel"; did you mean "title"?',
          ]);
        }),
      ).rejects.toThrow('exited');
      expect(exit).toHaveBeenCalledWith(78);
      expect(lines).toEqual([
        'the config does not match the database:\n  - resource "film": table film has no column "titel"; did you mean "title"?\nFix the config (docs/config.md) or the schema, then start again.',
      ]);
    } finally {
      exit.mockRestore();
    }
  });
});
