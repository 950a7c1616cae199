import { type CacheResult, getMany, type ReadThroughCache } from '@walcache/core';
import type { CompiledResource, Db, Params } from './compile.ts';

/**
 * Pre-fills what resources declare with `warm` (after a start or a namespace flush, by the
 * invalidator or `walcache warm`), through the cache's own reads: every value is filled
 * under the fill protocol exactly as a request's miss would be, a value already cached is
 * left as it is, and a value the protocol refuses to cache (an invalidation raced its load)
 * stays uncached. Never a write of its own.
 */

/**
 * Values per step: one MGET and one query for a batchable lookup (the batch lookups' bound),
 * or that many concurrent reads otherwise. Small enough that a warm-up never holds more than
 * one query at a time on the pool that also serves refreshes.
 */
const WARM_CHUNK = 100;

export interface WarmProgress {
  resource: string;
  what: string;
  done: number;
  total: number;
}

export interface WarmReport {
  resource: string;
  what: string;
  /** Values the declaration names. */
  total: number;
  /** Already cached: left as they were. */
  hits: number;
  /** Loaded from Postgres and filled (or refused by the protocol: then the next read loads them). */
  loaded: number;
  /** Loaded and absent (cached as a 404 is). */
  notFound: number;
  /** Redis was unavailable (or `stop` said so): the warm-up stopped there. */
  stopped: boolean;
}

export interface WarmOptions {
  /** After every step (at most `WARM_CHUNK` values). */
  onProgress?(progress: WarmProgress): void;
  /** Checked before every step: true ends the warm-up there (a process shutting down). */
  stop?(): boolean;
}

/** Warms every resource that declares `warm`, one after another; stops when Redis is unavailable. */
export async function warmCache(
  cache: ReadThroughCache<Db>,
  db: Db,
  resources: readonly CompiledResource[],
  options: WarmOptions = {},
): Promise<WarmReport[]> {
  const { onProgress, stop } = options;
  const reports: WarmReport[] = [];
  for (const resource of resources) {
    const warm = resource.warm;
    if (!warm) continue;
    const params = await warm.params(db);
    const report: WarmReport = {
      resource: resource.name,
      what: warm.what,
      total: params.length,
      hits: 0,
      loaded: 0,
      notFound: 0,
      stopped: false,
    };
    reports.push(report);
    for (let at = 0; at < params.length && !report.stopped; at += WARM_CHUNK) {
      if (stop?.()) {
        report.stopped = true;
        break;
      }
      const chunk = params.slice(at, at + WARM_CHUNK);
      for (const r of await read(cache, resource, chunk)) {
        if (r.status === 'BYPASS') report.stopped = true;
        else if (r.status === 'HIT') report.hits += 1;
        else {
          report.loaded += 1;
          if (!r.found) report.notFound += 1;
        }
      }
      onProgress?.({
        resource: resource.name,
        what: warm.what,
        done: at + chunk.length,
        total: params.length,
      });
    }
    if (report.stopped) break;
  }
  return reports;
}

async function read(
  cache: ReadThroughCache<Db>,
  resource: CompiledResource,
  params: Params[],
): Promise<CacheResult[]> {
  if (resource.batch) return getMany(cache, resource, params, resource.batch.loadMany);
  return Promise.all(params.map((p) => cache.get(resource, p)));
}
