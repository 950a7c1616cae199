import { createServer, type Server } from 'node:net';
import { portIsFree, waitFor } from '@walcache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Checkout,
  copyCheckout,
  killMarked,
  type NpmStart,
  npmStart,
  type StartedPorts,
} from '../support/npm-start.ts';

/** npm start's defaults: held by this file, so every run here must pick free ports itself. */
const DEFAULT_PORTS = [3000, 9465, 9466, 63790, 54329];

function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined)); // already taken by someone else: fine too
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}

async function allFree(ports: StartedPorts): Promise<Record<string, boolean>> {
  return {
    api: await portIsFree(ports.api, '0.0.0.0'),
    cdcMetrics: await portIsFree(ports.cdcMetrics, '0.0.0.0'),
    invalidatorMetrics: await portIsFree(ports.invalidatorMetrics, '0.0.0.0'),
    redis: await portIsFree(ports.redis),
    postgres: await portIsFree(ports.postgres),
  };
}

const FREE = { api: true, cdcMetrics: true, invalidatorMetrics: true, redis: true, postgres: true };

describe('npm start, with real signals', () => {
  const held: Server[] = [];
  const runs: NpmStart[] = [];
  let one: Checkout;
  let two: Checkout;
  const start = (checkout: Checkout, env?: Record<string, string>) => {
    const run = npmStart(checkout.dir, env);
    runs.push(run);
    return run;
  };

  beforeAll(async () => {
    for (const port of DEFAULT_PORTS) {
      const server = await listenOn(port);
      if (server) held.push(server);
    }
    [one, two] = await Promise.all([copyCheckout(), copyCheckout()]);
  });
  afterAll(async () => {
    for (const run of runs) killMarked(run);
    for (const server of held) server.close();
    await Promise.all([one?.remove(), two?.remove()]);
  });

  let second: NpmStart;
  let secondPorts: StartedPorts;

  it('kill -9 of its process group: within 5 s nothing of it is left and its ports are free; it starts again', async () => {
    const first = start(one);
    const ports = await first.ready();
    // The defaults are held by this test: every port was picked, and said so.
    expect(Object.values(ports).some((p) => DEFAULT_PORTS.includes(p))).toBe(false);
    expect(first.output()).toMatch(/port 3000 \(PORT\) is taken; using \d+/);
    const before = first.processes();
    // npm, sh, entry.mjs, start.ts, 3 apps, redis-server, the postmaster and its backends.
    expect(before.length).toBeGreaterThan(10);

    process.kill(-first.pid, 'SIGKILL'); // what an OOM kill, a closed tab or a CI timeout does
    const killedAt = Date.now();
    await waitFor(() => first.processes().length === 0, { timeoutMs: 10_000, intervalMs: 50 }).catch(
      () => {},
    );
    const left = first.processes();
    const tookMs = Date.now() - killedAt;
    expect(left, `still running ${tookMs} ms after the kill: ${left.join(' ')}`).toEqual([]);
    expect(tookMs).toBeLessThan(5_000);
    expect(await allFree(ports)).toEqual(FREE);

    second = start(one);
    secondPorts = await second.ready();
  }, 240_000);

  it('two npm start side by side on one machine, both serving', async () => {
    const other = start(two);
    const otherPorts = await other.ready();
    for (const [run, ports] of [
      [second, secondPorts],
      [other, otherPorts],
    ] as const) {
      const res = await fetch(`http://127.0.0.1:${ports.api}/v1/articles/2`);
      expect(res.status, run.output()).toBe(200);
    }
    expect(new Set([...Object.values(secondPorts), ...Object.values(otherPorts)]).size).toBe(10);

    // A supervisor's SIGTERM to npm alone (not the group) stops everything too.
    process.kill(other.pid, 'SIGTERM');
    await other.exited;
    await waitFor(() => other.processes().length === 0, { timeoutMs: 30_000, what: 'the other run to stop' });
    expect(await allFree(otherPorts)).toEqual(FREE);
  }, 240_000);

  it('Ctrl-C stops the apps, then Redis, then Postgres, quietly', async () => {
    const marker = second.output().length;
    process.kill(-second.pid, 'SIGINT'); // a terminal sends Ctrl-C to the whole foreground group
    await second.exited;
    await waitFor(() => second.processes().length === 0, { timeoutMs: 30_000, what: 'npm start to stop' });
    const stop = second.output().slice(marker);
    const order = [
      /stopping…/,
      /apps stopped; stopping redis-server/,
      /stopping PostgreSQL/,
      /\[start\]\s+stopped/,
    ];
    const at = order.map((line) => stop.search(line));
    expect(
      at.every((i) => i >= 0),
      stop,
    ).toBe(true);
    expect(
      [...at].sort((a, b) => a - b),
      stop,
    ).toEqual(at);
    // Each app says it stopped, and nothing during the stop is a warning or an error.
    for (const app of ['api', 'cdc', 'invalidator'])
      expect(stop, stop).toMatch(new RegExp(`\\[${app}\\]\\s+\\S+ INFO: stopped`));
    expect(stop, stop).not.toMatch(/WARN|ERROR|FATAL|terminating connection/);
    expect(await allFree(secondPorts)).toEqual(FREE);
  }, 120_000);

  it('a taken explicit port is a one-line error naming the variable, before anything starts', async () => {
    const taken = held[0]?.address();
    const port = typeof taken === 'object' && taken ? taken.port : 3000;
    for (const variable of ['PORT', 'CDC_METRICS_PORT']) {
      const run = start(one, { [variable]: String(port) });
      expect(await run.exited).not.toBe(0);
      expect(run.output()).toContain(`${variable}=${port} is already in use`);
      expect(run.output()).not.toContain('starting a private');
    }
  }, 60_000);
});
