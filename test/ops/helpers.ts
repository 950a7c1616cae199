import { waitFor } from '@walcache/testkit';
import { z } from 'zod';

export { has, parseMetrics, type Sample, scrape, sum, value } from '../support/metrics.ts';

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
