import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export type Core = typeof import('../../../packages/core/src/index.ts');

/**
 * The packages/core a micro-bench compares: this checkout's, after another checkout's when
 * one is named (a `git worktree` of an older commit, dependencies installed).
 */
export async function coresToCompare(other: string | undefined): Promise<[string, Core][]> {
  const load = (root: string) =>
    import(pathToFileURL(resolve(root, 'packages/core/src/index.ts')).href) as Promise<Core>;
  const cores: [string, Core][] = [['this checkout', await load('.')]];
  if (other) cores.unshift([other, await load(other)]);
  return cores;
}
