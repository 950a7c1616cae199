import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { freePort } from '@walcache/testkit';
import { type Ctx, fillAll, measure } from '../context.ts';
import { progress, root } from '../procs.ts';
import type { ProfileEntry, ProfileSummary } from '../results.ts';
import { childGroup, startApiChild } from '../stack.ts';

interface CpuProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  startTime: number;
  endTime: number;
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const LABELS = { detail: 'article detail', list: 'list page' } as const;

/**
 * Runs a second API process with `--cpu-prof` under the hit load of article details or of
 * list pages, stops it (the profile is written on a clean exit) and summarises self time per
 * function and area.
 */
export async function profileHitPath(ctx: Ctx, kind: 'detail' | 'list' = 'detail'): Promise<ProfileSummary> {
  // Every read of the profiled run must be a hit: refill whatever an earlier scenario invalidated.
  await fillAll(ctx.apps.apiUrl, ctx.redis, ctx.paths[kind]);
  const dir = join(root, 'bench-output', `cpuprofile-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const env = { ...ctx.apps.env, PORT: String(await freePort()) };
  progress(`profile: starting a second API with --cpu-prof (${relative(root, dir)})`);
  const { child, url } = await startApiChild(ctx.children, env, {
    name: 'api (profiled)',
    nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir],
    from: 'sources',
  });
  let row: Awaited<ReturnType<typeof measure>>;
  let measuredFrom = 0;
  let measuredTo = 0;
  let stoppedAt = 0;
  try {
    row = await measure(
      ctx,
      {
        id: `profiled-${kind}`,
        scenario: 'profile',
        label: `walcache hit, ${LABELS[kind]}, profiled`,
        baseUrl: url,
        paths: ctx.paths[kind],
        server: childGroup('api', () => child),
        durationS: ctx.profile.profileS,
        onMeasureStart: () => {
          measuredFrom = performance.now();
        },
      },
      [],
    );
    measuredTo = performance.now();
  } finally {
    stoppedAt = performance.now();
    await ctx.children.stop(child);
  }
  // The tsx loader runs in a worker thread, which writes its own (small) profile: take the
  // main thread's, the largest.
  const file = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
  if (!file) throw new Error(`the profiled API wrote no .cpuprofile into ${dir}:\n${child.output()}`);
  // Only the measured run counts (not start-up's module compilation, nor the warm-up). The
  // profile ends when the process exits, a few ms after the SIGTERM: the window, placed back
  // from the profile's end, is early by that shutdown time — a few ms of a multi-second run.
  const window = { fromEndUs: (stoppedAt - measuredFrom) * 1000, toEndUs: (stoppedAt - measuredTo) * 1000 };
  const summary = summarise(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, window);
  return { file: relative(root, join(dir, file)), rps: row.rps, kind: LABELS[kind], ...summary };
}

/** Where a function lives, shortened: a package name, a workspace file, or a node internal. */
function whereOf(url: string): string {
  if (!url) return '(native)';
  const pkg = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (pkg) return `${pkg[1]}/${pkg[2]}`;
  const own = url.indexOf('/work/') >= 0 ? url.replace(/^file:\/\//, '') : url;
  return own.startsWith('/') ? relative(root, own) : own;
}

/** A coarse bucket for "where does the time go": a package, walcache, Node internals, GC. */
function areaOf(name: string, url: string): string {
  if (!url) {
    if (name.startsWith('(')) return name;
    // writeUtf8String / writev / writeBuffer: the syscalls that put bytes on a socket.
    return /^write/i.test(name) ? '(native) socket writes' : '(native) other';
  }
  const pkg = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1] ?? url;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([a-z_]+)/.exec(url);
    return `node:${m?.[1] ?? 'internal'}`;
  }
  const ws = /\/(apps\/[^/]+|packages\/[^/]+)\//.exec(url);
  return ws ? `walcache ${ws[1]}` : whereOf(url);
}

export function summarise(
  profile: CpuProfile,
  window: { fromEndUs: number; toEndUs: number },
): Omit<ProfileSummary, 'file' | 'rps'> {
  const from = profile.endTime - window.fromEndUs;
  const to = profile.endTime - window.toEndUs;
  let t = profile.startTime;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  /** The nearest callers, outside Node's own internals where possible: who asked for this work. */
  const callersOf = (id: number): string => {
    const chain: string[] = [];
    for (let p = parentOf.get(id); p !== undefined && chain.length < 4; p = parentOf.get(p)) {
      const cf = byId.get(p)?.callFrame;
      if (!cf || cf.url.startsWith('node:') || !cf.url) continue;
      chain.push(`${cf.functionName || '(anonymous)'} (${whereOf(cf.url).split('/').slice(-1)[0]})`);
    }
    return chain.join(' ← ');
  };
  const self = new Map<string, { name: string; where: string; us: number; callers: Map<string, number> }>();
  const areas = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    // timeDeltas[i] is the time since the previous sample; attribute it to this one.
    const us = profile.timeDeltas[i] ?? 0;
    t += us;
    if (t < from || t > to) return;
    const node = byId.get(id);
    if (!node) return;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idleUs += us;
      return;
    }
    const name = functionName || '(anonymous)';
    const where = url ? `${whereOf(url)}:${lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const entry = self.get(key) ?? { name, where, us: 0, callers: new Map<string, number>() };
    entry.us += us;
    const callers = callersOf(id);
    entry.callers.set(callers, (entry.callers.get(callers) ?? 0) + us);
    self.set(key, entry);
    const area = areaOf(name, url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  });
  const busyUs = totalUs - idleUs;
  const top: ProfileEntry[] = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, 20)
    .map((e) => ({
      name: e.name,
      where: e.where,
      selfMs: e.us / 1000,
      share: e.us / busyUs,
      via: [...e.callers].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
    }));
  const byArea = [...areas]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([area, us]) => ({ area, share: us / busyUs }));
  return { totalMs: totalUs / 1000, idleShare: idleUs / totalUs, top, byArea };
}
