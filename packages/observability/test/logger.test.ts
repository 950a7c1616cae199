import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../src/index.ts';

it('logs a pg connection error by its fields, without the client object node-postgres attaches', async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger('test', { destination });
  const error = Object.assign(new Error('terminating connection due to administrator command'), {
    code: '57P01',
    client: { connectionParameters: { password: 'secret' }, _queryable: false },
  });
  logger.warn({ err: error }, 'database connection lost');
  await new Promise((resolve) => setImmediate(resolve));
  const logged = JSON.parse(lines.join('')) as { err: Record<string, unknown> };
  expect(logged.err.message).toContain('terminating connection');
  expect(logged.err.code).toBe('57P01');
  expect(logged.err).not.toHaveProperty('client');
});
