import type { Ctx } from '../context.ts';
import type { HttpRow, MixedResult } from '../results.ts';
import type { ProcessGroup } from '../sys.ts';

export async function mixedScenario(
  _ctx: Ctx,
  _rows: HttpRow[],
  _memory: ProcessGroup[],
): Promise<{ results: MixedResult[]; memory: Record<string, number> }> {
  throw new Error('not yet');
}
