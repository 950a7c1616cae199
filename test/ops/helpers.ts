import { waitFor } from '@walcache/testkit';
import { z } from 'zod';

/** One sample of a Prometheus text exposition: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#') || raw.trim() === '') continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(label)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parseMetrics(await res.text());
}

/** Sum of a metric's samples whose labels include `where`. */
export function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

export function has(samples: Sample[], name: string): boolean {
  return samples.some((s) => s.name === name);
}

/** The parts of the status document the tests read (validated: it is a public contract). */
export const statusSchema = z.object({
  generatedAt: z.string(),
  queue: z.object({
    name: z.string(),
    counts: z.record(z.string(), z.number()),
    oldestPendingAgeSeconds: z.number().nullable(),
    failed: z.object({
      count: z.number(),
      recent: z.array(z.object({ id: z.string(), reason: z.string(), attemptsMade: z.number() })),
    }),
  }),
  cdc: z.object({
    name: z.string(),
    exists: z.boolean(),
    active: z.boolean(),
    connected: z.boolean(),
    lagBytes: z.number().nullable(),
    lagSeconds: z.number().nullable(),
    retainedWalBytes: z.number().nullable(),
    confirmedFlushLsn: z.string().nullable(),
  }),
  invalidation: z.object({
    windowSeconds: z.number(),
    jobs: z.number(),
    p50Seconds: z.number().nullable(),
    p99Seconds: z.number().nullable(),
  }),
  cache: z.object({
    hits: z.number(),
    misses: z.number(),
    bypasses: z.number(),
    hitRatio: z.number().nullable(),
  }),
  auditor: z.object({
    checked: z.number(),
    stale: z.number(),
    consistencyRate: z.number().nullable(),
  }),
});
export type Status = z.infer<typeof statusSchema>;

/**
 * Waits until the API reaches its Redis: right after start its first reads may answer BYPASS
 * while the connection comes up (enableOfflineQueue is off), which would skew counts.
 */
export async function apiCacheReady(apiUrl: string): Promise<void> {
  await waitFor(async () => (await fetch(`${apiUrl}/v1/tags`)).headers.get('x-cache') !== 'BYPASS', {
    what: 'the API to reach its cache Redis',
  });
}
