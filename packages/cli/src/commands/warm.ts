import { ReadThroughCache } from '@walcache/core';
import { warmCache } from '@walcache/resources';
import type { Clients } from '../context.ts';
import { CliError, exitCodes, usageError } from '../errors.ts';
import type { Io } from '../io.ts';

/**
 * `walcache warm [resource …]`: what the invalidator does after a start or a flush, on
 * demand: fills the values the config declares `warm` (all such resources, or the named
 * ones) through the fill protocol, leaving values already cached as they are.
 */
export async function warmCommand(clients: Clients, io: Io, args: string[], options: { json: boolean }) {
  const { resources } = await clients.resources();
  const warmable = resources.filter((r) => r.warm);
  if (warmable.length === 0)
    throw usageError('no resource declares "warm" in the config (docs/config.md, "warm")');
  for (const name of args) {
    if (!warmable.some((r) => r.name === name))
      throw usageError(
        `"${name}" ${resources.some((r) => r.name === name) ? 'declares no "warm"' : 'is not a resource'}; resources with warm: ${warmable.map((r) => r.name).join(', ')}`,
      );
  }
  const chosen = args.length > 0 ? warmable.filter((r) => args.includes(r.name)) : warmable;
  const env = clients.env;
  const cache = new ReadThroughCache({
    redis: await clients.cache(),
    db: await clients.db(),
    prefix: env.CACHE_PREFIX,
    // The operator's caps, as the apps apply them.
    maxTtlSeconds: env.CACHE_TTL_SECONDS,
    maxNegativeTtlSeconds: env.NEGATIVE_TTL_SECONDS,
  });
  const reports = await warmCache(cache, await clients.db(), chosen, {
    onProgress: (p) => io.err(`  … ${p.resource}: ${p.done}/${p.total}`),
  });
  if (options.json) io.out(JSON.stringify({ prefix: env.CACHE_PREFIX, reports }));
  else {
    for (const r of reports)
      io.out(
        `warmed "${r.resource}" (${r.what}): ${r.total} values, ${r.loaded} loaded (${r.notFound} not found), ${r.hits} already cached${r.stopped ? ', STOPPED' : ''}`,
      );
  }
  if (reports.some((r) => r.stopped))
    throw new CliError(
      'the cache Redis became unavailable: the warm-up stopped early',
      exitCodes.unavailable,
    );
}
