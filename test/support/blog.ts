import { loadConfigFile } from '@walcache/config';
import {
  type CompiledConfig,
  type CompiledResource,
  compileConfig,
  encodeCursor as encodeCursorValues,
  type Queryable,
} from '@walcache/resources';
import { blogExample } from '../../examples/blog/index.ts';

/**
 * The blog example's resources, compiled from its config against a test database. Tests
 * name them as before (articleDetail, userProfile, …); they resolve to the resources the
 * most recent `compileBlog` produced in this test file's process (startServers calls it).
 */
let current: CompiledConfig | undefined;

export async function compileBlog(db: Queryable): Promise<CompiledConfig> {
  current = await compileConfig(await loadConfigFile(blogExample.configPath), db);
  return current;
}

export function blogResources(): CompiledConfig {
  if (!current)
    throw new Error('the blog resources are compiled by startServers() (or compileBlog): call it first');
  return current;
}

function lazy(name: string): CompiledResource {
  const resolve = () => {
    const resource = blogResources().byName(name);
    if (!resource) throw new Error(`the blog config has no resource ${name}`);
    return resource;
  };
  // Spreading (`{ ...articleDetail, load }`, how tests substitute a load) reads own keys.
  return new Proxy({} as CompiledResource, {
    get: (_target, prop) => (prop === 'name' ? name : Reflect.get(resolve(), prop)),
    ownKeys: () => Reflect.ownKeys(resolve()),
    getOwnPropertyDescriptor: (_target, prop) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(resolve(), prop);
      return descriptor ? { ...descriptor, configurable: true } : undefined;
    },
  });
}

export const articleDetail = lazy('article');
export const articleList = lazy('articles');
export const articleComments = lazy('comments');
export const userProfile = lazy('user');
export const tagList = lazy('tags');

export const resourceForKey = (key: string) => blogResources().resourceForKey(key);

/** The blog lists' cursor: (created_at as exact UTC text, id). */
export const encodeCursor = (cursor: { at: string; id: string }) =>
  encodeCursorValues([cursor.at, cursor.id]);

/** TTLs the blog config declares (seconds). */
export const ttl = { entity: 3600, list: 600, negative: 30 } as const;
