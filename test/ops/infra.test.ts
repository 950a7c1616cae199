import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianTool, waitFor } from '@walcache/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

const prometheusSchema = z.object({
  global: z.object({ scrape_interval: z.string(), evaluation_interval: z.string() }),
  rule_files: z.array(z.string()),
  scrape_configs: z.array(
    z.object({ job_name: z.string(), static_configs: z.array(z.object({ targets: z.array(z.string()) })) }),
  ),
});
const duration = z.string().regex(/^\d+[smh]$/);
const alertsSchema = z.object({
  groups: z.array(
    z.object({
      name: z.string(),
      rules: z.array(
        z.object({
          alert: z.string().regex(/^[A-Z][A-Za-z]+$/),
          expr: z.string().min(1),
          for: duration.optional(),
          labels: z.object({ severity: z.enum(['warning', 'critical']) }),
          annotations: z.object({ summary: z.string().min(1) }),
        }),
      ),
    }),
  ),
});
const dashboardSchema = z.object({
  uid: z.string(),
  title: z.string(),
  panels: z.array(
    z.object({
      type: z.string(),
      title: z.string(),
      datasource: z.object({ uid: z.string() }).optional(),
      targets: z.array(z.object({ expr: z.string() })).optional(),
    }),
  ),
});

const prometheus = prometheusSchema.parse(parse(read('infra/prometheus/prometheus.yml')));
const alerts = alertsSchema.parse(parse(read('infra/prometheus/alerts.yml')));
const dashboard = dashboardSchema.parse(JSON.parse(read('infra/grafana/walcache.json')));
const rules = alerts.groups.flatMap((g) => g.rules);
const alertExprs = rules.map((r) => r.expr);
const dashboardExprs = dashboard.panels.flatMap((p) => p.targets?.map((t) => t.expr) ?? []);

describe('infra/ configuration', () => {
  it('prometheus scrapes the api, the cdc and the invalidator and loads the alert rules', () => {
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets).toEqual(expect.arrayContaining(['api:3000', 'cdc:9465', 'invalidator:9466']));
    for (const file of prometheus.rule_files)
      expect(existsSync(join(root, 'infra/prometheus', file))).toBe(true);
  });

  it('has an alert for each failure an operator must hear about', () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'WalcacheSlotLagGrowing',
        'WalcacheWalRetainedHigh',
        'WalcacheQueueBacklogOld',
        'WalcacheInvalidationJobsFailed',
        'WalcacheCdcDisconnected',
        'WalcacheHitRatioCollapse',
        'WalcacheStaleValuesFound',
      ]),
    );
  });

  it('every PromQL expression has balanced brackets', () => {
    for (const expr of [...alertExprs, ...dashboardExprs]) {
      const stack: string[] = [];
      const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
      for (const ch of expr.replace(/"[^"]*"/g, '""')) {
        if ('([{'.includes(ch)) stack.push(ch);
        else if (ch in pairs) expect(stack.pop(), expr).toBe(pairs[ch]);
      }
      expect(stack, expr).toEqual([]);
    }
  });

  it('grafana provisions the Prometheus datasource every panel uses, and docker compose mounts it all', () => {
    const datasource = parse(read('infra/grafana/provisioning/datasources/prometheus.yml')) as {
      datasources: { uid: string; url: string }[];
    };
    const uid = datasource.datasources[0]?.uid;
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row'))
      expect(panel.datasource?.uid).toBe(uid);
    const compose = parse(read('docker-compose.yml')) as {
      services: Record<string, { profiles?: string[]; volumes?: string[] }>;
    };
    for (const name of ['prometheus', 'grafana']) {
      const service = compose.services[name];
      expect(service?.profiles).toEqual(['monitoring']);
      for (const volume of service?.volumes ?? [])
        expect(existsSync(join(root, volume.split(':')[0]!))).toBe(true);
    }
  });

  let promtool: string;
  // Why 10 minutes: the first run may fetch promtool from Debian's archive (ensureDebianTool).
  beforeAll(async () => {
    promtool = await ensureDebianTool('promtool', { debianPackage: 'prometheus' });
  }, 600_000);
  it('promtool accepts the config, the rules and the dashboard queries, and the alert unit tests pass', () => {
    // The dashboard's queries, checked as recording rules (promtool parses their PromQL).
    const dir = mkdtempSync(join(tmpdir(), 'walcache-promql-'));
    const dashboardRules = join(dir, 'dashboard-rules.yml');
    writeFileSync(
      dashboardRules,
      stringify({
        groups: [
          {
            name: 'dashboard',
            rules: dashboardExprs.map((expr, i) => ({ record: `walcache:dashboard:${i}`, expr })),
          },
        ],
      }),
    );
    try {
      for (const args of [
        ['check', 'config', join(root, 'infra/prometheus/prometheus.yml')],
        ['check', 'rules', join(root, 'infra/prometheus/alerts.yml')],
        ['check', 'rules', dashboardRules],
        ['test', 'rules', join(root, 'infra/prometheus/alerts.test.yml')],
      ]) {
        const run = spawnSync(promtool, args, { encoding: 'utf8' });
        expect(run.status, `promtool ${args.join(' ')}\n${run.stdout}${run.stderr}`).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('alerts and dashboard use the metric names the apps export', () => {
  let servers: Servers;
  let stack: Stack;
  beforeAll(async () => {
    servers = await startServers();
    stack = await startStack(servers);
    await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
  });
  afterAll(async () => {
    await stack?.stop();
    await servers?.stop();
  });

  it('every walcache_* name in infra/ is a series of the api, the cdc or the invalidator', async () => {
    // One change so every labelled family has a series too.
    const writer = new pg.Client({ connectionString: servers.pg.url });
    await writer.connect();
    await fetch(`${stack.api.url}/v1/articles/1`);
    await writer.query("update articles set title = 'infra' where id = 1");
    await writer.end();
    const known = new Set<string>();
    for (const url of [
      `${stack.api.url}/metrics`,
      `http://127.0.0.1:${stack.cdc.metricsPort}/metrics`,
      `http://127.0.0.1:${stack.invalidator.metricsPort}/metrics`,
    ]) {
      for (const line of (await (await fetch(url)).text()).split('\n')) {
        const m = /^# TYPE (\S+) (\S+)/.exec(line);
        if (!m) continue;
        known.add(m[1]!);
        if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) known.add(`${m[1]}${s}`);
      }
    }
    const used = new Set(
      [...alertExprs, ...dashboardExprs].flatMap((e) => e.match(/walcache_[a-z0-9_]+/g) ?? []),
    );
    expect(used.size).toBeGreaterThan(20);
    expect([...used].filter((name) => !known.has(name))).toEqual([]);
  });
});
