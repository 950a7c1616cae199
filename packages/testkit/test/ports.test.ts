/**
 * A port chosen by freePort may be taken before the server binds it (any process's outgoing
 * connection can get it): a Redis that cannot bind says so, and one whose port the
 * testkit chose is started again on another.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort, portWasTaken, retryWhilePortTaken, startRedis } from '../src/index.ts';

let holder: Server;
let taken: number;

beforeAll(async () => {
  taken = await freePort();
  // Drops whoever connects: a port held, not a server that answers.
  holder = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => holder.listen(taken, '127.0.0.1', resolve));
});

afterAll(async () => {
  await new Promise((resolve) => holder?.close(resolve));
});

it('a Redis asked for a taken port fails, and the error says the port was taken', async () => {
  const error = await startRedis({ port: taken }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(portWasTaken(error)).toBe(true);
});

it('a start that found its port taken is run again with another', async () => {
  const ports: number[] = [];
  const server = await retryWhilePortTaken(async () => {
    const port = ports.length === 0 ? taken : await freePort();
    ports.push(port);
    return startRedis({ port });
  });
  try {
    expect(ports).toHaveLength(2);
    expect(server.port).toBe(ports[1]);
  } finally {
    await server.stop();
  }
});

it('any other failure is not retried', async () => {
  let calls = 0;
  await expect(
    retryWhilePortTaken(async () => {
      calls += 1;
      throw new Error('bad argument');
    }),
  ).rejects.toThrow('bad argument');
  expect(calls).toBe(1);
});
