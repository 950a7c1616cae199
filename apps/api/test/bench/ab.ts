/**
 * A/B of the API's hit path on one machine that other work shares: every variant is a real
 * API (startApi, the bundle's code) in this one process, each on its own port; wrk drives one
 * at a time in short interleaved slices, and each slice's figure is this process's CPU time
 * per request (process.cpuUsage, GC threads included), which other load moves far less than
 * req/s. Reports each variant's median and the median of the pairwise ratios.
 *
 *   node --import tsx apps/api/test/bench/ab.ts [variants.ts] [--rounds 8] [--seconds 3] [--list]
 *
 * A variants module exports `variants: { name: string; start(env): Promise<RunningApi> }[]`;
 * without one, the current code is compared with itself (the harness's own noise).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { silentLogger } from '@walcache/observability';
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { startServers, testEnv } from '../../../../test/support/stack.ts';
import { type RunningApi, startApi } from '../../src/main.ts';

type Env = ReturnType<typeof testEnv>;
export interface Variant {
  name: string;
  start(env: Env): Promise<RunningApi>;
  /** The path this variant serves the i-th body under (default: the API's own). */
  path?(i: number): string;
}

/**
 * The ceiling of scripts/bench/servers/baseline.ts: Hono answering one raw Redis GET of the
 * very bytes the API serves (copied under `bench:raw:ab:<i>` before the runs).
 */
const rawGet: Variant = {
  name: 'raw GET (ceiling)',
  path: (i) => `/raw/ab/${i}`,
  async start(env) {
    const redis = new Redis(env.REDIS_URL);
    const app = new Hono();
    app.get('/raw/:kind/:n', async (c) => {
      const body = await redis.getBuffer(`bench:raw:${c.req.param('kind')}:${c.req.param('n')}`);
      return body
        ? c.body(body as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/json' })
        : c.body(null, 404);
    });
    const server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server));
    });
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      port: (server.address() as AddressInfo).port,
      close: async () => {
        await new Promise((resolve) => server.close(resolve));
        await redis.quit();
      },
    };
  },
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '3' },
    list: { type: 'boolean', default: false },
    raw: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const same: Variant[] = ['A', 'B'].map((name) => ({ name, start: (env) => startApi(env, silentLogger()) }));
const variants: Variant[] = [
  ...(values.raw ? [rawGet] : []),
  ...(positionals[0]
    ? ((await import(join(process.cwd(), positionals[0]))) as { variants: Variant[] }).variants
    : same),
];

const ARTICLES = 1000;
const servers = await startServers({ users: 100, articles: ARTICLES, tags: 10, commentsPerArticle: 1 });
const running: { variant: Variant; api: RunningApi }[] = [];
try {
  const env = testEnv(servers);
  for (const variant of variants) running.push({ variant, api: await variant.start(env) });
  const api = running.find((r) => !r.variant.path)!.api;
  const paths = values.list
    ? await listPages(api.url)
    : Array.from({ length: ARTICLES }, (_, i) => `/v1/articles/${i + 1}`);
  const redis = new Redis(env.REDIS_URL);
  for (const [i, p] of paths.entries()) {
    const body = Buffer.from(await (await fetch(api.url + p)).arrayBuffer());
    await redis.set(`bench:raw:ab:${i}`, body);
  }
  await redis.quit();
  const scripts = new Map<Variant, string>();
  for (const { variant, api } of running) {
    const own = variant.path ? paths.map((_, i) => variant.path!(i)) : paths;
    for (const p of own) await (await fetch(api.url + p)).arrayBuffer();
    const script = join(tmpdir(), `ab-${process.pid}-${scripts.size}.lua`);
    writeFileSync(script, wrkScript(own));
    scripts.set(variant, script);
  }
  const perRequest = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const rps = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let round = -1; round < rounds; round++) {
    const order = round % 2 === 0 ? running : [...running].reverse();
    for (const { variant, api } of order) {
      const cpu = process.cpuUsage();
      const out = await wrk(api.url, scripts.get(variant)!, round < 0 ? 1 : seconds);
      const used = process.cpuUsage(cpu);
      if (round < 0) continue;
      perRequest.get(variant.name)!.push((used.user + used.system) / out.requests);
      rps.get(variant.name)!.push(out.requests / (out.duration_us / 1e6));
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').trim();
  process.stdout.write(`${rounds} rounds of ${seconds} s, ${paths.length} paths; load ${load}\n`);
  const base = variants[0]!.name;
  for (const v of variants) {
    const cpu = perRequest.get(v.name)!;
    const ratios = cpu.map((x, i) => x / perRequest.get(base)![i]!);
    process.stdout.write(
      `${v.name.padEnd(24)} ${median(cpu).toFixed(1).padStart(6)} µs/req (${cpu.map((x) => x.toFixed(0)).join(' ')})  ` +
        `${median(rps.get(v.name)!).toFixed(0).padStart(6)} req/s  vs ${base}: ${median(ratios).toFixed(3)}×\n`,
    );
  }
} finally {
  for (const { api } of running) await api.close();
  await servers.stop();
}

async function listPages(url: string): Promise<string[]> {
  const out: string[] = [];
  let path: string | undefined = '/v1/articles?limit=20';
  while (path && out.length < 50) {
    out.push(path);
    const body = (await (await fetch(url + path)).json()) as { nextCursor: string | null };
    path = body.nextCursor
      ? `/v1/articles?limit=20&cursor=${encodeURIComponent(body.nextCursor)}`
      : undefined;
  }
  return out;
}

/** Asynchronously: the servers under test run on this process's event loop. */
function wrk(url: string, script: string, s: number): Promise<{ requests: number; duration_us: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', '-c32', `-d${s}s`, '-s', script, url]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
      if (line) resolve(JSON.parse(line.slice(8)));
      else reject(new Error(`wrk: ${out}`));
    });
  });
}

function wrkScript(paths: string[]): string {
  return `local paths = {\n${paths.map((p) => `  ${JSON.stringify(p)},`).join('\n')}\n}
local reqs = {}
init = function(args) math.randomseed(os.time()) for i = 1, #paths do reqs[i] = wrk.format("GET", paths[i]) end end
request = function() return reqs[math.random(#paths)] end
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d}\\n', summary.requests, summary.duration))
end
`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
