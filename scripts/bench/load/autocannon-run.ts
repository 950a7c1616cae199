/**
 * One autocannon run in its own process (the load must not share an event loop with the
 * bench's bookkeeping). Reads a LoadSpec JSON file, prints `ACJSON <LoadResult>`.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from '../load.ts';

const file = process.argv[2];
if (!file) throw new Error('usage: autocannon-run.ts <spec.json>');
const spec = JSON.parse(readFileSync(file, 'utf8')) as LoadSpec;
const paths = spec.paths;

process.stdout.write('ACSTART\n');
const result = await autocannon({
  url: spec.baseUrl,
  connections: spec.connections,
  duration: spec.durationS,
  // A request slower than 10 s counts as an error instead of hanging the run.
  timeout: 10,
  requests: [
    {
      method: 'GET',
      setupRequest: (request) => ({ ...request, path: paths[Math.floor(Math.random() * paths.length)] }),
    },
  ],
});

const out: LoadResult = {
  requests: result.requests.total,
  durationS: result.duration,
  rps: result.requests.total / result.duration,
  p50Ms: result.latency.p50,
  p99Ms: result.latency.p99,
  maxMs: result.latency.max,
  errors: result.errors + result.timeouts + result.non2xx,
};
process.stdout.write(`ACJSON ${JSON.stringify(out)}\n`);
