import type { Ctx } from '../context.ts';
import type { Child } from '../procs.ts';
import type { ProfileSummary } from '../results.ts';

export async function profileHitPath(_ctx: Ctx, _onApi: (c: Child) => void): Promise<ProfileSummary> {
  throw new Error('not yet');
}
