import type { Io } from '@walcache/cli';
import { waitFor } from '@walcache/testkit';
import pg from 'pg';
import { expect } from 'vitest';
import type { Stack } from '../support/stack.ts';

/** The whole path over the connections under test: MISS, HIT, a plain UPDATE, the new value. */
export async function expectWriteInvalidates(stack: Stack, writerUrl: string, id: number): Promise<void> {
  const get = async () => {
    const res = await fetch(`${stack.api.url}/v1/articles/${id}`);
    return { cache: res.headers.get('x-cache'), body: (await res.json()) as { title: string } };
  };
  await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  expect((await get()).cache).toBe('MISS');
  expect((await get()).cache).toBe('HIT');
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
