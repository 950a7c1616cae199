import {
  type AnyResource,
  CorruptEntryError,
  decodeEntry,
  isNullBody,
  keyspace,
  resourceKeyOf,
} from '@walcache/core';
import type { Db } from '@walcache/resources';
import type { Clients } from '../context.ts';
import { CliError, exitCodes, usageError } from '../errors.ts';
import { formatSeconds, type Io } from '../io.ts';

export interface InspectResult {
  key: string;
  redisKey: string;
  resource: string | null;
  cached: boolean;
  ttlSeconds: number | null;
  ageSeconds: number | null;
  storedAt: string | null;
  version: number | null;
  etag: string | null;
  tags: string[];
  leaseHeld: boolean;
  value: unknown;
}

/**
 * `inspect book:42`, `inspect 'wc:{book:42}'` or `inspect book id=42` (params are
 * validated by the resource's own schema, so the key is exactly the one the API uses).
 */
export function keyFromArgs(prefix: string, args: string[], resources: readonly AnyResource<Db>[]): string {
  const [first, ...rest] = args;
  if (!first)
    throw usageError(`inspect needs a key (book:42) or a resource and params (${exampleParams(resources)})`);
  if (first.includes(':')) {
    if (rest.length > 0)
      throw usageError('inspect takes either one key or a resource with name=value params');
    return resourceKeyOf(keyspace(prefix), first) ?? first;
  }
  const resource: AnyResource<Db> | undefined = resources.find((r) => r.name === first);
  if (!resource)
    throw usageError(`unknown resource "${first}"; resources: ${resources.map((r) => r.name).join(', ')}`);
  const params: Record<string, string> = {};
  for (const pair of rest) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`expected name=value, got "${pair}" (e.g. ${exampleParams(resources)})`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const parsed = safeParams(resource, params);
  if (!parsed.success)
    throw usageError(
      `bad params for ${resource.name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'} ${i.message}`).join('; ')}`,
    );
  return resource.key(parsed.data);
}

/** The resource's own validation; a schema that throws instead of reporting is a usage error too. */
function safeParams(resource: AnyResource<Db>, params: Record<string, string>) {
  try {
    return resource.params.safeParse(params);
  } catch (error) {
    throw usageError(
      `bad params for ${resource.name}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** An example from the deployment's own first resource: `book id=…`. */
function exampleParams(resources: readonly AnyResource<Db>[]): string {
  const first = resources[0];
  if (!first) return '<resource> name=value';
  const shape = (first.params as { shape?: Record<string, unknown> }).shape ?? {};
  const param = Object.keys(shape)[0];
  return param ? `${first.name} ${param}=…` : first.name;
}

export async function inspectCommand(
  clients: Clients,
  io: Io,
  args: string[],
  options: { json: boolean },
): Promise<void> {
  const keys = keyspace(clients.env.CACHE_PREFIX);
  const { resources } = await clients.resources();
  const key = keyFromArgs(keys.prefix, args, resources);
  const redis = await clients.cache();
  const redisKey = keys.value(key);
  const [raw, pttl, lease] = await Promise.all([
    redis.getBuffer(redisKey),
    redis.pttl(redisKey),
    redis.exists(keys.lease(key)),
  ]);
  const resource = resources.find((r) => key.startsWith(`${r.name}:`))?.name ?? null;
  const result: InspectResult = {
    key,
    redisKey,
    resource,
    cached: raw !== null,
    ttlSeconds: raw && pttl >= 0 ? pttl / 1000 : null,
    ageSeconds: null,
    storedAt: null,
    version: null,
    etag: null,
    tags: [],
    leaseHeld: lease === 1,
    value: null,
  };
  if (raw) {
    try {
      const entry = decodeEntry(raw);
      Object.assign(result, {
        ageSeconds: Math.max(0, Date.now() - entry.storedAtMs) / 1000,
        storedAt: new Date(entry.storedAtMs).toISOString(),
        version: entry.version,
        etag: entry.etag,
        tags: entry.tags,
        value: isNullBody(entry.body) ? null : (JSON.parse(entry.body.toString('utf8')) as unknown),
      });
    } catch (error) {
      if (!(error instanceof CorruptEntryError)) throw error;
      throw new CliError(
        `${redisKey} holds something that is not a walcache entry: ${error.message}`,
        exitCodes.failed,
      );
    }
  }
  if (options.json) io.out(JSON.stringify(result, null, 2));
  else if (!result.cached)
    io.out(
      `${key} is not cached (Redis key ${redisKey})${result.leaseHeld ? '; a fill holds its lease right now' : ''}`,
    );
  else
    io.out(
      [
        `key        ${key}  (Redis key ${redisKey})`,
        `resource   ${resource ?? 'unknown'}`,
        `ttl        ${formatSeconds(result.ttlSeconds)}`,
        `age        ${formatSeconds(result.ageSeconds)} (stored ${result.storedAt})`,
        `version    ${result.version} (walcache seq when its fill started)`,
        `etag       ${result.etag}`,
        `tags       ${result.tags.length}`,
        ...result.tags.map((t) => `  ${t}`),
        `value      ${result.value === null ? 'null (a cached "not found")' : ''}`,
        ...(result.value === null ? [] : [JSON.stringify(result.value, null, 2)]),
      ].join('\n'),
    );
  if (!result.cached) throw new CliError('', exitCodes.notFound);
}
