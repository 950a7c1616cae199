import { createServer } from 'node:net';

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** Polls `check` until it resolves true or the deadline passes (no fixed sleeps in tests). */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  {
    timeoutMs = 10_000,
    intervalMs = 25,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

/** Whether `port` can be listened on at `host` right now (another process may take it later). */
export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Whether a server could not start because its port was taken: freePort's answer is a hint,
 * not a reservation, and any process's outgoing connection may take the port before the
 * server binds it (seen: a cluster bus port, in a full parallel suite).
 */
export function portWasTaken(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause)
    if (/Address already in use|EADDRINUSE/.test(e.message)) return true;
  return false;
}

/** Runs `start` again, up to `attempts` times in all, while it fails because a port it chose was taken. */
export async function retryWhilePortTaken<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start();
    } catch (error) {
      if (attempt >= attempts || !portWasTaken(error)) throw error;
    }
  }
}
