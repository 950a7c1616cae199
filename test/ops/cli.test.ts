import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INVALIDATE_JOB_NAME, type InvalidationJob, keyspace } from '@walcache/core';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, bundlePath } from '../../scripts/build.ts';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';
import { apiCacheReady } from './helpers.ts';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'packages/cli/bin/walcache.mjs');

let servers: Servers;
let stack: Stack;
let redis: Redis;

beforeAll(async () => {
  // The binary under test is the bundle the build step produces (bin/ prefers it).
  await build();
  servers = await startServers();
  stack = await startStack(servers);
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  await apiCacheReady(stack.api.url);
  redis = new Redis(servers.redis.url);
});

afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
  await servers?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built binary as an operator would, with only the walcache variables set. */
function walcache(args: string[], env: Record<string, string> = stackEnv()): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function stackEnv(): Record<string, string> {
  const e = stack.env;
  return {
    DATABASE_URL: e.DATABASE_URL,
    REDIS_URL: e.REDIS_URL,
    CACHE_PREFIX: e.CACHE_PREFIX,
    QUEUE_NAME: e.QUEUE_NAME,
    SLOT_NAME: e.SLOT_NAME,
    PUBLICATION_NAME: e.PUBLICATION_NAME,
    PORT: String(stack.api.port),
  };
}

const api = (path: string) => fetch(`${stack.api.url}${path}`);
const cached = async (key: string) => (await redis.exists(keyspace(stack.env.CACHE_PREFIX).value(key))) === 1;

describe('the built walcache binary', () => {
  it('is the bundle, and prints usage with exit code 2 when no command is given', async () => {
    expect(existsSync(bundlePath('walcache'))).toBe(true);
    const run = await walcache([]);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('usage: walcache <command>');
  });

  it('names the missing variable and how to fix it (exit 78)', async () => {
    const run = await walcache(['status'], {});
    expect(run.code).toBe(78);
    expect(run.stderr).toContain('DATABASE_URL');
    expect(run.stderr).toContain('--env-file');
  });

  it('says which server it cannot reach (exit 69), without the password', async () => {
    const run = await walcache(['inspect', 'article:1'], {
      ...stackEnv(),
      REDIS_URL: 'redis://:hunter2secret@127.0.0.1:1',
    });
    expect(run.code).toBe(69);
    expect(run.stderr).toContain('REDIS_URL');
    expect(run.stderr).not.toContain('hunter2secret');
  });

  it('rejects an unknown command or option with exit code 2', async () => {
    expect((await walcache(['frobnicate'])).code).toBe(2);
    expect((await walcache(['status', '--colour'])).code).toBe(2);
  });

  it('status: the same document as /ops/status as JSON, and readable in a terminal', async () => {
    await api('/v1/articles/2');
    await api('/v1/articles/2');
    const json = await walcache(['status', '--json']);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as {
      queue: { name: string };
      cdc: { active: boolean; name: string };
      cache: { hits: number; hitRatio: number };
      auditor: { stale: number };
    };
    expect(doc.queue.name).toBe(stack.env.QUEUE_NAME);
    expect(doc.cdc).toMatchObject({ name: stack.env.SLOT_NAME, active: true });
    expect(doc.cache.hits).toBeGreaterThanOrEqual(1);
    const text = await walcache(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/Queue\s+invalidate-/);
    expect(text.stdout).toContain('streaming (walsender pid');
    expect(text.stdout).toMatch(/hit ratio \d+\.\d %/);
  });

  it('inspect: value, TTL, age and tags of a cached key, by key or by resource params', async () => {
    await api('/v1/articles/9');
    const byParams = await walcache(['inspect', 'article', 'id=9', '--json']);
    expect(byParams.code).toBe(0);
    const entry = JSON.parse(byParams.stdout) as {
      key: string;
      cached: boolean;
      ttlSeconds: number;
      ageSeconds: number;
      tags: string[];
      value: { id: string };
    };
    expect(entry).toMatchObject({ key: 'article:9', cached: true, value: { id: '9' } });
    expect(entry.ttlSeconds).toBeGreaterThan(0);
    expect(entry.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(entry.tags).toContain('row:articles:9');
    const byKey = await walcache(['inspect', 'article:9']);
    expect(byKey.code).toBe(0);
    expect(byKey.stdout).toContain('row:articles:9');
    expect(byKey.stdout).toMatch(/ttl\s+\d/);
  });

  it('inspect: exit 4 for a key that is not cached, 2 for bad params', async () => {
    const missing = await walcache(['inspect', 'article:987654']);
    expect(missing.code).toBe(4);
    expect(missing.stdout).toContain('not cached');
    const bad = await walcache(['inspect', 'article', 'id=abc']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad params for article: id must be an integer between 1 and');
  });

  it('flush: refuses without confirmation, then deletes one resource or everything', async () => {
    await api('/v1/articles/10');
    await api('/v1/users/1');
    expect(await cached('article:10')).toBe(true);
    const refused = await walcache(['flush', 'article']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('--yes');
    expect(await cached('article:10')).toBe(true);

    const one = await walcache(['flush', 'article', '--yes']);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/flushed "article": [1-9]\d* keys deleted/);
    expect(await cached('article:10')).toBe(false);
    expect(await cached('user:1')).toBe(true);

    const all = await walcache(['flush', '--all', '--yes', '--json']);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { deleted: number }).deleted).toBeGreaterThan(0);
    expect(all.stderr).toContain('keys deleted');
    expect(await cached('user:1')).toBe(false);
    // The API still works after a flush: a MISS refills.
    expect((await api('/v1/users/1')).headers.get('x-cache')).toBe('MISS');
  });

  it('replay-failed: moves failed jobs back to the queue', async () => {
    await stack.invalidator.queue.add(INVALIDATE_JOB_NAME, { v: 1 } as unknown as InvalidationJob, {
      jobId: 'cli-malformed',
      attempts: 1,
    });
    await waitFor(async () => (await stack.invalidator.queue.getJobState('cli-malformed')) === 'failed', {
      what: 'the malformed job to fail',
    });
    const firstRun = (await stack.invalidator.queue.getJob('cli-malformed'))?.processedOn ?? 0;
    const run = await walcache(['replay-failed', '--yes', '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { requeued: number }).requeued).toBe(1);
    expect(run.stderr).toContain('1/1 requeued');
    // The worker picks it up again (and, still malformed, it fails again).
    await waitFor(
      async () => ((await stack.invalidator.queue.getJob('cli-malformed'))?.processedOn ?? 0) > firstRun,
      {
        what: 'the replayed job to run again',
      },
    );
  });

  it('init: a starting config from DATABASE_URL alone; an existing file is refused without --force (exit 3)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'walcache-cli-init-'));
    try {
      const out = join(dir, 'walcache.config.yaml');
      const only = { DATABASE_URL: stack.env.DATABASE_URL };
      const first = await walcache(['init', '--out', out], only);
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/^wrote .*walcache\.config\.yaml: \d+ resources/);
      expect(readFileSync(out, 'utf8')).toMatch(/^resources:$/m);
      const again = await walcache(['init', '--out', out], only);
      expect(again.code).toBe(3);
      expect(again.stderr).toContain('Pass --force to overwrite it');
      expect((await walcache(['init', '--out', out, '--force'], only)).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verify: refuses a database not named by --confirm-database (exit 3), before writing anything', async () => {
    const result = await walcache(['verify', '--confirm-database', 'production']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/DATABASE_URL is database "[^"]+", not "production".*--confirm-database/s);
    expect((await walcache(['status', '--mutations', '3'])).code).toBe(2); // verify's flags are verify's
  });

  it('slot: shows it, refuses to drop it while the CDC streams, recreates it (and flushes) once stopped', async () => {
    const show = await walcache(['slot']);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('streaming       yes');
    const busy = await walcache(['slot', 'drop', '--yes']);
    expect(busy.code).toBe(3);
    expect(busy.stderr).toContain('stop the CDC first');

    await stack.cdc.close();
    await api('/v1/articles/11');
    expect(await cached('article:11')).toBe(true);
    const recreate = await walcache(['slot', 'recreate', '--yes']);
    expect(recreate.code).toBe(0);
    expect(recreate.stderr).toContain('WARNING');
    expect(recreate.stdout).toMatch(
      /recreated slot \S+ at [0-9A-F]+\/[0-9A-F]+ and flushed [1-9]\d* cached keys/,
    );
    expect(await cached('article:11')).toBe(false);

    const dropped = await walcache(['slot', 'drop', '--yes', '--json']);
    expect(dropped.code).toBe(0);
    const gone = await walcache(['slot', '--json']);
    expect(gone.code).toBe(4);
    expect((JSON.parse(gone.stdout) as { exists: boolean }).exists).toBe(false);
  });

  it('asks before a destructive command in a terminal: "no" changes nothing, "yes" goes ahead', async () => {
    // The prompt path needs a terminal, so this runs the CLI's entry function in-process with
    // a scripted terminal; everything else in this file runs the built binary.
    const { run } = await import('../../packages/cli/src/main.ts');
    const terminal = (answer: string) => {
      const out: string[] = [];
      const err: string[] = [];
      const questions: string[] = [];
      return {
        out,
        err,
        questions,
        io: {
          out: (t: string) => out.push(t),
          err: (t: string) => err.push(t),
          interactive: true,
          ask: async (q: string) => {
            questions.push(q);
            return answer;
          },
        },
      };
    };
    await api('/v1/articles/12');
    expect(await cached('article:12')).toBe(true);
    const no = terminal('no');
    expect(await run(['flush', 'article'], no.io, stackEnv())).toBe(3);
    expect(no.questions[0]).toContain('delete every cached "article" value');
    expect(no.err.join('\n')).toContain('aborted: nothing was changed');
    expect(await cached('article:12')).toBe(true);
    const yes = terminal('yes');
    expect(await run(['flush', 'article'], yes.io, stackEnv())).toBe(0);
    expect(await cached('article:12')).toBe(false);
  });
});
