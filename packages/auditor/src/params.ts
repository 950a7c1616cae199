import type { AnyResource } from '@walcache/core';
import type { Db } from '@walcache/resources';

export interface KeyTarget {
  resource: AnyResource<Db>;
  params: unknown;
}

/** The resource a key belongs to (the deployment's compiled config answers this). */
export type ResourceForKey = (key: string) => AnyResource<Db> | undefined;

/** The resource and params a cache key (`book:42`) was built from, or undefined. */
export function targetOfKey(key: string, resourceForKey: ResourceForKey): KeyTarget | undefined {
  const resource = resourceForKey(key);
  if (!resource) return undefined;
  const raw: unknown = resource.paramsFromKey?.(key);
  if (raw === undefined) return undefined;
  // Re-validated by the resource's own schema and accepted only if it builds the very same
  // key again, so a key walcache did not build is never audited as something else.
  const parsed = resource.params.safeParse(raw);
  if (!parsed.success || resource.key(parsed.data) !== key) return undefined;
  return { resource, params: parsed.data };
}
