import type { Ctx } from '../context.ts';
import type { FanoutResult } from '../results.ts';

export async function fanoutScenario(_ctx: Ctx): Promise<FanoutResult> {
  throw new Error('not yet');
}
