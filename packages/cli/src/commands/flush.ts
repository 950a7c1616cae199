import { flushNamespace, keyspace, unlinkMatching } from '@walcache/core';
import type { Clients } from '../context.ts';
import { usageError } from '../errors.ts';
import { confirm, type Io } from '../io.ts';

export async function flushCommand(
  clients: Clients,
  io: Io,
  args: string[],
  options: { all: boolean; yes: boolean; json: boolean },
): Promise<void> {
  const keys = keyspace(clients.env.CACHE_PREFIX);
  const [name, ...extra] = args;
  const resources = name ? (await clients.resources()).resources : [];
  if (extra.length > 0 || (options.all && name) || (!options.all && !name))
    throw usageError(`flush takes one resource (${resources.map((r) => r.name).join(', ')}) or --all`);
  const resource = name ? resources.find((r) => r.name === name) : undefined;
  if (name && !resource)
    throw usageError(`unknown resource "${name}"; resources: ${resources.map((r) => r.name).join(', ')}`);
  const what = resource
    ? `delete every cached "${resource.name}" value under prefix "${keys.prefix}"`
    : `delete EVERY walcache key under prefix "${keys.prefix}" (values, tag sets, markers)`;
  await confirm(io, what, options.yes);
  const redis = await clients.cache();
  const progress = (deleted: number) => io.err(`  … ${deleted} keys deleted`);
  let deleted: number;
  if (resource) {
    // Values and their leases (`wc:{book:42}`, `wc:{book:42}:lease`). A fill in flight
    // loses its lease and cannot write; tag set entries pointing at deleted values are
    // harmless (the next invalidation removes them).
    deleted = await unlinkMatching(redis, `${keys.prefix}:{${resource.name}:*`, progress);
  } else {
    deleted = await flushNamespace(redis, keys, progress);
  }
  io.out(
    options.json
      ? JSON.stringify({ flushed: resource?.name ?? 'all', prefix: keys.prefix, deleted })
      : `flushed ${resource ? `"${resource.name}"` : 'the whole namespace'}: ${deleted} keys deleted`,
  );
}
