import type { AnyResource } from '@walcache/core';
import { articleComments, articleList, type Db, resourceForKey } from '@walcache/resources';

export interface KeyTarget {
  resource: AnyResource<Db>;
  params: unknown;
}

/**
 * Key parsers for the resources that do not declare `paramsFromKey` (lists: their keys hold a
 * limit and a cursor). Each result is validated by the resource's own schema and accepted
 * only if it builds the very same key again, so a parser can never audit the wrong value.
 */
const listParsers: Record<string, (parts: string[]) => Record<string, unknown> | undefined> = {
  [articleList.name]: ([limit, cursor]) => ({ limit, ...(cursor && cursor !== '-' ? { cursor } : {}) }),
  [articleComments.name]: ([id, limit, cursor]) => ({
    id,
    limit,
    ...(cursor && cursor !== '-' ? { cursor } : {}),
  }),
};

/** The resource and params a cache key (`article:42`) was built from, or undefined. */
export function targetOfKey(key: string): KeyTarget | undefined {
  const resource = resourceForKey(key);
  if (!resource) return undefined;
  let raw: unknown = resource.paramsFromKey?.(key);
  if (raw === undefined) {
    const parse = listParsers[resource.name];
    raw = parse?.(key.split(':').slice(1));
  }
  if (raw === undefined) return undefined;
  let parsed: ReturnType<typeof resource.params.safeParse>;
  try {
    parsed = resource.params.safeParse(raw);
  } catch (error) {
    // Some schemas throw on garbage instead of reporting it (e.g. a refine calling BigInt on
    // a value its regex already rejected): such a key was not built by walcache either.
    if (error instanceof Error) return undefined;
    throw error;
  }
  if (!parsed.success || resource.key(parsed.data) !== key) return undefined;
  return { resource, params: parsed.data };
}
