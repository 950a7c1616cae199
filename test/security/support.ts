import type { Io } from '@walcache/cli';
import { silentLogger } from '@walcache/observability';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { startCdc } from '../../apps/cdc/src/main.ts';
import type { Stack, testEnv } from '../support/stack.ts';

/** The whole path over the connections under test: MISS, HIT, a plain UPDATE, the new value. */
export async function expectWriteInvalidates(stack: Stack, writerUrl: string, id: number): Promise<void> {
  const get = async () => {
    const res = await fetch(`${stack.api.url}/v1/articles/${id}`);
    return { cache: res.headers.get('x-cache'), body: (await res.json()) as { title: string } };
  };
  await waitFor(() => stack.cdc.stream.state === 'streaming', {
    what: 'the CDC to stream',
    timeoutMs: 60_000,
  });
  // A HIT proves the fill went through this Redis connection. Polled: on a loaded machine a
  // first answer may be a BYPASS (the API's Redis commands fail fast by design).
  await waitFor(async () => (await get()).cache === 'HIT', { what: 'a cache hit', timeoutMs: 30_000 });
  const writer = new pg.Client({ connectionString: writerUrl });
  await writer.connect();
  const title = `written at ${Date.now()}`;
  try {
    await writer.query('update articles set title = $1 where id = $2', [title, id]);
  } finally {
    await writer.end();
  }
  await waitFor(async () => (await get()).body.title === title, {
    what: 'the API to answer the new title',
    timeoutMs: 20_000,
  });
}

/** A CLI terminal that records what the command printed. */
export function captureIo(): { io: Io; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      interactive: false,
      ask: async () => '',
    },
  };
}

/**
 * The CDC stops with the setup error instead of retrying: at start (it reads the catalog for
 * its config first) or when its stream loop ends. Returns that error.
 */
export async function cdcFailure(env: ReturnType<typeof testEnv>): Promise<Error> {
  let cdc: Awaited<ReturnType<typeof startCdc>>;
  try {
    cdc = await startCdc(env, silentLogger(), { heartbeatIntervalMs: 0 });
  } catch (error) {
    return error as Error;
  }
  try {
    const error = await cdc.done.then(
      () => new Error('the CDC ended without an error'),
      (e: unknown) => e as Error,
    );
    return error;
  } finally {
    await cdc.close();
  }
}
