import { z } from 'zod';
import { tagLimitsSchema } from './limits.ts';

/**
 * Settings only the CDC reads, parsed from the same environment as packages/config's
 * (which every app shares). Kept here so the shared schema does not grow CDC knobs.
 */
export const cdcEnvSchema = z.object({
  /** `10000`, or `default=10000,events=50000`: tags per table before a table-wide invalidation. */
  CDC_MAX_TAGS_PER_TABLE: z.string().default('').pipe(tagLimitsSchema),
  CDC_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).optional(),
  CDC_LAG_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).optional(),
  /** Coalescing: ms between the starts of two job stores at least (batcher.ts). */
  CDC_MIN_STORE_INTERVAL_MS: z.coerce.number().min(0).max(1_000).optional(),
});

export type CdcEnv = z.output<typeof cdcEnvSchema>;

export function parseCdcEnv(source: Record<string, string | undefined>): CdcEnv {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const result = cdcEnvSchema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new Error(
    `invalid environment:\n${result.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n')}`,
  );
}
