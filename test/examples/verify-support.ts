import { type Io, run } from '@walcache/cli';
import type { Stack } from '../support/stack.ts';

export interface VerifyRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `walcache verify` in this process, against the environment of a running stack. */
export async function verify(
  sys: { stack: Pick<Stack, 'env'> },
  args: string[],
  overrides: Record<string, string> = {},
) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: Io = {
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    interactive: false,
    ask: async () => '',
  };
  const e = sys.stack.env;
  const env: Record<string, string> = {
    DATABASE_URL: e.DATABASE_URL,
    REDIS_URL: e.REDIS_URL,
    CACHE_PREFIX: e.CACHE_PREFIX,
    QUEUE_NAME: e.QUEUE_NAME,
    SLOT_NAME: e.SLOT_NAME,
    PUBLICATION_NAME: e.PUBLICATION_NAME,
    ...(e.WALCACHE_CONFIG ? { WALCACHE_CONFIG: e.WALCACHE_CONFIG } : {}),
    ...overrides,
  };
  const code = await run(['verify', ...args], io, env);
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') } satisfies VerifyRun;
}

/** The database name of a postgres:// URL. */
export const databaseOf = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));
