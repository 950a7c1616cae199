/**
 * Cost of a cache hit inside the app (no sockets): app.request() on warm keys, sequentially,
 * with and without gzip, and the pool checkouts it caused (must be 0).
 *
 *   node_modules/.bin/tsx apps/api/test/bench/hit-path.ts
 */
import { startServers } from '../../../../test/support/stack.ts';
import { buildApi } from '../support.ts';

const servers = await startServers();
const api = await buildApi(servers);
try {
  const cases: [string, Record<string, string>][] = [
    ['/v1/users/3', {}],
    ['/v1/articles/7', {}],
    ['/v1/articles?limit=20', {}],
    ['/v1/articles?limit=20', { 'accept-encoding': 'gzip' }],
    ['/v1/articles?limit=100', {}],
    ['/v1/articles?limit=100', { 'accept-encoding': 'gzip' }],
  ];
  const runs = 3000;
  for (const [url, headers] of cases) {
    await api.app.request(url, { headers }); // fill
    for (let i = 0; i < 300; i++) await api.app.request(url, { headers }); // warm the JIT
    const before = api.checkouts();
    const started = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) {
      const res = await api.app.request(url, { headers });
      await res.arrayBuffer();
    }
    const micros = Number(process.hrtime.bigint() - started) / runs / 1000;
    const label = `${url}${headers['accept-encoding'] ? ' (gzip)' : ''}`;
    process.stdout.write(
      `${label.padEnd(36)} ${micros.toFixed(1).padStart(7)} µs/hit  checkouts during hits: ${api.checkouts() - before}\n`,
    );
  }
} finally {
  await api.close();
  await servers.stop();
}
