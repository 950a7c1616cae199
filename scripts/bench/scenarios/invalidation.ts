import type { Ctx } from '../context.ts';
import type { InvalidationResult } from '../results.ts';

export async function invalidationScenario(_ctx: Ctx): Promise<InvalidationResult> {
  throw new Error('not yet');
}
