/**
 * Measures what gzip buys on the API's real answers, to choose `limits.compressMinBytes` and
 * `limits.gzipLevel`. Starts private servers seeded at the default (demo) size, fetches each
 * kind of answer through the app, and reports size, compressed size and gzip CPU time.
 *
 *   node_modules/.bin/tsx apps/api/test/bench/compression.ts
 */
import { gzipSync } from 'node:zlib';
import { defaultSeedSize } from '../../../../examples/blog/index.ts';
import { startServers } from '../../../../test/support/stack.ts';
import { buildApi } from '../support.ts';

const servers = await startServers(defaultSeedSize);
const api = await buildApi(servers);
try {
  const samples: [string, string][] = [
    ['user', '/v1/users/7'],
    ['tags (40)', '/v1/tags'],
    ['article, short body', '/v1/articles/12'],
    ['article, long body', '/v1/articles/11'],
    ['comments, 3', '/v1/articles/11/comments'],
    ['articles limit=5', '/v1/articles?limit=5'],
    ['articles limit=20', '/v1/articles?limit=20'],
    ['articles limit=50', '/v1/articles?limit=50'],
    ['articles limit=100', '/v1/articles?limit=100'],
  ];
  const levels = [1, 4, 6];
  const rows: string[] = [
    `| answer | bytes | ${levels.map((l) => `gzip-${l} bytes | gzip-${l} µs`).join(' | ')} |`,
    `|---|---:|${levels.map(() => '---:|---:').join('|')}|`,
  ];
  // Warm zlib and the JIT first, or the first row pays for both.
  for (let i = 0; i < 2000; i++) gzipSync(Buffer.alloc(4096, i % 251));
  for (const [name, url] of samples) {
    const body = Buffer.from(await (await api.app.request(url)).arrayBuffer());
    const cells = [name, String(body.length)];
    for (const level of levels) {
      const runs = 2000;
      let out = gzipSync(body, { level });
      const started = process.hrtime.bigint();
      for (let i = 0; i < runs; i++) out = gzipSync(body, { level });
      const micros = Number(process.hrtime.bigint() - started) / runs / 1000;
      cells.push(`${out.length} (${Math.round((100 * out.length) / body.length)} %)`, micros.toFixed(1));
    }
    rows.push(`| ${cells.join(' | ')} |`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
} finally {
  await api.close();
  await servers.stop();
}
